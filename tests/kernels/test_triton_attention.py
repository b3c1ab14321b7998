"""The flash_attention triton tactic of fused.Attention: candidates, view/stride arithmetic, the
kernel in triton's CPU interpreter (fp16: the interpreter's bf16 tl.dot is broken) against the
op's reference, and an offline sm90 compile of the level-3 configs (no GPU needed).
tests/gpu/test_triton_attention.py runs the same cases compiled on CUDA, bf16 included."""
import importlib.util
import os

import pytest
import torch

from tensorforge.kernels import LayerShapes
from tensorforge.kernels.triton import attention as fa
from tensorforge.ops.fused.attention import apply_view, attention_ref
from tensorforge.runtime.plan import LayerSpec

HAS_TRITON = importlib.util.find_spec("triton") is not None
CUDA = torch.device("cuda")


def _rand(shape, seed, dtype=torch.float32, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) * 4 - 2).to(dtype).to(device)


def packed_case(B, H, S, d, mask_shape=None, **kw):
    """GPT-2 style: one [B, S, 3·H·d] tensor, Q/K/V narrowed out of it, heads merged back."""
    x = _rand((B, S, 3 * H * d), 1, **kw)
    hd = H * d
    split = [["reshape", [0, S, H, d]], ["transpose", [0, 2, 1, 3]]]
    attrs = {"q_view": [["narrow", 2, 0, hd]] + split,
             "k_view": [["narrow", 2, hd, hd], ["reshape", [0, S, H, d]], ["transpose", [0, 2, 3, 1]]],
             "v_view": [["narrow", 2, 2 * hd, hd]] + split, "k_transposed": 1, "scale": 0.2,
             "out_view": [["transpose", [0, 2, 1, 3]], ["reshape", [0, S, hd]]]}
    mask = None if mask_shape is None else _rand(mask_shape, 2, device=kw.get("device", "cpu")) * 3
    return [x, x, x] + ([mask] if mask is not None else []), attrs


def vit_case(B, H, S, d, **kw):
    """ViT style: packed [B, S, 3·H·d] viewed as [3, B, H, S, d] and selected (no mask)."""
    x = _rand((B, S, 3 * H * d), 3, **kw)
    base = [["reshape", [0, S, 3, H, d]], ["transpose", [2, 0, 3, 1, 4]]]
    attrs = {"q_view": base + [["select", 0, 0]],
             "k_view": base + [["select", 0, 1], ["transpose", [0, 1, 3, 2]]],
             "v_view": base + [["select", 0, 2]], "k_transposed": 1, "scale": d ** -0.5,
             "out_view": [["transpose", [0, 2, 1, 3]], ["reshape", [0, S, H * d]]]}
    return [x, x, x], attrs


def plain_case(B, H, L, S, d, dv, mask=None, **kw):
    """Separate [B, H, L, d] / [B, H, S, d] / [B, H, S, dv] operands, no views, default scale."""
    ins = [_rand((B, H, L, d), 4, **kw), _rand((B, H, S, d), 5, **kw), _rand((B, H, S, dv), 6, **kw)]
    return ins + ([mask] if mask is not None else []), {}


def _causal(mask, L, S, device):
    keep = torch.ones(L, S, dtype=torch.bool, device=device).tril()
    if mask is None:
        return keep
    if mask.dtype == torch.bool:
        return mask & keep
    return mask + torch.zeros(L, S, device=device).masked_fill(~keep, float("-inf"))


def expected(ins, attrs, dtype, causal=False):
    """The reference in fp32 on the same (rounded) inputs; the mask rounded as the op rounds it."""
    x = [t.float() for t in ins[:3]]
    mask = ins[3] if len(ins) > 3 else None
    if mask is not None and mask.dtype != torch.bool:
        mask = mask.to(dtype).float()
    if causal:
        q, k = apply_view(x[0], attrs.get("q_view")), apply_view(x[1], attrs.get("k_view"))
        mask = _causal(mask, q.shape[-2], k.shape[-1 if attrs.get("k_transposed") else -2], q.device)
    return attention_ref(*x, mask, **attrs)


def run_check(ins, attrs, params, dtype, causal=False, tol=None):
    """Run the runner into a preallocated output buffer and compare with the reference."""
    want = expected(ins, attrs, dtype, causal)
    runner = fa.FlashAttentionRunner({**attrs, "causal": int(causal)}, params, None)
    buf = torch.empty(want.shape, dtype=dtype, device=ins[0].device)
    got = runner(ins, [buf])[0]
    assert got is buf
    rtol, atol = tol or ((1e-2, 4e-3) if dtype == torch.float16 else (2e-2, 3e-2))
    torch.testing.assert_close(got.float(), want, rtol=rtol, atol=atol)
    assert len(runner.plans) == 1 and next(iter(runner.plans.values())) is not None


