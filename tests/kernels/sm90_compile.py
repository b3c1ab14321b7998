"""The generated kernels as the GPU would compile them, without a GPU: each family's runner is called
on CPU tensors with the configs the builder offers on an H200 (level 3 first), its launches are
recorded instead of run, and each distinct (kernel, signature, constants, warps, stages) is compiled
for sm90 by Triton and ptxas. Catches what the interpreter cannot: type errors of the compiled
language (tl.dot operand types, fp8 casts, loop-carried types), configs over the shared-memory limit.

Runs in a fresh process without TRITON_INTERPRET (kernel_checks.run_in_fresh_process):
    python -c "from tests.kernels.sm90_compile import main; main()"   # every family, a summary line each
    python -c "from tests.kernels.sm90_compile import main; main(['sweep'])"   # every level-3/4 config
"""
from __future__ import annotations

import contextlib
import time

import torch

SMEM_MAX = 227 * 1024  # the most dynamic shared memory one block may use on sm90
TRITON_TYPE = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32", torch.float64: "fp64",
               torch.int8: "i8", torch.uint8: "u8", torch.int16: "i16", torch.int32: "i32", torch.int64: "i64",
               torch.bool: "i1", torch.float8_e4m3fn: "fp8e4nv", torch.float8_e5m2: "fp8e5"}
OPTIONS = ("num_warps", "num_stages", "num_ctas", "maxnreg")


@contextlib.contextmanager
def recording():
    """Launches of generated kernels are collected as (kernel, args, meta) and not run."""
    from tensorforge.kernels.triton import launch
    got, run = [], launch.Kernel.run

    def record(self, grid, *args, **meta):
        got.append((self, args, meta))
    launch.Kernel.run = record
    try:
        yield got
    finally:
        launch.Kernel.run = run


def _arg(a):
    """(triton type or 'constexpr', value, divisible by 16) of one launch argument, as Triton's JIT
    specializes it (None and the integer 1 become constants)."""
    if isinstance(a, torch.Tensor):
        return "*" + TRITON_TYPE[a.dtype], None, True
    if a is None or (isinstance(a, int) and not isinstance(a, bool) and a == 1):
        return "constexpr", a, False
    if isinstance(a, bool):
        return "i1", None, False
    if isinstance(a, int):
        return ("i32" if -2**31 <= a < 2**31 else "i64"), None, a % 16 == 0
    if isinstance(a, float):
        return "fp32", None, False
    raise TypeError(f"launch argument of type {type(a).__name__}")


