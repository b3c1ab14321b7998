"""Triton LayerNorm / RMSNorm row kernels (tactic "norm") in triton's CPU interpreter vs torch
(F.layer_norm / a manual RMSNorm in fp32): single pass and looped rows, ROWS rows per program with
a partial last group, scale / bias present or absent, epilogues with full / inner / outer extras,
strided (transposed) operands. The check functions are shared with tests/gpu/test_triton_norm.py."""
import importlib.util

import pytest
import torch
import torch.nn.functional as F

from tensorforge.ops.fused.expr import ExprBuilder

from . import cases, kernel_checks

TOL = {torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 2e-2, torch.float64: 1e-7}
M = 13  # not a multiple of any ROWS
LENGTHS = (1, 7, 768, 1000, 5000, 9000)  # 9000: looped (over the 8192 single-pass limit)


def rand(shape, dtype, device, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) * 4 - 2).to(dtype).to(device)


def silu_expr():
    """y * sigmoid(y) (no extra input)."""
    b = ExprBuilder()
    return b.build(b.op("Mul", [b.input(0), b.op("Sigmoid", [b.input(0)])]))


def add_expr():
    """y + r (a residual, possibly broadcast)."""
    b = ExprBuilder()
    return b.build(b.op("Add", [b.input(0), b.input(1)]))


EPILOGUES = {"residual_relu": (cases.residual_relu_expr, lambda y, r: torch.relu(y + r)),
             "silu": (silu_expr, lambda y: y * torch.sigmoid(y)), "add": (add_expr, lambda y, r: y + r)}


def want(rms, x, scale, bias, extras, axis, eps, epi):
    """The fp32 torch result cast to x's dtype."""
    dims = tuple(range(axis % x.dim(), x.dim()))
    xf = x.double() if x.dtype == torch.float64 else x.float()
    if rms:
        y = xf * torch.rsqrt((xf * xf).mean(dims, keepdim=True) + eps)
    else:
        y = F.layer_norm(xf, xf.shape[dims[0]:], eps=eps)
    y = y * scale.to(xf.dtype) if scale is not None else y
    y = y + bias.to(xf.dtype) if bias is not None else y
    if epi:
        y = EPILOGUES[epi][1](y, *[e.to(xf.dtype) for e in extras])
    return y.to(x.dtype)


def run(rms, ins, axis=-1, eps=1e-5, epi=None, params=None, outs=None):
    from tensorforge.kernels.triton.runners import NormRunner
    attrs = {"axis": axis, "epsilon": eps}
    if epi:
        attrs["epilogue"] = EPILOGUES[epi][0]()
    r = NormRunner(attrs, params or {}, lambda _: pytest.fail("fell back to the reference"), rms)
    return r(ins, outs)[0]


def check(rms, x, scale=None, bias=None, extras=(), axis=-1, eps=1e-5, epi=None, params=None):
    ins = [x, scale] + ([] if rms else [bias]) + list(extras)
    got = run(rms, ins, axis, eps, epi, params)
    exp = want(rms, x, scale, bias, extras, axis, eps, epi)
    assert got.dtype == exp.dtype and got.shape == exp.shape and got.is_contiguous()
    tol = TOL[x.dtype]
    try:
        torch.testing.assert_close(got.double().cpu(), exp.double().cpu(), rtol=tol, atol=tol)
    except AssertionError as e:
        raise AssertionError(f"rms={rms} {tuple(x.shape)} {x.dtype} epi={epi} {params}: {e}") from e


def check_lengths(device, dtype, params, lengths=LENGTHS):
    """LayerNorm (scale + bias, none) and RMSNorm (scale, none) over M x N for every N."""
    for n in lengths:
        x = rand((M, n), dtype, device, n)
        g, b = rand((n,), dtype, device, n + 1) + 2, rand((n,), dtype, device, n + 2)
        check(False, x, g, b, params=params)
        check(True, x, g, params=params, eps=1e-6)
        if n in (7, 1000):
            check(False, x, params=params)
            check(False, x, g, params=params)
            check(True, x, params=params)