def run_check_q(ins, attrs, params, dtype, qtype):
    """With an output Q (attrs out_q): the stored e4m3 / int8 values vs the reference's output rounded to
    the inputs' type and quantized, in quantization steps (tests/kernels/qgemm_cases.check)."""
    from tensorforge.ops.fused.attention import quantize_out

    from .qgemm_cases import check
    y = expected(ins, attrs, dtype).to(dtype)
    out_q = [float(y.float().abs().max()) / (300.0 if qtype == "float8e4m3fn" else 100.0),
             0 if qtype != "uint8" else 128, qtype]
    runner = fa.FlashAttentionRunner({**attrs, "out_q": out_q}, params, None)
    got = runner(ins)[0]
    assert next(iter(runner.plans.values())) is not None  # the kernel, not the fallback
    check(got, quantize_out(y, out_q).cpu())


def _layer(dtype="float16", d=64, mask=None):
    q = {"dtype": dtype, "shape": (2, 197, 3 * 4 * d), "kind": "act"}
    info = LayerShapes.of([q, q, q, mask], [{"dtype": dtype, "shape": (2, 197, 4 * d)}])
    lay = LayerSpec("attn", "fused.Attention", ["x", "x", "x", "m" if mask else None], ["y"],
                    attrs=vit_case(1, 4, 197, d, device="meta")[1])
    return lay, info


def test_candidates():
    tacs = fa.flash_candidates(*_layer(), CUDA)
    level3 = [t for t in tacs if "level" not in t]
    assert 2 <= len(level3) <= 4 and len(tacs) > len(level3)
    assert all(t["source"] == "triton" and t["name"] == "flash_attention" for t in tacs)
    assert set(level3[0]["params"]) == {"BLOCK_M", "BLOCK_N", "num_warps", "num_stages"}
    assert fa.flash_candidates(*_layer(), torch.device("cpu")) == []
    assert fa.flash_candidates(*_layer("float32"), CUDA) == []
    assert fa.flash_candidates(*_layer(d=256), CUDA) == []
    assert fa.flash_candidates(*_layer(mask={"dtype": "int64", "shape": (2, 1, 1, 197), "kind": "act"}), CUDA) == []
    big = fa.flash_candidates(*_layer(d=128, mask={"dtype": "bool", "shape": (2, 1, 1, 197), "kind": "act"}), CUDA)
    assert big and all(fa.smem_bytes(t["params"]["BLOCK_M"], t["params"]["BLOCK_N"], t["params"]["num_stages"],
                                     128, 128, (1, True)) <= fa.smem_limit(CUDA) for t in big)
    assert fa.smem_bytes(64, 64, 3, 40, 40, (4, False)) == 2 * 64 * 64 + 3 * (2 * 64 * 128 + 4 * 64 * 64)


def test_views_are_strides_of_the_sources():
    ins, attrs = packed_case(2, 3, 5, 8)
    q = fa._meta_view(ins[0], attrs["q_view"])
    k = fa._meta_view(ins[1], attrs["k_view"], True)
    assert q.shape == (2, 3, 5, 8) and q.stride() == (360, 8, 72, 1) and q.storage_offset() == 0
    assert k.shape == (2, 3, 5, 8) and k.stride() == (360, 8, 72, 1) and k.storage_offset() == 24
    shape, strides = fa._inverse_out((2, 3, 5, 8), attrs["out_view"])
    assert shape == (2, 5, 24) and strides == (120, 8, 24, 1)
    assert fa._inverse_out((2, 3, 5, 8), [["select", 0, 0]]) is None
    assert fa.block_d(24) == 32 and fa.block_d(8) == 16 and fa.block_d(64) == 64


def test_unsupported_signatures_run_the_fallback():
    ins, attrs = plain_case(1, 2, 5, 7, 16, 16)
    calls = []

    def ref(inputs):
        calls.append(1)
        return (attention_ref(*inputs, **attrs),)
    r = fa.FlashAttentionRunner(attrs, {}, ref)
    got = r(ins)[0]  # fp32 inputs: not the kernel's
    torch.testing.assert_close(got, attention_ref(*ins, **attrs))
    assert calls and list(r.plans.values()) == [None]


