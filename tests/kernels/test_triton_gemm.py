"""Triton "gemm" family: candidate legality and config space, generated sources, and the kernels
in triton's CPU interpreter (fp32 and fp16: the interpreter's bf16 tl.dot is wrong, bf16 runs in
tests/gpu/test_triton_gemm.py). The check helpers are shared with the GPU tests."""

import pytest
import torch

from tensorforge import kernels
from tensorforge.kernels import LayerShapes
from tensorforge.kernels.triton import gemm
from tensorforge.kernels.triton.gemm_source import GemmSignature, gemm_source, reduce_source
from tensorforge.ops import registry
from tensorforge.ops.fused.expr import ExprBuilder
from tensorforge.runtime.plan import LayerSpec

from . import cases

CUDA = torch.device("cuda")
TOL = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 2e-2}


def _gelu_expr():
    """gelu(y) (exact erf form), the BERT / ViT FFN1 epilogue."""
    b = ExprBuilder()
    return b.build(b.op("Gelu", [b.input(0)], {"approximate": "none"}))


def _layer(typ, inputs, out, attrs=None):
    """(LayerSpec, its LayerShapes): inputs are (dtype, shape, kind) or None."""
    lay = LayerSpec("l", typ, [f"i{k}" if i else None for k, i in enumerate(inputs)], ["o"], attrs=attrs or {})
    ins = [None if i is None else {"dtype": i[0], "shape": list(i[1]), "kind": i[2]} for i in inputs]
    return lay, LayerShapes.of(ins, [{"dtype": out[0], "shape": list(out[1]), "kind": "activation"}])


def _ffn(m=128, k=768, n=3072, dt="float16", extra=None, epi=None, b_kind="weight"):
    ins = [(dt, [1, m, k], "activation"), (dt, [k, n], b_kind), (dt, [n], "weight")]
    if extra is not None:
        ins.append(extra)
    return _layer("fused.MatMulAct", ins, (dt, [1, m, n]), {"alpha": 1.0, "epilogue": epi or _gelu_expr()})


# ---- candidates -----------------------------------------------------------------------------
def test_candidates_offered_for_weight_gemms():
    cands = gemm.gemm_candidates(*_ffn(), CUDA)
    assert cands and all(c["source"] == "triton" and c["name"] == "gemm" for c in cands)
    assert sum("level" not in c for c in cands) <= 6
    plain = _layer("MatMul", [("bfloat16", [6, 7, 64], "activation"), ("bfloat16", [64, 40], "weight")],
                   ("bfloat16", [6, 7, 40]))
    assert gemm.gemm_candidates(*plain, CUDA)
    gemm_t = _layer("fused.GemmAct", [("float16", [5, 64], "activation"), ("float16", [40, 64], "weight"),
                                      ("float16", [1, 40], "weight")], ("float16", [5, 40]),
                    {"transB": 1, "alpha": 0.5, "beta": 2.0, "epilogue": _gelu_expr()})
    assert gemm.problem(*gemm_t) == (5, 40, 64) and gemm.gemm_candidates(*gemm_t, CUDA)


@pytest.mark.parametrize("case", ["cpu", "fp32", "activation_b", "transA", "strided_extra", "bigger_extra",
                                  "bias_dtype", "unsupported_epilogue", "no_shape_info"])
def test_candidates_declined(case):
    res = ("float16", [1, 128, 3072], "activation")
    lay = _ffn(extra=res, epi=cases.residual_relu_expr())
    dev = CUDA
    if case == "cpu":
        dev = torch.device("cpu")
    elif case == "fp32":
        lay = _ffn(dt="float32")
    elif case == "activation_b":
        lay = _ffn(b_kind="activation")
    elif case == "transA":
        lay = _layer("Gemm", [("float16", [64, 5], "activation"), ("float16", [64, 40], "weight")],
                     ("float16", [5, 40]), {"transA": 1})
    elif case == "strided_extra":  # [2, 1, N] over a [2, 128, N] output: neither full, row, outer nor scalar
        lay = _ffn(extra=("float16", [2, 1, 3072], "activation"), epi=cases.residual_relu_expr())
        lay[1].inputs[0]["shape"] = [2, 128, 768]
        lay[1].outputs[0]["shape"] = [2, 128, 3072]
    elif case == "bigger_extra":
        lay = _ffn(extra=("float16", [3, 128, 3072], "activation"), epi=cases.residual_relu_expr())
    elif case == "bias_dtype":
        lay[1].inputs[2]["dtype"] = "float32"
    elif case == "unsupported_epilogue":
        b = ExprBuilder()
        x = b.op("Cast", [b.input(1)], {"to": 10})
        lay = _ffn(extra=("complex64", [3072], "weight"), epi=b.build(b.op("Add", [b.input(0), x])))
    if case == "no_shape_info":  # the registry never asks a family that needs shapes without them
        assert gemm.gemm_candidates(*lay, dev) and kernels.family_of({"source": "triton", "name": "gemm"}).needs_shapes
        assert any(t["name"] == "gemm" for t in kernels.candidates(*lay, dev)) == cases.HAS_TRITON
        assert not any(t["source"] == "triton" and t["name"] == "gemm" for t in kernels.candidates(lay[0], None, dev))
    else:
        assert gemm.gemm_candidates(*lay, dev) == []


