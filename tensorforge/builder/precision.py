"""Precision assignment (graph level): with fp16/bf16/best, eligible FP32 nodes run in the reduced
type. Their constant weights are converted once and Cast nodes are inserted at the borders of
reduced-precision regions; graph inputs and outputs keep their ONNX types.

Per-op policies are data (POLICY): "low" may run reduced; "acc32" may run with reduced I/O because
its implementation accumulates in FP32 (softmax, norm statistics, means); "fp32" always FP32
(overflow-prone: exp/log/pow, sums, trig); "follow" moves data only and runs in its input's type;
"any" reads any float type and is never changed (Shape, Cast). Unknown ops get "fp32". Quantized
layers (fused.QConv/QGemm/QMatMul; a Q/DQ model built with fp16/bf16 is TensorRT's weakly typed
mode with Q/DQ) keep their quantized inputs, scales and bias and write an FP32 output in the
reduced type. A node also stays FP32 when one of its float constants overflows the reduced type,
or a scalar constant underflows it (an epsilon). strongly_typed keeps the ONNX types exactly.
precision_constraints obey|prefer apply layer_precisions / layer_output_types ({pattern with one '*': type}).
TF32 is a math mode, not a type: the runtime sets it from plan.meta["tf32"]."""
from __future__ import annotations

import logging
import re

import torch

from .. import dtypes
from ..errors import TensorforgeError
from ..frontend.infer import infer_node
from ..ir import Graph
from ..ir.tape_ops import overflows
from .config import BuilderConfig
from .precision_util import retype_consts, saturate, tail_nodes

log = logging.getLogger("tensorforge")


def _ops(policy, names):
    return {n: policy for n in names.split()}


POLICY = {
    **_ops("low", "Conv ConvTranspose MatMul Gemm Einsum Relu LeakyRelu PRelu Elu Selu Celu Sigmoid Tanh "
                  "HardSigmoid HardSwish Gelu Erf Softsign ThresholdedRelu Shrink Clip Add Sub Mul Div Mod "
                  "Neg Abs Sqrt Floor Ceil Round Sign Max Min Sum Mean MaxPool GlobalMaxPool ReduceMax "
                  "ReduceMin Hardmax fused.ConvAct fused.GemmAct fused.MatMulAct fused.Pointwise "
                  "fused.QConv fused.QGemm fused.QMatMul"),
    # torch's softmax / mean kernels accumulate half inputs in FP32; norm references upcast
    **_ops("acc32", "Softmax LogSoftmax fused.Softmax fused.LogSoftmax fused.Attention LayerNormalization "
                    "fused.LayerNorm fused.RMSNorm InstanceNormalization GroupNormalization LpNormalization "
                    "MeanVarianceNormalization ReduceMean GlobalAveragePool AveragePool fused.Reduce "
                    "fused.SqueezeExcite"),
    **_ops("fp32", "Exp Log Pow Reciprocal Softplus Mish Sin Cos Tan Asin Acos Atan Sinh Cosh Asinh Acosh "
                   "Atanh ReduceSum ReduceSumSquare ReduceProd ReduceL1 ReduceL2 ReduceLogSum "
                   "ReduceLogSumExp CumSum BatchNormalization"),
    **_ops("follow", "Reshape Flatten Squeeze Unsqueeze Transpose Identity Dropout Concat Split Slice Gather "
                     "GatherElements GatherND ScatterElements ScatterND Expand Tile Pad DepthToSpace "
                     "SpaceToDepth ReverseSequence Trilu Compress TopK Where Equal Less Greater LessOrEqual "
                     "GreaterOrEqual IsNaN IsInf ArgMax ArgMin Resize fused.Concat"),
    **_ops("any", "Shape Size NonZero Cast CastLike ConstantOfShape Range EyeLike OneHot"),
}
DEFAULT_POLICY = "fp32"
REDUCED = ("low", "acc32")
# tensor-core work: what reduced precision is for. Cheap layers after the last of these on every
# path to the outputs (output post-processing: box decoding, final norms) stay in FP32.
QUANTIZED = ("fused.QConv", "fused.QGemm", "fused.QMatMul")
HEAVY = frozenset("Conv ConvTranspose MatMul Gemm Einsum fused.ConvAct fused.GemmAct fused.MatMulAct "
                  "fused.Attention".split() + list(QUANTIZED))
# float inputs that keep their type whatever the node's precision (host parameters; a quantized
# layer's input, weight, bias and weight scales)
FIXED_INPUTS = {"Resize": (1, 2), **{q: (0, 1, 2, 3) for q in QUANTIZED}}
RETYPABLE = ("float32", "float16", "bfloat16")
# fused.Reduce kinds whose result can overflow the reduced type
_SUM_KINDS = ("sum", "prod", "l1", "l2", "sumsquare", "logsum", "logsumexp")


