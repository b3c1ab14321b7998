"""A quantized residual moves from an FP8 GEMM's epilogue into the norm that reads it (post-norm
transformers: LayerNorm(dense(x) + skip) with the skip input quantized, as ModelOpt places it).

    QMatMul[epilogue E(y, ...) + DQ(skip)] -> LayerNorm        (the GEMM reads the e4m3 skip)
    QMatMul[epilogue E(y, ...)] -> LayerNorm[prologue x + DQ(skip)]

Pre-norm transformers (ViT) first need the skip in e4m3 (rule SkipQ): the residual stream x is read by
the next norm and, through a Q -> DQ round trip inlined into its epilogue (quant_inline_operands), by the
GEMM that adds it back. The norm writes Q(x) as a second output (its "side" expression) and the GEMM reads
that, dequantized by its own kernel (extra_q); the GEMM's output is then read by the next norm alone, so the
rule above applies, and that norm's side Q quantizes its prologue's result: the stream itself never goes to
memory in FP16 again, only as its e4m3 Q (the same values: Q of the FP16 stream).

cuBLASLt cannot take an e4m3 C, so a GEMM with a quantized residual could only run as the Triton
qgemm: on the H200 (session 10, BERT-base bs 32) 13.1 µs for the out-projection and 27.7 µs for
FFN-down, where cuBLASLt's FP8 GEMM alone takes 7.7 and 18.7 µs. Without the residual both can run
as cublaslt_fp8; the norm reads the 3 MB e4m3 skip it would otherwise not (~1 µs). Expected: about
0.15 ms of BERT-base FP8's 1.29 ms (an estimate from those per-layer times; not yet measured).

Numerics: the GEMM's result is rounded to its output type before the skip is added (the fused form
added it in fp32 and rounded once); the prologue's result is rounded to the norm's input type, as
the Add's output was. Only where cuBLASLt could then take the GEMM: an e4m3 skip, a per-tensor
weight scale, a float output read by nothing but the norm, a row short enough for the single-pass
norm kernel (which is the only norm tactic with a prologue besides the reference)."""
from __future__ import annotations


from ...ir import Graph
from ...ops.fused.expr import ExprBuilder, num_inputs
from ..norm_prologue import short_row
from ..rewrite import Decline, Op, Rule, fuse, rule_pass
from ...ops.fused.qdq_expr import dq_steps, matches_steps, q_steps, steps_expr
from .params import F8

N_LEAD = 4  # a quantized GEMM's xq, wq, bias, w_scale
FLOAT = 1  # TensorProto.FLOAT


def _rebuild(expr: dict, out: int, inputs: dict, swap: dict | None = None):
    """The subexpression at node `out`, input i read as new input inputs[i] (absent: it must not be read) and
    node k replaced by new input swap[k]; None when it reads an absent input."""
    b, remap = ExprBuilder(), {}
    for k, n in enumerate(expr["nodes"]):
        if swap and k in swap:
            remap[k] = b.input(swap[k])
        elif n["op"] == "input":
            if n["i"] in inputs:
                remap[k] = b.input(inputs[n["i"]])
        elif n["op"] == "const":
            remap[k] = b.const(n["v"], n["dtype"])
        elif all(a in remap for a in n["args"]):
            remap[k] = b.op(n["op"], [remap[a] for a in n["args"]], n.get("attrs"))
    return b.build(remap[out]) if out in remap else None


def split_last_add(expr: dict, j: int):
    """The expression without its final `+ input j` (j: the expression's input index; later inputs renumbered),
    or None when the output is not such an Add or input j is read anywhere else."""
    nodes, top = expr["nodes"], expr["nodes"][expr["out"]]
    if top["op"] != "Add" or len(top.get("args", [])) != 2:
        return None
    ins = [a for a in top["args"] if nodes[a]["op"] == "input" and nodes[a]["i"] == j]
    if len(ins) != 1:
        return None
    rest = next(a for a in top["args"] if a != ins[0])
    return _rebuild(expr, rest, {i: i - (i > j) for i in range(num_inputs(expr)) if i != j})