def compile_launch(kernel, args, meta):
    """Triton's compiled kernel of one recorded launch, for sm90 (raises on any compile error)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    fn = kernel.jit
    sig, consts, attrs = {}, {}, {}
    for i, (name, p) in enumerate(zip(fn.arg_names, fn.params)):
        if i < len(args):
            ty, val, div16 = _arg(args[i])
            if p.is_constexpr:
                ty, val = "constexpr", args[i]
        elif name in meta:
            ty, val, div16 = "constexpr", meta[name], False
        else:  # a defaulted parameter
            ty, val, div16 = "constexpr", p.default, False
        sig[name] = ty
        if ty == "constexpr":
            consts[(i,)] = val
        elif div16:
            attrs[(i,)] = [["tt.divisibility", 16]]
    opts = {k: meta[k] for k in OPTIONS if k in meta}
    src = ASTSource(fn, sig, constexprs=consts, attrs=attrs)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options=opts)


def _key(kernel, args, meta):
    return (kernel.key, tuple(_arg(a)[:2] if not isinstance(a, torch.Tensor) else _arg(a)[0] for a in args),
            tuple(sorted((k, repr(v)) for k, v in meta.items())))


# ---- the families: each calls its runners on CPU tensors with H200 configs ----------------------
def conv_family():
    from tensorforge.kernels.triton import conv
    from tests.kernels.test_triton_conv import conv_cases
    cfg = conv.configs(64, 128, 4 * 14 * 14)[0][0]
    for i, (_, attrs, ins) in enumerate(conv_cases("cpu", torch.float16)):
        if i < 3:
            conv.ConvRunner(attrs, conv.tactic(cfg)["params"], None)(ins)


def qconv_family():
    from tensorforge.kernels.triton import qconv
    from tests.kernels.test_triton_qconv import F8, qconv_cases
    cfg = qconv.qconv_configs(64, 128, 4 * 14 * 14)[0][0]
    for qtype in ("int8", F8):
        for i, (_, attrs, ins) in enumerate(qconv_cases("cpu", qtype)):
            if i in (0, 2, 4, 6):  # relu, out_q, folded output Q, quantized residual
                qconv.QConvRunner(attrs, qconv.tactic(cfg)["params"], None)(ins)


def dwconv_family():
    from tensorforge.kernels.triton import dwconv
    from tests.kernels.test_triton_dwconv import dw_cases
    cfgs = [c for c, level in dwconv.configs(32) if level <= 3][:2]
    for i, (_, attrs, ins, _, _) in enumerate(dw_cases("cpu", torch.float16)):
        if i < 3:
            for cfg in cfgs[:1 if i else 2]:
                dwconv.DwConvRunner(attrs, dwconv.tactic(cfg)["params"], None)(ins)


def se_family():
    from tensorforge.kernels.triton import se
    from tests.kernels.test_triton_se import se_cases
    for i, (_, attrs, ins32, nhwc) in enumerate(se_cases()):
        if i > 1:
            break
        ins = [None if t is None else t.to(torch.float16) for t in ins32]
        if nhwc:
            ins[0] = ins[0].contiguous(memory_format=torch.channels_last)
        for t in se.configs(64, 256, 56 * 56):
            if t.get("level", 3) <= 3:
                se.SERunner(attrs, t["params"], None)(ins)


def qgemm_family():
    from tensorforge.kernels.triton import qgemm
    from tests.kernels import qgemm_cases as qc
    for qtype in (qc.F8, "int8"):
        for kw in ({}, {"epi": "relu_res", "residual": "same"}, {"out_q": "same"}, {"epi": "gelu"}):
            kw = {k: (qtype if v == "same" else v) for k, v in kw.items()}
            for m in (37, 4096):  # the small-M and the large-M config lists
                _, shapes, attrs, ins = qc.make("fused.QGemm", qtype, (m,), 768, 768, **kw)
                p = dict(qgemm.configs(m, 768, 768)[0]["params"], out_dtype=shapes.out(0)["dtype"])
                qgemm.QGemmRunner("fused.QGemm", attrs, p, None)(ins)


def upsample_family():
    from tensorforge.kernels.triton.runners import PointwiseRunner
    from tests.kernels.kernel_checks import upsample_cases
    for i, (expr, ins, ups) in enumerate(upsample_cases("cpu", torch.float16)):
        if i in (0, 1, 5):
            PointwiseRunner({"expr": expr, "upsample": ups}, {"BLOCK": 1024}, None)(ins)


def gemm_family():
    """Triton GEMMs (fp16) with BERT-base's level-3 configs: large M, small M and serial split-K."""
    from tensorforge.kernels.triton import gemm
    from tests.kernels.test_triton_gemm import gemm_cases
    big, small = gemm.configs(4096, 768, 3072), gemm.configs(128, 768, 3072)
    serial = [t for t in small if t["params"].get("SERIAL")][:1]
    assert serial, "no serial split-K config for a small-M GEMM"
    for t in big[:2] + small[:1] + serial:
        for i, (typ, attrs, ins) in enumerate(gemm_cases("cpu", torch.float16)):
            if i < 2:
                gemm.GemmRunner(typ, attrs, t["params"], None)(ins)


def fp8_bert_family():
    """A quantized BERT's FP8 activation Qs fused into LayerNorm and pointwise kernels (the code
    generator's float8 cast), with the H200 configs of norms and pointwise kernels."""
    from tensorforge.kernels.triton.runners import NormRunner, PointwiseRunner
    from tests.kernels import qgemm_cases as qc
    seen = set()
    for lay, shapes, ins in qc.quantized_layers("fp8", "bert_base_small"):
        if shapes.out(0)["dtype"] != qc.F8 or lay.type in seen:
            continue
        if lay.type == "fused.LayerNorm":
            NormRunner(lay.attrs, {"ROWS": 4, "num_warps": 4}, None, False)(ins)
        elif lay.type == "fused.Pointwise":
            PointwiseRunner({"expr": lay.attrs["expr"]}, {"BLOCK": 1024}, None)(ins)
        else:
            continue
        seen.add(lay.type)