def policy_of(node) -> str:
    """The precision policy of a node (fused layers: the strictest of their expression ops)."""
    p = POLICY.get(node.op, DEFAULT_POLICY)
    if node.op == "fused.Reduce" and node.attrs.get("kind") in _SUM_KINDS:
        return "fp32"
    for key in ("expr", "epilogue", "prologue"):
        e = node.attrs.get(key)
        if isinstance(e, dict):
            ops = [n["op"] for n in e.get("nodes", []) if n["op"] not in ("input", "const", "Cast")]
            if any(POLICY.get(o, DEFAULT_POLICY) == "fp32" for o in ops):
                return "fp32"
    return p


def assign_precision(g: Graph, cfg: BuilderConfig) -> Graph:
    """Return the graph with reduced-precision regions and the casts at their borders."""
    rules = _Rules(cfg)
    if cfg.strongly_typed:
        if cfg.fp16 or cfg.bf16 or rules.precisions or rules.outputs:
            log.warning("strongly typed network: precision flags and layer precisions are ignored")
        return g
    if rules.low is None and not rules.precisions and not rules.outputs:
        return g
    return _Assigner(g, rules).run()


class _Rules:
    """The reduced type and the user's per-layer constraints."""

    def __init__(self, cfg):
        self.low = "float16" if cfg.fp16 else "bfloat16" if cfg.bf16 else None
        self.mode = cfg.precision_constraints
        prec = {k: dtypes.canonical(v) for k, v in (cfg.layer_precisions or {}).items()}
        outs = {k: [dtypes.canonical(t) for t in (v if isinstance(v, (list, tuple)) else [v])]
                for k, v in (cfg.layer_output_types or {}).items()}
        if self.mode == "none" and (prec or outs):
            log.warning("layer precisions / output types are ignored: precision constraints are 'none' "
                        "(use --precisionConstraints=obey|prefer)")
            prec, outs = {}, {}
        self.precisions = [(_pattern(k), v) for k, v in prec.items()]
        self.outputs = [(_pattern(k), v) for k, v in outs.items()]

    def requested(self, node, table):
        """The last matching entry of a pattern table for a node (name or ONNX origin), or None."""
        names = [node.name, *node.origin]
        hit = None
        for rx, v in table:
            if any(rx.fullmatch(n) for n in names):
                hit = v
        return hit


def _pattern(p: str):
    if p.count("*") > 1:
        raise TensorforgeError(f"layer name pattern '{p}' has more than one '*'")
    return re.compile(".*".join(re.escape(s) for s in p.split("*")))


