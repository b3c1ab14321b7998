"""Triton pool kernels (tactic "pool") in triton's CPU interpreter vs the ops' references: every
attribute combination on small odd shapes, NCHW / channels-last / strided inputs. The check
functions are shared with tests/gpu/test_triton_pool.py (device, dtype and configs as parameters)."""
import importlib.util

import pytest
import torch

from tensorforge.kernels.triton.pool import WINDOW
from tensorforge.ops import registry

from . import cases as kcases
from . import kernel_checks

TOL = {torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 2e-2}
SMALL = {"BLOCK_P": 64, "BLOCK_C": 4, "num_warps": 4}  # one program per channel-last case (the interpreter is slow)
WINDOW_CASES = [
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),  # ResNet stem
    ("MaxPool", dict(kernel_shape=[2, 3], strides=[1, 2], pads=[0, 1, 1, 2])),  # asymmetric, pad > k//2
    ("MaxPool", dict(kernel_shape=[3, 2], dilations=[2, 3], pads=[2, 1, 1, 0], ceil_mode=1, strides=[2, 2])),
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 3], auto_pad="SAME_UPPER")),
    ("MaxPool", dict(kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_LOWER", storage_order=1)),
    ("MaxPool", dict(kernel_shape=[3, 4], strides=[2, 2], auto_pad="VALID", ceil_mode=1)),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)),
    ("AveragePool", dict(kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 0, 1], count_include_pad=1)),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 1, 2, 1], ceil_mode=1)),
    ("AveragePool", dict(kernel_shape=[2, 3], strides=[3, 2], pads=[1, 1, 1, 1], ceil_mode=1, count_include_pad=1)),
    ("AveragePool", dict(kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 0, 1, 1], count_include_pad=1)),
    ("AveragePool", dict(kernel_shape=[3, 2], dilations=[1, 2], strides=[1, 2], pads=[1, 1, 0, 0])),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER", count_include_pad=0)),
]
GLOBAL_CASES = [("GlobalAveragePool", {}), ("GlobalMaxPool", {})]


def rand(shape, dtype, device, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) * 4 - 2).to(dtype).to(device)


def layouts(x):
    """The same values as NCHW, channels-last, and a strided (non-dense) view."""
    n, c, h, w = x.shape
    wide = torch.ones((n, c, h, 2 * w + 2), dtype=x.dtype, device=x.device)
    view = wide[..., 1:2 * w + 1:2]  # W stride 2, H stride 2w+2: H and W do not merge
    view.copy_(x)
    return {"nchw": x, "nhwc": x.contiguous(memory_format=torch.channels_last), "strided": view}


def reference(kind, attrs, x):
    return registry.get(kind).run([x], attrs, 19, 1)[0]


def runner(kind, attrs, params):
    from tensorforge.kernels.triton.pool import PoolRunner
    return PoolRunner(kind, attrs, params, lambda ins: pytest.fail("fell back to the reference"))


def close(got, want, dtype):
    assert got.dtype == want.dtype and tuple(got.shape) == tuple(want.shape), (got.dtype, got.shape, want.shape)
    tol = TOL[dtype]
    torch.testing.assert_close(got.float().cpu(), want.float().cpu(), rtol=tol, atol=tol, equal_nan=True)


def check_case(kind, attrs, x, params, dtype):
    """One runner call vs the reference; the output keeps the input's memory format."""
    got = runner(kind, attrs, params)([x])[0]
    close(got, reference(kind, attrs, x), dtype)
    if got.dim() == 4 and got.shape[2] * got.shape[3] > 1 and x.is_contiguous(memory_format=torch.channels_last) \
            and not x.is_contiguous():
        assert got.is_contiguous(memory_format=torch.channels_last)
    else:
        assert got.is_contiguous()


def check_all(device, dtype, params=SMALL, shape=(2, 2, 9, 11), cases=WINDOW_CASES + GLOBAL_CASES, strided=3):
    """Every case on NCHW and channels-last inputs; the first `strided` cases on a strided view too."""
    x = rand(shape, dtype, device, 0)
    for i, (kind, attrs) in enumerate(cases):
        for name, xin in layouts(x).items():
            if name == "strided" and (i >= strided or kind.startswith("Global")):
                continue  # global pools: H and W do not merge, the runner falls back (checked apart)
            try:
                check_case(kind, attrs, xin, params, dtype)
            except AssertionError as e:
                raise AssertionError(f"{kind} {attrs} {name} {params}: {e}") from e