def dq_add_prologue(i: int, scale: float, zp: int, x_dtype: str, q_dtype: str = "float8e4m3fn") -> dict:
    """x + DQ(input i) in fp32, the DQ as the Q/DQ lowering computes it; x cast up when it is not fp32."""
    b = ExprBuilder()
    x = b.input(0)
    if x_dtype != "float32":
        x = b.op("Cast", [x], {"to": FLOAT})
    return b.build(b.op("Add", [x, steps_expr(b, b.input(i), dq_steps(scale, zp, q_dtype))]))


E4M3 = "float8e4m3fn"


def fake_quant_input(expr: dict, k: int, src: str):
    """(input index, scale) when expression node k is DQ(Q(input)) in e4m3 exactly as the Q/DQ lowering writes
    it for a `src` input (qdq_expr.q_steps then dq_steps, the DQ back in src or in fp32), else None."""
    nodes = expr["nodes"]
    top = nodes[nodes[k]["args"][0]] if nodes[k]["op"] == "Cast" and nodes[k].get("args") else nodes[k]
    mul = top.get("args", []) if top["op"] == "Mul" else []
    if len(mul) != 2 or nodes[mul[1]]["op"] != "const":
        return None
    s = nodes[mul[1]]["v"]
    for out in dict.fromkeys((src, "float32")):
        x = matches_steps(expr, k, q_steps(s, 0, E4M3, src) + dq_steps(s, 0, E4M3, out))
        if x is not None and nodes[x]["op"] == "input":
            return nodes[x]["i"], s
    return None


def q_side(scale: float, x_dtype: str) -> dict:
    """Q(x) to e4m3 as the Q/DQ lowering computes it (x cast up first when it is not fp32)."""
    b = ExprBuilder()
    return b.build(steps_expr(b, b.input(0), q_steps(scale, 0, E4M3, x_dtype)))


def _replace(expr: dict, k: int, j: int) -> dict:
    """expr with node k replaced by input j (what only k read is pruned)."""
    n_in = num_inputs(expr)
    return _rebuild(expr, expr["out"], {i: i for i in range(n_in)}, {k: j})


def _reads(expr: dict, j: int) -> int:
    return sum(1 for n in expr["nodes"] if n["op"] == "input" and n["i"] == j)


def _cublaslt_gemm(a) -> bool:
    """A quantized GEMM that cuBLASLt could take once its residual is gone: a per-tensor weight scale."""
    ws = a.inputs[3] if len(a.inputs) > 3 else None
    return a.op in ("fused.QMatMul", "fused.QGemm") and ws is not None and ws.const is not None and \
        ws.const.numel() == 1 and a.inputs[1] is not None and a.inputs[1].dtype in F8


def side_q(g: Graph, m) -> bool:
    """Norm(x) with x also read as FQ(x) by a quantized GEMM's residual  ==>  Norm(x) -> (y, Q(x)) and the
    GEMM reading Q(x) as a quantized residual (extra_q)."""
    n = m.root
    if n.attrs.get("side"):
        return Decline("the norm has a side output already")
    v = n.inputs[0]
    others = [u for u in v.users if u is not n] if v is not None else []
    if v is None or g.is_output(v) or len(others) != 1 or any(x is v for x in n.inputs[1:]):
        return Decline("the norm's input is not read by exactly one other layer")
    r = others[0]
    if not _cublaslt_gemm(r) or not r.attrs.get("epilogue") or not short_row(v, n.attrs):
        return Decline("the other reader is not an FP8 GEMM with per-tensor weights and an epilogue")
    pos = [i for i, x in enumerate(r.inputs) if x is v]
    if len(pos) != 1 or pos[0] < N_LEAD:
        return Decline("the GEMM does not read it once, as an extra input")
    if g.nodes.index(r) < g.nodes.index(n):
        return Decline("the GEMM runs before the norm (it would read the norm's output)")
    j = pos[0] - N_LEAD
    e = r.attrs["epilogue"]
    top = e["nodes"][e["out"]]
    if top["op"] != "Add" or len(top["args"]) != 2:
        return Decline("the GEMM's epilogue does not end in an Add")
    found = [(k, fake_quant_input(e, k, v.dtype)) for k in top["args"]]
    hit = [(k, f) for k, f in found if f is not None and f[0] == j + 1]
    if len(hit) != 1 or _reads(e, j + 1) != 1:
        return Decline("the residual is not added last as an e4m3 Q -> DQ round trip of this input")
    k, (_, scale) = hit[0]
    extra_q = list(r.attrs.get("extra_q") or [])
    extra_q += [None] * (len(r.inputs) - N_LEAD - len(extra_q))
    if extra_q[j] is not None:
        return Decline("the GEMM reads it quantized already")
    extra_q[j] = [float(scale), 0]
    xq = g.new_value(f"{v.name}.q", "float8e4m3fn", v.shape)
    fuse(g, [n], n.op, list(n.inputs), {**n.attrs, "side": q_side(scale, v.dtype)}, list(n.outputs) + [xq],
         "SkipQ", name=n.name)
    ins = list(r.inputs)
    ins[N_LEAD + j] = xq
    fuse(g, [r], r.op, ins, {**r.attrs, "epilogue": _replace(e, k, j + 1), "extra_q": extra_q}, list(r.outputs),
         "SkipQGemm", name=r.name)
    return True