F16 = torch.float16
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _interp_cases():
    """Interpreter checks by id (fp16; run in one subprocess with TRITON_INTERPRET=1)."""
    B, H, L, S = 2, 3, 37, 50
    masks = {"none": None, "f16_1_1_L_S": _rand((1, 1, L, S), 7, F16), "bool_B_1_L_S": _rand((B, 1, L, S), 8) > -1.2,
             "f32_L_S": _rand((L, S), 9)}
    cases = {
        "packed_S37_d16_mask_B11S": lambda: run_check(*packed_case(2, 3, 37, 16, (2, 1, 1, 37), dtype=F16),
                                                      {"BLOCK_M": 32, "BLOCK_N": 32}, F16),
        "packed_S50_d32": lambda: run_check(*packed_case(2, 3, 50, 32, dtype=F16), {"BLOCK_M": 32, "BLOCK_N": 64}, F16),
        "packed_S37_d32_mask_B1SS": lambda: run_check(*packed_case(2, 3, 37, 32, (2, 1, 37, 37), dtype=F16),
                                                      {"BLOCK_M": 64, "BLOCK_N": 64}, F16),
        "vit_select_S50_d32": lambda: run_check(*vit_case(2, 3, 50, 32, dtype=F16),
                                                {"BLOCK_M": 64, "BLOCK_N": 32}, F16),
        "causal_L37_S50": lambda: run_check(*plain_case(B, H, L, S, 16, 16, dtype=F16), {"BLOCK_M": 32, "BLOCK_N": 16},
                                            F16, causal=True),
        "causal_S50_mask": lambda: run_check(*plain_case(B, H, S, S, 16, 16, _rand((B, 1, 1, S), 10), dtype=F16),
                                             {"BLOCK_M": 32, "BLOCK_N": 32}, F16, causal=True),
    }
    dead = _rand((B, 1, L, S), 11, F16)
    dead[:, :, 5] = float("-inf")  # fully masked query rows give 0, as the reference does
    cases["fully_masked_rows"] = lambda: run_check(*plain_case(B, H, L, S, 32, 32, dead, dtype=F16),
                                                   {"BLOCK_M": 32, "BLOCK_N": 32}, F16)
    for qtype in ("float8e4m3fn", "int8", "uint8"):
        cases[f"out_q_{qtype}"] = (lambda qt=qtype: run_check_q(*packed_case(2, 3, 37, 16, (2, 1, 1, 37), dtype=F16),
                                                               {"BLOCK_M": 32, "BLOCK_N": 32}, F16, qt))
    for zoo_name in ("bert_base_small", "gpt2_small_small"):
        cases[f"engine_{zoo_name}"] = (lambda n=zoo_name: engine_check(n))
    for name, m in masks.items():
        cases[f"pad_d24_dv40_{name}"] = (lambda m=m: run_check(*plain_case(B, H, L, S, 24, 40, m, dtype=F16),
                                                                {"BLOCK_M": 32, "BLOCK_N": 32}, F16))
    return cases


def engine_check(name, params=None, device="cpu"):
    """A zoo model's FP16 engine with every fused.Attention forced to flash_attention vs ORT (FP32)."""
    import numpy as np

    import tensorforge as tf
    from tensorforge import zoo
    from tensorforge.testing import run_ort
    model, feed = zoo.get_model(name), zoo.random_inputs(name, 2, seed=5)
    eng = tf.Builder(tf.BuilderConfig(device=device, fp16=True, opt_level=0)).build(model)
    attn = [lay for lay in eng.plan.layers if lay.type == "fused.Attention"]
    assert attn and all(lay.precision == "float16" for lay in attn)
    for lay in attn:
        lay.tactic = {"source": "triton", "name": "flash_attention",
                      "params": params or {"BLOCK_M": 32, "BLOCK_N": 32, "num_warps": 4, "num_stages": 3}}
    launched, orig = [], fa.FlashAttentionRunner._launcher
    fa.FlashAttentionRunner._launcher = lambda self, *a: launched.append(a) or orig(self, *a)
    try:
        got = eng.create_execution_context().infer(feed)
    finally:
        fa.FlashAttentionRunner._launcher = orig
    assert len(launched) == len(attn), (len(launched), len(attn))  # the kernel ran, not the fallback
    for k, r in run_ort(model, feed).items():
        g = got[k].float().cpu().numpy().astype(np.float64)
        if np.issubdtype(r.dtype, np.floating):
            cos = float(g.ravel() @ r.ravel() / (np.linalg.norm(g) * np.linalg.norm(r)))
            assert cos >= 0.9999, (k, cos)
            np.testing.assert_allclose(g, r, rtol=2e-2, atol=2e-2 * max(1.0, float(np.abs(r).max())), err_msg=k)


def _main(what):
    """Subprocess entry: run the interpreter cases or the offline compiles, print a JSON report."""
    import json
    import traceback
    res = {}
    jobs = _interp_cases() if what == "interp" else _compile_jobs()
    for name, job in jobs.items():
        try:
            job()
            res[name] = "ok"
        except Exception:  # noqa: BLE001 - reported to the parent test
            res[name] = traceback.format_exc()[-3000:]
    print("RESULT " + json.dumps(res))