def check_nan(device, dtype, params=SMALL):
    """Max pools propagate NaN like torch (a NaN anywhere in the window wins)."""
    x = rand((1, 6, 7, 8), dtype, device, 1)
    x[0, 2, 3, 4] = float("nan")
    x[0, 5, 0, 0] = float("nan")
    for kind, attrs in (WINDOW_CASES[0], WINDOW_CASES[1], GLOBAL_CASES[1]):
        for xin in layouts(x).values():
            if kind.startswith("Global") and not xin.is_contiguous() and not xin.is_contiguous(
                    memory_format=torch.channels_last):
                continue
            got = runner(kind, attrs, params)([xin])[0]
            close(got, reference(kind, attrs, xin), dtype)


def check_out_buffer(device, dtype, params=SMALL):
    """A dense buffer of either memory format given as outs[0] is written in place."""
    kind, attrs = WINDOW_CASES[0]
    x = rand((2, 6, 9, 7), dtype, device, 2).contiguous(memory_format=torch.channels_last)
    want = reference(kind, attrs, x)
    for fmt in (torch.channels_last, torch.contiguous_format):
        buf = torch.empty(want.shape, dtype=dtype, device=device).contiguous(memory_format=fmt)
        got = runner(kind, attrs, params)([x], [buf])[0]
        assert got is buf
        close(buf, want, dtype)


def rand_bytes(shape, dtype, device, seed):
    """8-bit values of a quantized network: int8 / uint8 / float8 e4m3 over their whole range."""
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.float8_e4m3fn:  # every finite e4m3 value, both signs (0x7f / 0xff are NaN)
        b = torch.randint(0, 127, shape, generator=g, dtype=torch.int32)
        b = b + 128 * torch.randint(0, 2, shape, generator=g, dtype=torch.int32)
        return b.to(torch.uint8).view(dtype).to(device)
    lo, hi = (-128, 128) if dtype == torch.int8 else (0, 256)
    return torch.randint(lo, hi, shape, generator=g, dtype=torch.int32).to(dtype).to(device)


def check_bytes(device, params=SMALL, shape=(2, 3, 9, 11)):
    """The max pools on int8 / uint8 inputs equal the reference exactly (max commutes with
    quantization), NCHW and channels-last; average pools of these types are not taken."""
    maxes = [c for c in WINDOW_CASES + GLOBAL_CASES if c[0] in ("MaxPool", "GlobalMaxPool")]
    for dtype in (torch.int8, torch.uint8, torch.float8_e4m3fn):
        x = rand_bytes(shape, dtype, device, 7)
        for kind, attrs in maxes:
            for name, xin in layouts(x).items():
                if name == "strided" and kind.startswith("Global"):
                    continue
                got = runner(kind, attrs, params)([xin])[0]
                want = reference(kind, attrs, xin.cpu())
                # (float8: equal values, +0 and -0 alike: which zero a max of both returns is unspecified; on the
                # H200 the kernel and the reference differed there)
                same = torch.equal(got.cpu().float(), want.float()) if dtype.is_floating_point else torch.equal(
                    got.cpu().view(torch.uint8), want.view(torch.uint8))
                bad = (got.cpu().view(torch.uint8) != want.view(torch.uint8)).nonzero()[:4].tolist()
                assert got.dtype == want.dtype and same, (dtype, kind, attrs, name, [
                    (i, float(got.cpu()[tuple(i)].float()), float(want[tuple(i)].float())) for i in bad])


interp = kcases.interpreter_only


@interp
def test_max_pools_on_8_bit_inputs(interpret):
    check_bytes("cpu")


@interp
def test_all_attribute_combinations_fp32(interpret):
    check_all("cpu", torch.float32)


@interp
def test_fp16_and_channel_tiles(interpret):
    check_all("cpu", torch.float16, cases=WINDOW_CASES[:1] + WINDOW_CASES[7:8] + GLOBAL_CASES[:1], strided=1)
    # several pixel and channel blocks (BLOCK_C below C), partial last blocks
    tiny = {"BLOCK_P": 8, "BLOCK_C": 2, "num_warps": 4}
    check_all("cpu", torch.float32, tiny, shape=(1, 3, 7, 5), cases=WINDOW_CASES[9:10] + GLOBAL_CASES[:1], strided=0)