def check_operands(device, dtype, params, n=45):
    """Epilogues with full / inner / outer / transposed extras, transposed x, trailing-2-dims rows."""
    x = rand((M, n), dtype, device, 0) * 3 + 1
    g, b = rand((n,), dtype, device, 1) + 2, rand((n,), dtype, device, 2)
    r = rand((M, n), dtype, device, 3)
    check(False, x, g, b, [r], epi="residual_relu", params=params)
    check(True, x, g, extras=[r], epi="residual_relu", params=params)
    check(False, x, g, b, epi="silu", params=params)
    check(False, x, g, b, [rand((n,), dtype, device, 4)], epi="add", params=params)  # inner extra
    check(False, x, g, b, [rand((M, 1), dtype, device, 5)], epi="add", params=params)  # outer extra
    xt = rand((n, M), dtype, device, 6).t()  # strided x (a transposed view)
    check(False, xt, g, b, [rand((n, M), dtype, device, 7).t()], epi="add", params=params)
    check(True, xt, g, params=params)
    x3 = rand((3, 5, n), dtype, device, 8)
    check(False, x3, rand((5, n), dtype, device, 9), rand((n,), dtype, device, 10), axis=-2, eps=1e-3,
          params=params)
    check(False, x3[:, :, 1:], params=params)  # rows of a sliced view


def check_out_buffer(device, dtype, params):
    """A dense output buffer given as outs[0] is written in place."""
    x, g = rand((M, 96), dtype, device, 11), rand((96,), dtype, device, 12)
    buf = torch.empty_like(x)
    got = run(True, [x, g], params=params, outs=[buf])
    assert got is buf
    torch.testing.assert_close(buf.float(), want(True, x, g, None, (), -1, 1e-5, None).float(),
                               rtol=TOL[dtype], atol=TOL[dtype])


def check_prologue(device, params, n=768):
    """x + DQ(an e4m3 skip) normalized (the prologue of passes.quant.skip_norm), after an epilogue extra so the
    prologue reads extra 2: the runner against the layer's reference (ops.fused.norm), LayerNorm and RMSNorm."""
    from tensorforge.kernels.triton.runners import NormRunner
    from tensorforge.ops.fused.norm import layernorm_ref, rmsnorm_ref
    from tensorforge.passes.quant.skip_norm import dq_add_prologue, q_side
    x = rand((M, n), torch.float16, device, 20) * 3
    g, b = rand((n,), torch.float16, device, 21) + 2, rand((n,), torch.float16, device, 22)
    r = rand((M, n), torch.float16, device, 23)
    skip = (rand((M, n), torch.float32, device, 24) * 100).to(torch.float8_e4m3fn)
    attrs = {"axis": -1, "epsilon": 1e-5, "prologue": dq_add_prologue(2, 0.0123, 0, "float16"),
             "epilogue": add_expr()}
    for rms in (False, True):
        ins = [x, g] + ([] if rms else [b]) + [r, skip]
        got = NormRunner(attrs, params, lambda _: pytest.fail("fell back to the reference"), rms)(ins)[0]
        ref = (rmsnorm_ref if rms else layernorm_ref)(*ins, **attrs)
        assert got.dtype == ref.dtype == torch.float16
        torch.testing.assert_close(got.float().cpu(), ref.float().cpu(), rtol=1e-2, atol=1e-2)
        without = (rmsnorm_ref if rms else layernorm_ref)(*ins, **{**attrs, "prologue": None})
        assert (without.float() - ref.float()).abs().max() > 0.1  # the skip mattered
    # with a side output: the prologue's result quantized to e4m3 (the residual stream's Q of a pre-norm block)
    side = {**attrs, "side": q_side(0.0157, "float16")}
    got = NormRunner(side, params, lambda _: pytest.fail("fell back to the reference"), False)([x, g, b, r, skip])
    ref = layernorm_ref(x, g, b, r, skip, **side)
    assert len(got) == len(ref) == 2 and got[1].dtype == ref[1].dtype == torch.float8_e4m3fn
    torch.testing.assert_close(got[0].float().cpu(), ref[0].float().cpu(), rtol=1e-2, atol=1e-2)
    steps = (got[1].float() - ref[1].float()).abs() / ref[1].float().abs().clamp(min=2 ** -6)
    assert steps.max() <= 0.126  # at most one e4m3 step (3 mantissa bits), where rounding ties differ
    assert (got[1].float() == ref[1].float()).float().mean() > 0.999
    # rows longer than the single-pass block: the looped kernel has no prologue or side output, the runner declines
    assert NormRunner(attrs, {"BLOCK_N": 16}, None, False).plan([x, g, b, r, skip]) is None
    assert NormRunner(side, {"BLOCK_N": 16}, None, False).plan([x, g, b, r, skip]) is None