def _subprocess(what, interpret):
    import json
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    cmd = f"from tests.kernels.test_triton_attention import _main; _main({what!r})"
    p = subprocess.run([sys.executable, "-c", cmd], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, p.stdout[-2000:] + p.stderr[-3000:]
    return json.loads(line[-1][7:])


@pytest.fixture(scope="module")
def interp_results():
    return _subprocess("interp", True)


@pytest.mark.skipif(not HAS_TRITON or torch.cuda.is_available(),
                    reason="needs triton (interpreter) on a machine without CUDA")
@pytest.mark.parametrize("case", list(_interp_cases()))
def test_interpreter_matches_reference(interp_results, case):
    assert interp_results[case] == "ok", interp_results[case]


def _offline_compile(cfg, d, mask_kind=1, mask_row=True, causal=False, pad=True, out_q=0):
    """Compile the kernel for sm90 without a GPU (triton's bundled ptxas), runtime-like args."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from tensorforge.kernels.triton.attention_source import NAME, SOURCE
    from tensorforge.kernels.triton.launch import compile_source
    fn = compile_source(SOURCE, NAME).jit
    bm, bn, warps, stages = cfg
    const = dict(D=d, DV=d, BLOCK_M=bm, BLOCK_N=bn, BLOCK_D=fa.block_d(d), BLOCK_DV=fa.block_d(d),
                 PAD_D=fa.block_d(d) != d, PAD_DV=fa.block_d(d) != d, MASK_KIND=mask_kind, MASK_ROW=mask_row,
                 CAUSAL=causal, PAD_M=pad, TAIL_LOOP=pad or causal, OUT_Q=out_q)
    const.update({n: 1 for n in ("sqd", "skd", "svd", "smn", "sod")})  # unit strides specialize
    sig = {}
    for n in fn.arg_names:
        sig[n] = "constexpr" if n in const else ("*fp8e4nv" if n == "O" and out_q == 1 else "*fp16" if n in "QKVO" else
                                                 "*u8" if n == "Mk" and mask_kind == 2 else
                                                 "*fp16" if n == "Mk" else "fp32" if n in ("qk_scale", "oqs", "oqz")
                                                 else "i32")
    div = [i for i, n in enumerate(fn.arg_names)
           if sig[n] != "constexpr" and n not in ("H", "L", "S", "qk_scale", "oqs", "oqz")]
    src = ASTSource(fn=fn, signature=sig, constexprs=const, attrs={(i,): [["tt.divisibility", 16]] for i in div})
    return triton.compile(src, target=GPUTarget("cuda", 90, 128), options={"num_warps": warps, "num_stages": stages})


def _check_compiled(cfg, d, **kw):
    c = _offline_compile(cfg, d, **kw)
    bm, bn, _, stages = cfg
    mask = None if kw.get("mask_kind", 1) == 0 else (1 if kw.get("mask_kind") == 2 else 2, kw.get("mask_row", True))
    assert c.metadata.shared <= fa.smem_bytes(bm, bn, stages, d, d, mask) + 2048, (cfg, c.metadata.shared)
    assert ("wgmma" in c.asm["ptx"]) == (bm >= 64), cfg  # Hopper tensor-core MMAs
    if stages > 1:
        assert c.metadata.shared >= 2 * bn * fa.block_d(d) * 2, (cfg, c.metadata.shared)  # K/V multi-buffered


def _compile_jobs():
    """Offline sm90 compiles: the level-3 configs (d=64, row mask) and one padded causal bool-mask variant."""
    jobs = {}
    for t in fa.flash_candidates(*_layer(), CUDA):
        if "level" not in t:
            p = t["params"]
            cfg = (p["BLOCK_M"], p["BLOCK_N"], p["num_warps"], p["num_stages"])
            jobs[str(cfg)] = (lambda cfg=cfg: _check_compiled(cfg, 64))
    jobs["d40_bool_causal"] = lambda: _check_compiled((64, 64, 4, 3), 40, mask_kind=2, mask_row=False, causal=True)
    jobs["d64_out_q_e4m3"] = lambda: _check_compiled((64, 64, 4, 3), 64, out_q=1)
    return jobs


def _has_ptxas():
    spec = importlib.util.find_spec("triton")
    return spec is not None and os.path.exists(os.path.join(os.path.dirname(spec.origin), "backends", "nvidia",
                                                            "bin", "ptxas"))


@pytest.mark.skipif(not _has_ptxas(), reason="needs triton's nvidia backend (ptxas)")
def test_configs_compile_for_sm90():
    res = _subprocess("compile", False)
    bad = {k: v for k, v in res.items() if v != "ok"}
    assert len(res) >= 3 and not bad, bad