def skip_norm(g: Graph, m) -> bool:
    """QGemm/QMatMul[E + DQ(skip)] -> Norm  ==>  QGemm/QMatMul[E] -> Norm[prologue x + DQ(skip)]."""
    n = m.root
    k_norm = 3 if n.op == "fused.LayerNorm" else 2
    if n.attrs.get("prologue"):
        return Decline("the norm has a prologue already")
    v = n.inputs[0]
    a = v.producer if v is not None else None
    if a is None or a.op not in ("fused.QMatMul", "fused.QGemm") or len(a.outputs) != 1:
        return Decline("the norm's input is not a quantized GEMM's")
    if g.is_output(v) or any(u is not n for u in v.users) or len(n.inputs) > 1 and any(
            x is v for x in n.inputs[1:]):
        return Decline("the GEMM's output has other readers")
    if v.dtype not in ("float16", "bfloat16", "float32"):
        return Decline("the GEMM's output is not a float type")
    if not short_row(v, n.attrs):
        return Decline("the normalized row is not known to fit the single-pass norm kernel")
    if not _cublaslt_gemm(a):
        return Decline("the weight scale is not per tensor (cuBLASLt could not take the GEMM anyway)")
    extra_q = list(a.attrs.get("extra_q") or [])
    qs = [j for j, q in enumerate(extra_q) if q is not None]
    if len(qs) != 1 or not a.attrs.get("epilogue"):
        return Decline("not exactly one quantized residual input")
    j = qs[0]
    skip = a.inputs[N_LEAD + j]
    if skip is None or skip.dtype not in F8:
        return Decline("the quantized residual is not float8")
    if tuple(skip.shape) != tuple(v.shape):
        return Decline("the residual does not have the output's shape")
    rest = split_last_add(a.attrs["epilogue"], j + 1)
    if rest is None:
        return Decline("the residual is not added last in the epilogue")
    scale, zp = extra_q[j][0], extra_q[j][1]
    extras = [x for i, x in enumerate(a.inputs[N_LEAD:]) if i != j]
    keep_q = [q for i, q in enumerate(extra_q) if i != j]
    attrs = {k2: v2 for k2, v2 in a.attrs.items() if k2 not in ("epilogue", "extra_q")}
    if rest != {"nodes": [{"op": "input", "i": 0}], "out": 0}:
        attrs["epilogue"] = rest
    if any(q is not None for q in keep_q):
        attrs["extra_q"] = keep_q
    lead = list(a.inputs[:N_LEAD]) + [None] * (N_LEAD - len(a.inputs[:N_LEAD]))
    fuse(g, [a], a.op, lead + extras, attrs, [v], "SkipNormGemm", name=a.name)
    n_lead = list(n.inputs[:k_norm]) + [None] * (k_norm - len(n.inputs[:k_norm]))
    n_extras = list(n.inputs[k_norm:])
    pro = dq_add_prologue(1 + len(n_extras), scale, zp, v.dtype)
    fuse(g, [n], n.op, n_lead + n_extras + [skip], {**n.attrs, "prologue": pro}, list(n.outputs),
         "SkipNorm", name=n.name)
    return True


NORMS = ("fused.LayerNorm", "fused.RMSNorm")
quant_skip_norm = rule_pass("quant_skip_norm", [Rule("SkipQ", Op(NORMS, any_args=True), side_q),
                                                Rule("SkipNorm", Op(NORMS, any_args=True), skip_norm)])