def test_candidates_accept_full_row_scalar_and_outer_extras():
    for shape in ([1, 128, 3072], [128, 3072], [3072], [1, 1, 3072], [1], [], [1, 128, 1]):
        assert gemm.gemm_candidates(*_ffn(extra=("float16", shape, "weight"), epi=cases.residual_relu_expr()), CUDA)


def _pow2(n):
    return max(16, 1 << (n - 1).bit_length())


@pytest.mark.parametrize("mnk", [(128, 768, 768), (128, 3072, 768), (128, 768, 3072), (6304, 768, 3072),
                                 (4096, 2304, 768), (700, 768, 768), (1, 64, 64), (37, 50, 29), (512, 100, 1536)])
def test_config_space(mnk):
    m, n, k = mnk
    cands = gemm.configs(m, n, k)
    keys = [tuple(sorted(c["params"].items())) for c in cands]
    assert len(keys) == len(set(keys))
    default = [c for c in cands if "level" not in c]
    assert 1 <= len(default) <= 6 and all(c.get("level") == 4 for c in cands[len(default):])
    for c in cands:
        p = c["params"]
        assert set(p) >= {"BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M", "num_warps", "num_stages"}
        assert p["BLOCK_M"] <= _pow2(m) and p["BLOCK_N"] <= _pow2(n) and p["BLOCK_K"] <= _pow2(k)
        assert all(p[b] % 16 == 0 for b in ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
        assert p["num_warps"] in (4, 8) and 2 <= p["num_stages"] <= 5
    split = [c for c in cands if "SPLIT_K" in c["params"]]
    serial = [c for c in split if c["params"].get("SERIAL")]
    two_kernel = [c for c in split if not c["params"].get("SERIAL")]
    assert all(2 <= c["params"]["SPLIT_K"] <= 16 for c in serial) and all(2 <= c["params"]["SPLIT_K"] <= 8
                                                                          for c in two_kernel)
    for c in serial:  # every split non-empty
        p = c["params"]
        kper = -(-(-(-k // p["SPLIT_K"])) // p["BLOCK_K"]) * p["BLOCK_K"]
        assert (p["SPLIT_K"] - 1) * kper < k
    if m > 512:
        assert not split
    elif m * n <= 128 * 768 and k >= 512:  # few output tiles: serial split-K is a default candidate
        assert any("level" not in c for c in serial)
    assert all(c.get("level") == 4 for c in two_kernel) and (not two_kernel or k >= 1536)
    if m >= 1024:
        assert (default[0]["params"]["BLOCK_M"], default[0]["params"]["BLOCK_N"]) == (128, 128)


# ---- generated source -----------------------------------------------------------------------
def _sig(**kw):
    base = dict(dtype="float16", out_dtype="float16", bias=("float16", "inner"), extras=(("float16", "full"),),
                alpha=0.5, beta=2.0)
    return GemmSignature(**{**base, **kw})


def test_gemm_source_shapes():
    src, consts = gemm_source(_sig(), cases.residual_relu_expr())
    compile(src, "gemm", "exec")
    assert consts == [] and "def tf_gemm(a, b, c, x1, out, M, N, K, sam, sak, sbk, sbn" in src
    for frag in ("GROUP_M * grid_n", "tl.dot(xa, xb, acc)", "kmask", "acc * 0.5", "* 2.0", "x1 + offs",
                 "c + rn[None, :]", "tl.store(out + offs"):
        assert frag in src, frag
    even = gemm_source(_sig(even_k=True, int64=True, dtype="float32", out_dtype="float32"))[0]
    assert "kmask" not in even and 'input_precision="ieee"' in even and "rm.to(tl.int64)" in even
    split = gemm_source(_sig(split_k=True), cases.residual_relu_expr())[0]
    assert "tl.store(ws + pid_k.to(tl.int64) * sws + offs, acc" in split and "x1" not in split
    red, _ = reduce_source(_sig(split_k=True, extras=(("float16", "outer"),)), cases.residual_relu_expr())
    compile(red, "red", "exec")
    assert "tl.static_range(1, SPLIT_K)" in red and "x1 + ram[:, None]" in red


def test_nonfinite_epilogue_constants_become_arguments():
    src, consts = gemm_source(_sig(extras=(("float32", "scalar"),)), cases.where_cast_expr())
    head = src[src.index("def tf_gemm("):].split("\n")[0]
    assert consts and consts[0][1] == float("-inf") and consts[0][0] in head


# ---- kernels (shared with the GPU tests) ------------------------------------------------------
def rand(shape, dtype, device, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) * 2 - 1).to(dtype).to(device)


def gemm_cases(device, dtype, m=37, n=50, k=29):
    """(type, attrs, inputs) over bias / alpha / beta / transB / GELU / residual / outer / scalar."""
    a3, a2 = rand((2, m, k), dtype, device, 1), rand((m, k), dtype, device, 2)
    b, bt = rand((k, n), dtype, device, 3), rand((n, k), dtype, device, 4)
    bias, res = rand((n,), dtype, device, 5), rand((2, m, n), dtype, device, 6)
    gelu, rr = _gelu_expr(), cases.residual_relu_expr()
    yield "MatMul", {}, [a3, b]
    yield "fused.MatMulAct", {"alpha": 1.0, "epilogue": gelu}, [a3, b, bias]
    yield "fused.MatMulAct", {"alpha": 0.5, "epilogue": rr}, [a3, b, bias, res]
    yield "fused.MatMulAct", {"alpha": 1.0, "epilogue": cases.gelu_bias_expr()}, [a3, b, None, bias]
    yield "Gemm", {"transB": 1, "alpha": 1.5, "beta": 0.5}, [a2, bt, bias.reshape(1, n)]
    yield "fused.GemmAct", {"transB": 1, "epilogue": rr}, [a2, bt, rand((m, 1), dtype, device, 7), res[0]]
    yield "fused.GemmAct", {"epilogue": cases.act_chain_expr()}, [a2, b, None, rand((1,), dtype, device, 8)]


def check(typ, attrs, ins, params, dtype, plans=True):
    """The runner's output matches the op's reference (float64 math on the same inputs)."""
    run = gemm.GemmRunner(typ, attrs, params, lambda x: registry.get(typ).run(x, attrs, 17))
    got = run(ins)[0]
    want = registry.get(typ).run(ins, attrs, 17)[0]
    exact = registry.get(typ).run([None if t is None else t.double() for t in ins], attrs, 17)[0]
    assert got.dtype == want.dtype and tuple(got.shape) == tuple(want.shape), (got.dtype, want.dtype)
    assert all(p is not None for p in run.plans.values()) == plans
    err = (got.float() - exact.float()).abs().max().item() / max(exact.abs().max().item(), 1e-6)
    assert err <= TOL[dtype], (typ, params, err)
    return run


def params(bm=16, bn=32, bk=16, split=None, warps=4, stages=2, serial=False):
    p = {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": 2, "num_warps": warps, "num_stages": stages}
    p = {**p, "SPLIT_K": split} if split else p
    return {**p, "SERIAL": 1} if serial else p


interp = cases.interpreter_only


@interp
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_interpreter_gemm_cases(interpret, dtype):
    for i, (typ, attrs, ins) in enumerate(gemm_cases("cpu", dtype)):
        check(typ, attrs, ins, params(split=3 if i % 2 else None), dtype)


@interp
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_interpreter_serial_split_k(interpret, dtype):
    """One-kernel split-K: same results as the reference, counters reset (a second run agrees)."""
    for typ, attrs, ins in gemm_cases("cpu", dtype, k=70):
        run = check(typ, attrs, ins, params(split=3, serial=True), dtype)
        first = run(ins)[0]
        for _ in range(2):  # a counter left non-zero would skip the finish: the NaNs would stay
            out = torch.full_like(first, float("nan"))
            assert run(ins, [out])[0] is out
            torch.testing.assert_close(out, first, rtol=0, atol=0)


@interp
def test_interpreter_even_k_int64_and_out_buffer(interpret, monkeypatch):
    monkeypatch.setattr(gemm, "INT64_FROM", 0)
    typ, attrs, ins = list(gemm_cases("cpu", torch.float16, m=20, n=33, k=32))[2]
    run = check(typ, attrs, ins, params(bk=16, split=2), torch.float16)
    out = torch.empty(2, 20, 33, dtype=torch.float16)
    assert run(ins, [out])[0] is out
    check(typ, attrs, ins, params(bm=32, bn=64, bk=32), torch.float16)


@interp
def test_interpreter_strided_a_and_fallbacks(interpret):
    a = rand((2, 29, 37), torch.float32, "cpu", 9).transpose(1, 2)  # rows do not fold: copied
    b = rand((29, 50), torch.float32, "cpu", 10)
    check("MatMul", {}, [a, b], params(), torch.float32)
    res = rand((2, 1, 50), torch.float32, "cpu", 11)  # broadcast over rows: the reference runs
    attrs = {"alpha": 1.0, "epilogue": cases.residual_relu_expr()}
    check("fused.MatMulAct", attrs, [a, b, None, res], params(), torch.float32, plans=False)
    check("MatMul", {}, [a.double(), b.double()], params(), torch.float32, plans=False)


@interp
def test_interpreter_through_tactic_factory(interpret):
    typ, attrs, ins = list(gemm_cases("cpu", torch.float16))[1]
    lay = LayerSpec("l", typ, [], [], attrs=attrs, tactic={"source": "triton", "name": "gemm", "params": params()})
    fn = kernels.make_kernel(lay, 17, torch.device("cpu"))
    assert getattr(fn, "takes_out", False) and kernels.writes_in_place(lay.tactic)
    want = registry.get(typ).run(ins, attrs, 17)[0]
    torch.testing.assert_close(fn(ins)[0].float(), want.float(), rtol=1e-2, atol=1e-2)