def check_prologue_sum(device, params, shape=(3, 37, 768)):
    """An embedding sum normalized (passes.norm_prologue): x + pos (broadcast over the batch) + t, after an
    epilogue extra, LayerNorm and RMSNorm, against the reference."""
    from tensorforge.kernels.triton.runners import NormRunner
    from tensorforge.ops.fused.expr import ExprBuilder
    from tensorforge.ops.fused.norm import layernorm_ref, rmsnorm_ref
    e = ExprBuilder()
    pro = e.build(e.op("Add", [e.op("Add", [e.input(2), e.input(0)]), e.input(3)]))
    x, t = rand(shape, torch.float16, device, 30), rand(shape, torch.float16, device, 31)
    pos = rand((1,) + shape[1:], torch.float16, device, 32)
    g, b = rand(shape[-1:], torch.float16, device, 33) + 2, rand(shape[-1:], torch.float16, device, 34)
    r = rand(shape, torch.float16, device, 35)
    attrs = {"axis": -1, "epsilon": 1e-5, "prologue": pro, "epilogue": add_expr()}
    for rms in (False, True):
        ins = [x, g] + ([] if rms else [b]) + [r, pos, t]
        got = NormRunner(attrs, params, lambda _: pytest.fail("fell back to the reference"), rms)(ins)[0]
        ref = (rmsnorm_ref if rms else layernorm_ref)(*ins, **attrs)
        torch.testing.assert_close(got.float().cpu(), ref.float().cpu(), rtol=1e-2, atol=1e-2)
        assert ((rmsnorm_ref if rms else layernorm_ref)(*ins, **{**attrs, "prologue": None}).float()
                - ref.float()).abs().max() > 0.1  # the prologue mattered


interp = cases.interpreter_only


@interp
@pytest.mark.parametrize("rows", [1, 4, 8])
def test_lengths_fp32(interpret, rows):
    check_lengths("cpu", torch.float32, {"ROWS": rows, "num_warps": 4})


@interp
def test_lengths_fp16_and_forced_loop(interpret):
    check_lengths("cpu", torch.float16, {"ROWS": 4, "num_warps": 4}, lengths=(7, 768, 5000))
    # BLOCK_N 1024 caps the single pass: 1000 fits, 5000 loops over 1024-element chunks
    check_lengths("cpu", torch.float32, {"ROWS": 2, "BLOCK_N": 1024}, lengths=(1000, 5000))


@interp
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_operands_and_epilogues(interpret, dtype):
    for params in ({"ROWS": 4, "num_warps": 4}, {"ROWS": 16}, {"ROWS": 2, "BLOCK_N": 16}):
        check_operands("cpu", dtype, params)


@interp
def test_prologue_dequantized_skip(interpret):
    for params in ({"ROWS": 4, "num_warps": 4}, {"ROWS": 1}):
        check_prologue("cpu", params)


@interp
def test_prologue_sum_with_a_broadcast_input(interpret):
    check_prologue_sum("cpu", {"ROWS": 4, "num_warps": 4})


@interp
def test_old_params_fp64_and_out_buffers(interpret):
    check_operands("cpu", torch.float32, {"num_warps": 8})  # engines saved before ROWS: one row each
    check_lengths("cpu", torch.float64, {"ROWS": 4}, lengths=(7, 9000))
    check_out_buffer("cpu", torch.float32, {"ROWS": 4})


def _layer(shape, axis=-1, op="fused.LayerNorm"):
    from tensorforge.runtime.plan import LayerSpec
    from tensorforge.kernels import LayerShapes
    lay = LayerSpec("n", op, ["x"], ["y"], attrs={"axis": axis, "epsilon": 1e-5})
    shapes = None if shape is None else LayerShapes.of([{"dtype": "float16", "shape": list(shape), "kind": "activation"}])
    return lay, shapes