@interp
def test_nan_and_out_buffers(interpret):
    check_nan("cpu", torch.float32)
    check_out_buffer("cpu", torch.float32)


@interp
def test_fallbacks_run_the_reference(interpret):
    from tensorforge.kernels.triton.pool import PoolRunner
    calls = []

    def ref(kind, attrs):
        return lambda ins: calls.append(kind) or registry.get(kind).run(ins, attrs, 19, 1)
    x = layouts(rand((2, 3, 5, 6), torch.float32, "cpu", 3))["strided"]
    got = PoolRunner("GlobalMaxPool", {}, SMALL, ref("GlobalMaxPool", {}))([x])[0]
    close(got, reference("GlobalMaxPool", {}, x), torch.float32)
    xi = torch.randint(0, 9, (1, 2, 4, 4), dtype=torch.int32)
    PoolRunner("MaxPool", dict(kernel_shape=[2, 2]), SMALL, ref("MaxPool", dict(kernel_shape=[2, 2])))([xi])
    assert calls == ["GlobalMaxPool", "MaxPool"]


@interp
def test_make_kernel_writes_nhwc_chain_buffers_in_place(interpret):
    """In a channels-last chain the runtime passes NHWC bytes in NCHW-shaped buffers: the kernel
    reads them through channels-last views and writes the output buffer itself (no copy)."""
    from tensorforge import kernels
    from tensorforge.runtime.plan import LayerSpec
    kind, attrs = WINDOW_CASES[0]
    params = dict(SMALL, nhwc_ok=True, in_nhwc=[0], out_nhwc=[0])
    lay = LayerSpec("pool", kind, ["x"], ["y"], tactic={"source": "triton", "name": "pool", "params": params},
                    attrs=attrs)
    fn = kernels.make_kernel(lay, 17, torch.device("cpu"))
    assert getattr(fn, "takes_out", False) and kernels.writes_in_place(lay.tactic)
    x = rand((2, 6, 9, 7), torch.float32, "cpu", 4)
    want = reference(kind, attrs, x)
    raw_in = x.permute(0, 2, 3, 1).contiguous().reshape(x.shape)  # NHWC bytes, NCHW shape
    buf = torch.empty(want.shape)
    res = fn([raw_in], [buf])
    assert res[0] is buf
    close(buf.reshape(want.shape[0], want.shape[2], want.shape[3], want.shape[1]).permute(0, 3, 1, 2),
          want, torch.float32)
    alloc = fn([raw_in])[0]  # no buffer: NHWC bytes returned as an NCHW-shaped contiguous tensor
    assert alloc.is_contiguous() and torch.equal(alloc, buf)


def test_candidates():
    """CUDA only; two level-3 configs, the rest level 4; no tactic when Indices are requested."""
    from tensorforge.kernels import LayerShapes
    from tensorforge.kernels.triton.pool import pool_candidates
    from tensorforge.runtime.plan import LayerSpec
    cuda = torch.device("cuda")
    for kind, outs, shape in (("MaxPool", ["y"], [128, 64, 112, 112]), ("AveragePool", ["y"], [2, 3, 9, 9]),
                              ("GlobalAveragePool", ["y"], [128, 2048, 7, 7]), ("MaxPool", ["y", "i"], [1, 8, 8, 8])):
        lay = LayerSpec("p", kind, ["x"], outs, attrs={"kernel_shape": [3, 3]} if "Global" not in kind else {})
        shapes = LayerShapes.of([{"dtype": "float16", "shape": shape, "kind": "activation"}])
        assert pool_candidates(lay, shapes, torch.device("cpu")) == []
        cands = pool_candidates(lay, shapes, cuda)
        if len(outs) == 2:
            assert cands == []
            continue
        assert [c.get("level", 3) for c in cands][:2] == [3, 3] and all(c["level"] == 4 for c in cands[2:])
        assert len(cands) > 2 and all(c["name"] == "pool" and c["params"]["nhwc_ok"] for c in cands)
        keys = [tuple(sorted(c["params"].items())) for c in cands]
        assert len(set(keys)) == len(keys)
        shapes.inputs[0]["dtype"] = "int8"
        assert bool(pool_candidates(lay, shapes, cuda)) == ("Max" in kind)
        shapes.inputs[0]["dtype"] = "int32"
        assert pool_candidates(lay, shapes, cuda) == []