class _Assigner:
    """One forward walk: decide each node's type, fix its inputs, re-infer its outputs."""

    def __init__(self, g, rules):
        self.g, self.r = g, rules
        self.orig = {id(v): v.dtype for v in g.values.values()}
        for n in g.nodes:
            for v in n.inputs + n.outputs:
                if v is not None:
                    self.orig.setdefault(id(v), v.dtype)
        self.casts, self.consts = {}, {}
        self.order = []
        self.counts = {}
        self.tail = tail_nodes(g, HEAVY)

    def run(self) -> Graph:
        g = self.g
        for node in list(g.nodes):
            cd = self.decide(node)
            changed = self.fix_inputs(node, cd)
            self.order.append(node)
            if cd is not None or changed:
                infer_node(g, node)
            self.force_outputs(node)
        for v in list(g.outputs):
            want = self.orig[id(v)]
            if v.dtype != want and v.producer is not None:
                self.retype_output(v.producer, v.producer.outputs.index(v), want, rewire=True)
        g.nodes = self.order
        g.prune_values()
        if self.counts:
            log.info("Precision: %s", ", ".join(f"{n} layers in {t}" for t, n in sorted(self.counts.items())))
        return g

    # ---- decisions ----------------------------------------------------------------------------
    def decide(self, node):
        """The compute type of a node, or None to leave it untouched."""
        # float8 values are quantized data (like int8): they do not pin a node to its ONNX types
        floats = [v for v in node.inputs + node.outputs if v is not None and dtypes.is_float(self.orig[id(v)])
                  and not self.orig[id(v)].startswith("float8")]
        if not floats:
            return None
        pol = policy_of(node)
        if node.op in QUANTIZED:
            return self.quantized(node, pol)
        want = self.r.requested(node, self.r.precisions)
        if want is not None and dtypes.is_float(want):
            if pol == "any" or any(self.orig[id(v)] not in ("float32", "float16", "bfloat16") for v in floats):
                msg = f"layer '{node.name}' ({node.op}) cannot run in {want}"
                if self.r.mode == "obey":
                    raise TensorforgeError(msg + " (precision constraints: obey)")
                log.warning("%s; precision constraint ignored", msg)
            else:
                return self.count(want)
        if pol == "any" or any(self.orig[id(v)] != "float32" for v in floats):
            return None
        if pol == "follow":
            acts = [v.dtype for v in node.inputs if v is not None and v.const is None and dtypes.is_float(v.dtype)]
            return self.r.low if (self.r.low in acts or not acts) and self.r.low else (acts or ["float32"])[0]
        if pol in REDUCED and self.r.low is not None and id(node) not in self.tail and self.representable(node):
            return self.count(self.r.low)
        return self.count("float32")

    def quantized(self, node, pol):
        """A quantized layer's output type: reduced when it is FP32, not requantized and not in the tail."""
        out = node.outputs[0]
        if (self.r.low is None or node.attrs.get("out_q") or self.orig[id(out)] != "float32" or pol not in REDUCED
                or id(node) in self.tail):
            return None
        node.attrs["out_dtype"] = self.r.low
        return self.count(self.r.low)

    def count(self, dt):
        self.counts[dt] = self.counts.get(dt, 0) + 1
        return dt

    def representable(self, node) -> bool:
        """No float constant overflows the reduced type and no scalar one underflows it."""
        fi = torch.finfo(dtypes.to_torch(self.r.low))
        vals = [v.const for v in node.inputs if v is not None and v.const is not None and v.const.is_floating_point()]
        for key in ("expr", "epilogue", "prologue"):
            e = node.attrs.get(key)
            if isinstance(e, dict):
                vals += [torch.tensor([float(n["v"])]) for n in e["nodes"] if n["op"] == "const"
                         and dtypes.is_float(n.get("dtype", ""))]
        for t in vals:
            if overflows(t, fi.max):
                return False
            if t.numel() == 1 and 0 < float(t.detach().abs().float().reshape(-1)[0]) < fi.tiny:
                return False
        return True

    # ---- rewiring -----------------------------------------------------------------------------
    def fix_inputs(self, node, cd):
        """Bring each float input to the type the node computes in (or back to its ONNX type)."""
        fixed = FIXED_INPUTS.get(node.op, ())
        changed = False
        for i, v in enumerate(node.inputs):
            if v is None or not dtypes.is_float(v.dtype or ""):
                continue
            if cd is None:
                want = None if policy_of(node) == "any" else self.orig[id(v)]
            else:
                want = None if i in fixed else cd
            if want is None or v.dtype == want or self.orig[id(v)] not in RETYPABLE:
                continue
            self.g.set_input(node, i, self.convert(v, want))
            changed = True
        if cd is not None and cd != "float32":
            for key in ("expr", "epilogue", "prologue"):
                if isinstance(node.attrs.get(key), dict):
                    node.attrs[key] = retype_consts(node.attrs[key], cd)
        return changed or any(v is not None and v.dtype != self.orig[id(v)] for v in node.inputs)

    def convert(self, v, dt):
        """v in type dt: a converted constant (once per weight) or a shared Cast node."""
        if v.const is not None:
            k = (id(v), dt)
            if k not in self.consts:
                self.consts[k] = self.g.const(saturate(v.const, dt), f"{v.name}_{dtypes.short(dt)}")
            return self.consts[k]
        k = (id(v), dt)
        if k not in self.casts:
            src = v
            p = v.producer
            if p is not None and p.op == "Cast" and p.inputs[0] is not None and not dtypes.is_float(p.inputs[0].dtype):
                src = p.inputs[0]  # int/bool -> float32 -> dt is exactly int/bool -> dt
            out = self.g.new_value(f"{v.name}_{dtypes.short(dt)}", dt, v.shape)
            n = self.g.add_node("Cast", [src], [out], {"to": dtypes.to_onnx(dt)},
                                name=self.g.unique_node_name(f"Cast {v.name} -> {dtypes.short(dt)}"), origin=[])
            self.order.append(n)
            self.casts[k] = out
        return self.casts[k]

    def force_outputs(self, node):
        """layer_output_types: cast outputs to the requested types right after the node."""
        want = self.r.requested(node, self.r.outputs)
        if not want:
            return
        for i, v in enumerate(node.outputs):
            t = want[i] if i < len(want) else None
            if t is not None and dtypes.is_float(v.dtype or "") and v.dtype != t:
                self.retype_output(node, i, t, rewire=False)

    def retype_output(self, node, i, dt, rewire):
        """Output i of node becomes type dt: the node writes a new value, a Cast produces the old one.

        rewire: consumers already processed (graph outputs, at the end) keep reading the node's type."""
        v = node.outputs[i]
        nv = self.g.new_value(f"{v.name}_{dtypes.short(v.dtype)}", v.dtype, v.shape)
        node.outputs[i] = nv
        nv.producer = node
        if rewire:
            for u in list(v.users):
                for j, x in enumerate(u.inputs):
                    if x is v:
                        self.g.set_input(u, j, nv)
        v.dtype = dt
        n = self.g.add_node("Cast", [nv], [v], {"to": dtypes.to_onnx(dt)},
                            name=self.g.unique_node_name(f"Cast {v.name} -> {dtypes.short(dt)}"), origin=[])
        self.order.append(n)