FAMILIES = {"conv": conv_family, "qconv": qconv_family, "dwconv": dwconv_family, "se": se_family,
            "qgemm": qgemm_family, "upsample": upsample_family, "fp8_bert": fp8_bert_family,
            "gemm": gemm_family}


def check(families=None) -> dict:
    """{family: (kernels compiled, seconds)}; AssertionError naming the first kernel that fails."""
    out = {}
    for name in families or FAMILIES:
        t0 = time.perf_counter()
        with recording() as launches:
            {**FAMILIES, **EXTRA}[name]()
        assert launches, f"{name}: no generated-kernel launch recorded (every case fell back?)"
        done = {}
        for kernel, args, meta in launches:
            k = _key(kernel, args, meta)
            if k in done:
                continue
            try:
                ck = compile_launch(kernel, args, meta)
            except Exception as e:  # noqa: BLE001 - name the kernel and its constants
                raise AssertionError(f"{name}: {kernel.name} {meta} does not compile for sm90: "
                                     f"{type(e).__name__}: {str(e)[:2000]}") from None
            assert ck.asm.get("cubin"), f"{name}: {kernel.name}: no cubin"
            if name == "fp8_bert":  # prelude._e4m3 by the hardware conversion, both ways (not the computed grid)
                ptx = ck.asm["ptx"]
                assert "cvt.rn.satfinite.e4m3x2.f32" in ptx and "cvt.rn.f16x2.e4m3x2" in ptx, f"{name}: {kernel.name}"
            assert ck.metadata.shared <= SMEM_MAX, f"{name}: {kernel.name} {meta}: {ck.metadata.shared} B shared"
            done[k] = ck
        out[name] = (len(done), time.perf_counter() - t0)
    return out


def main(families=None) -> None:
    for name, (n, dt) in check(families).items():
        print(f"{name}: {n} kernel(s) compiled for sm90 in {dt:.1f} s")


def config_sweep():
    """Every config the builder may time (levels 3 and 4) of conv, qconv (int8, e4m3), qgemm (int8, e4m3)
    and dwconv, each on one case: what --builderOptimizationLevel=4 would compile on an H200."""
    from tensorforge.kernels.triton import conv, dwconv, qconv, qgemm
    from tests.kernels import qgemm_cases as qc
    from tests.kernels.test_triton_conv import conv_cases
    from tests.kernels.test_triton_dwconv import dw_cases
    from tests.kernels.test_triton_qconv import qconv_cases
    _, attrs, ins = next(iter(conv_cases("cpu", torch.float16)))
    for cfg, _ in conv.configs(256, 256, 8 * 28 * 28):
        conv.ConvRunner(attrs, conv.tactic(cfg)["params"], None)(ins)
    for qtype in ("int8", qc.F8):
        _, attrs, ins = next(iter(qconv_cases("cpu", qtype)))
        for cfg, _ in qconv.qconv_configs(256, 256, 8 * 28 * 28):
            qconv.QConvRunner(attrs, qconv.tactic(cfg)["params"], None)(ins)
        for m in (37, 4096):
            _, shapes, attrs, ins = qc.make("fused.QGemm", qtype, (m,), 768, 768)
            for t in qgemm.configs(m, 768, 3072):
                qgemm.QGemmRunner("fused.QGemm", attrs, dict(t["params"], out_dtype=shapes.out(0)["dtype"]), None)(ins)
    _, attrs, ins, _, _ = next(iter(dw_cases("cpu", torch.float16)))
    for cfg, _ in dwconv.configs(96):
        dwconv.DwConvRunner(attrs, dwconv.tactic(cfg)["params"], None)(ins)


EXTRA = {"sweep": config_sweep}  # ~110 s on 2 cores: main(["sweep"]), not in CI