@interp
def test_asymmetric_ceil_mode_matches_onnxruntime(interpret):
    """A ceil-mode window that would start inside the end padding is dropped (ONNX / ORT shape
    rule, as shape inference plans it); the ops' reference returns that extra window."""
    from onnx import TensorProto, helper

    from tensorforge.testing import make_model, run_ort
    attrs = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 1, 2, 1], ceil_mode=1)
    x = rand((1, 3, 6, 5), torch.float32, "cpu", 5)
    for kind in WINDOW:
        m = make_model([helper.make_node(kind, ["x"], ["y"], **attrs)], [("x", TensorProto.FLOAT, [1, 3, 6, 5])],
                       [("y", TensorProto.FLOAT, None)])
        want = torch.from_numpy(run_ort(m, {"x": x.numpy()})["y"])
        got = runner(kind, attrs, SMALL)([x])[0]
        assert tuple(got.shape) == (1, 3, 3, 3)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def _jit(name):
    """The @triton.jit function `name` (compiled mode: never the interpreter's cached wrapper)."""
    import linecache

    from tensorforge.kernels.triton.pool_source import SRC
    fname = "<tensorforge-pool-sm90-test>"
    linecache.cache[fname] = (len(SRC), None, SRC.splitlines(True), fname)
    ns = {"__name__": "tensorforge_pool_sm90_test", "__file__": fname}
    exec(compile(SRC, fname, "exec"), ns)  # noqa: S102
    return ns[name]


def _compile_sm90(name, dtype, consts, ones, div16):
    """Compile one kernel variant for sm90 with triton's bundled ptxas (no GPU needed)."""
    triton = pytest.importorskip("triton")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    fn = _jit(name)
    consts = dict(consts, **{a: 1 for a in ones})
    sig = {a: "constexpr" if a in consts else f"*{dtype}" if a.endswith("_ptr") else "i32" for a in fn.arg_names}
    attrs = {(i,): [["tt.divisibility", 16]] for i, a in enumerate(fn.arg_names) if a in div16}
    src = ASTSource(fn, sig, constexprs={(fn.arg_names.index(k),): v for k, v in consts.items()}, attrs=attrs)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4}).asm["ptx"]


def sm90_checks():
    """The channels-last ResNet stem variant loads and stores 16-byte vectors; its int8 variant and the bf16
    global pool compile."""
    stem = dict(KH=3, KW=3, SH=2, SW=2, PT=1, PL=1, DH=1, DW=1, IS_MAX=True, BIG=False, C_FAST=True, EVEN_C=True,
                BLOCK_P=64, BLOCK_C=64, UPCAST=False)
    ptx = _compile_sm90("tf_pool2d", "fp16", stem, ("sxc", "syc"),
                        ("x_ptr", "y_ptr", "C", "sxn", "sxh", "sxw", "syn", "syh", "syw"))
    assert "ld.global.v4.b32" in ptx and "st.global.v4.b32" in ptx and "max.NaN" in ptx
    _compile_sm90("tf_pool2d", "i8", dict(stem, UPCAST=True), ("sxc", "syc"),
                  ("x_ptr", "y_ptr", "C", "sxn", "sxh", "sxw", "syn", "syh", "syw"))
    _compile_sm90("tf_global_pool", "bf16", dict(IS_MAX=True, BIG=True, EVEN_C=False, BLOCK_P=16, BLOCK_C=64),
                  ("sxc", "syc"), ("x_ptr", "y_ptr", "sxn", "sxp"))


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton")
def test_kernels_compile_for_sm90_with_vector_loads():
    """Type errors the interpreter does not see (e.g. a loop-carried bf16 max turning fp32) fail
    here, compiled for sm90 in a fresh process (no interpreter state)."""
    kernel_checks.run_in_fresh_process("tests.kernels.test_triton_pool", "sm90_checks")