def test_candidates():
    """CUDA only; at most 4 level-3 configs from the row length, more tagged level 4, unique."""
    from tensorforge import kernels
    from tensorforge.kernels.triton.generated import norm_candidates
    cuda = torch.device("cuda")
    assert [c["source"] for c in kernels.candidates(*_layer((6304, 768)), torch.device("cpu"))] == ["aten"]
    if importlib.util.find_spec("triton"):  # shapes unknown: the default configs
        assert [c["name"] for c in kernels.candidates(*_layer(None), cuda)] == ["norm"] * 3 + ["reference"]
    for shape in ((6304, 768), (128, 768), (13, 7), (4, 2048), (1, 4096), (3, 5000), (2, 9000), (2, 3, 45),
                  None):
        cands = norm_candidates(*_layer(shape), cuda)
        lv = [c.get("level", 3) for c in cands]
        assert 2 <= lv.count(3) <= 4 and lv == sorted(lv) and set(lv) <= {3, 4}, (shape, cands)
        keys = [tuple(sorted(c["params"].items())) for c in cands]
        assert len(set(keys)) == len(keys) and all(c["name"] == "norm" for c in cands)
        assert all(c["params"]["ROWS"] & (c["params"]["ROWS"] - 1) == 0 for c in cands)
    first = norm_candidates(*_layer((6304, 768)), cuda)[0]["params"]
    assert first == {"ROWS": 4, "num_warps": 4}
    assert norm_candidates(*_layer((128, 768)), cuda)[0]["params"]["ROWS"] == 1  # few rows: more programs first
    assert max(c["params"]["ROWS"] for c in norm_candidates(*_layer((2, 3, 45)), cuda)) <= 8


def _compile_sm90(src, warps, consts, dtype, types=None):
    """PTX of tf_norm in `src` for sm90 (triton's bundled ptxas; no GPU, never the interpreter); types: argument
    types that differ from the default (pointers of `dtype`, the rest i32)."""
    import linecache
    triton = pytest.importorskip("triton")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    fname = "<tensorforge-norm-sm90-test>"
    linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)
    ns = {"__name__": "tensorforge_norm_sm90_test", "__file__": fname}
    exec(compile(src, fname, "exec"), ns)  # noqa: S102
    fn = ns["tf_norm"]
    sig = {a: "constexpr" if a in consts else (types or {}).get(a) or (f"*{dtype}" if a[:2] in ("in", "ou") else
           "fp32" if a == "eps" else "i32") for a in fn.arg_names}
    attrs = {(i,): [["tt.divisibility", 16]] for i, a in enumerate(fn.arg_names) if a[:2] in ("in", "ou") or a == "N"}
    ast = ASTSource(fn, sig, constexprs={(fn.arg_names.index(k),): v for k, v in consts.items()}, attrs=attrs)
    return triton.compile(ast, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps}).asm["ptx"]


def sm90_checks():
    """fp16 rows load and store 16-byte vectors; the looped bf16 kernel compiles."""
    from tensorforge.kernels.triton.rowwise import RowSignature, norm_source
    sig = RowSignature(("float16",) * 4, ("full", "inner", "inner", "full"), "float16", 0)
    src, _ = norm_source(sig, False, True, True, cases.residual_relu_expr())
    ptx = _compile_sm90(src, 4, {"ROWS": 4, "BLOCK_N": 1024}, "fp16")
    assert "ld.global.v4.b32" in ptx and "st.global.v4.b32" in ptx
    sig = RowSignature(("bfloat16", "bfloat16"), ("full", "inner"), "bfloat16", 0)
    src, _ = norm_source(sig, True, True, False, looped=True)
    assert "ld.global.v4.b32" in _compile_sm90(src, 8, {"ROWS": 2, "BLOCK_N": 4096}, "bf16")
    from tensorforge.passes.quant.skip_norm import dq_add_prologue, q_side  # x + DQ(e4m3 skip), LayerNorm
    sig = RowSignature(("float16", "float16", "float16", "float8e4m3fn"), ("full", "inner", "inner", "full"),
                       "float16", 0)
    src, pc = norm_source(sig, False, True, True, None, prologue=dq_add_prologue(1, 0.0123, 0, "float16"),
                          side=q_side(0.0157, "float16"), side_dt="float8e4m3fn")  # + its e4m3 Q as out1
    ptx = _compile_sm90(src, 4, {"ROWS": 4, "BLOCK_N": 1024}, "fp16",
                        {"in3": "*fp8e4nv", "out1": "*fp8e4nv", **{c: "fp32" for c, _ in pc}})
    assert "cvt.rn.satfinite.e4m3x2.f32" in ptx and "cvt.rn.f16x2.e4m3x2" in ptx


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton")
def test_kernels_compile_for_sm90_with_vector_loads():
    """Type errors the interpreter does not see fail here (compiled in a fresh process: no
    interpreter state, no cached interpreted kernels)."""
    kernel_checks.run_in_fresh_process("tests.kernels.test_triton_norm", "sm90_checks")
