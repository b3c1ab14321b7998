"""Generated kernels vs the fused ops' references on odd sizes; shared by the CPU interpreter
tests and the CUDA tests (device and dtype are parameters)."""
from __future__ import annotations

import torch

from tensorforge.ops import registry

from . import cases

TOL = {torch.float32: (1e-5, 1e-5), torch.float16: (1e-2, 1e-2), torch.bfloat16: (2e-2, 2e-2)}


def _ref(op, attrs, inputs):
    return registry.get(op).run(inputs, attrs, 17)[0]


def _close(got, want, dtype):
    assert got.dtype == want.dtype and tuple(got.shape) == tuple(want.shape), (got.dtype, want.dtype, got.shape)
    rtol, atol = TOL.get(dtype, (1e-5, 1e-5))
    torch.testing.assert_close(got.float().cpu(), want.float().cpu(), rtol=rtol, atol=atol, equal_nan=True)


def _rand(shape, dtype, device, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) * 4 - 2).to(dtype).to(device)


def pointwise_cases(device, dtype):
    """(expr, inputs) pairs covering full / strided / scalar operands, broadcasting, int and bool."""
    x = _rand((3, 5, 37), dtype, device, 0)
    yield cases.gelu_bias_expr(), [x.float(), _rand((5, 1), torch.float32, device, 1)]
    yield cases.act_chain_expr(), [x, _rand((37,), dtype, device, 2)]
    yield cases.act_chain_expr(), [x.transpose(0, 2), _rand((1,), dtype, device, 3)]
    y = _rand((7, 3), torch.float32, device, 4)
    y[0, 0] = float("nan")
    yield cases.where_cast_expr(), [_rand((5, 7, 3), torch.float32, device, 5), y]
    a = torch.randint(-50, 50, (4, 1, 9), device=device)
    b = torch.randint(1, 9, (6, 1), device=device) * torch.where(torch.rand(6, 1, device=device) > 0.5, 1, -1)
    yield cases.int_expr(), [a, b]


def check_pointwise(device, dtype):
    from tensorforge.kernels.triton.runners import PointwiseRunner
    for expr, ins in pointwise_cases(device, dtype):
        got = PointwiseRunner({"expr": expr}, {"BLOCK": 128}, None)(ins)[0]
        _close(got, _ref("fused.Pointwise", {"expr": expr}, ins), dtype)


def check_softmax(device, dtype):
    from tensorforge.kernels.triton.runners import SoftmaxRunner
    x = _rand((4, 3, 33), dtype, device, 6) * 3
    for log in (False, True):
        op = "fused.LogSoftmax" if log else "fused.Softmax"
        for axes, xin in (([-1], x), ([-2, -1], x), ([-1], x.transpose(1, 2))):
            got = SoftmaxRunner({"axes": axes}, {}, None, log)([xin])[0]
            _close(got, _ref(op, {"axes": axes}, [xin]), dtype)


def check_norms(device, dtype):
    from tensorforge.kernels.triton.runners import NormRunner
    x = _rand((5, 3, 45), dtype, device, 7)
    g, b = _rand((45,), dtype, device, 8) + 2, _rand((45,), dtype, device, 9)
    r = _rand((5, 3, 45), dtype, device, 10)
    epi = cases.residual_relu_expr()
    for attrs, ins in (({"axis": -1, "epsilon": 1e-5, "epilogue": epi}, [x, g, b, r]),
                       ({"axis": -2, "epsilon": 1e-3}, [x, _rand((3, 45), dtype, device, 11), None]),
                       ({"axis": -1, "epsilon": 1e-5}, [x, None, None])):
        got = NormRunner(attrs, {}, None, False)(ins)[0]
        _close(got, _ref("fused.LayerNorm", attrs, ins), dtype)
    attrs = {"axis": -1, "epsilon": 1e-6}
    got = NormRunner(attrs, {}, None, True)([x, g])[0]
    _close(got, _ref("fused.RMSNorm", attrs, [x, g]), dtype)


def check_reduce(device, dtype):
    from tensorforge.kernels.triton.runners import ReduceRunner
    x = _rand((6, 5, 19), dtype, device, 12)
    for kind in ("sum", "mean", "max", "min", "l1", "l2", "sumsquare", "logsumexp"):
        for axes, keep in (([-1], 1), ([-2, -1], 0)):
            attrs = {"kind": kind, "axes": axes, "keepdims": keep}
            got = ReduceRunner(attrs, {}, None)([x])[0]
            _close(got, _ref("fused.Reduce", attrs, [x]), dtype)
    attrs = {"kind": "sum", "axes": [-1], "keepdims": 0, "prologue": cases.square_prologue()}
    ins = [x.float(), _rand((6, 5, 1), torch.float32, device, 13)]
    _close(ReduceRunner(attrs, {}, None)(ins)[0], _ref("fused.Reduce", attrs, ins), torch.float32)
    xi = torch.randint(-9, 9, (4, 11), device=device)
    attrs = {"kind": "sum", "axes": [-1], "keepdims": 1}
    _close(ReduceRunner(attrs, {}, None)([xi])[0], _ref("fused.Reduce", attrs, [xi]), torch.float32)


def check_epilogue(device, dtype):
    """fused.ConvAct / MatMulAct through the triton 'epilogue' tactic (torch op + one kernel)."""
    from tensorforge import kernels
    from tensorforge.runtime.plan import LayerSpec
    x = _rand((2, 3, 9, 11), dtype, device, 14)
    w = _rand((4, 3, 3, 3), dtype, device, 15) * 0.3
    r = _rand((2, 4, 9, 11), dtype, device, 16)
    attrs = {"pads": [1, 1, 1, 1], "transpose": 0, "epilogue": cases.residual_relu_expr()}
    lay = LayerSpec("conv", "fused.ConvAct", [], [], tactic={"source": "triton", "name": "epilogue", "params": {}},
                    attrs=attrs)
    ins = [x, w, None, r]
    _close(kernels.make_kernel(lay, 17, device)(ins)[0], _ref("fused.ConvAct", attrs, ins), dtype)
    check_epilogue_nhwc(device, dtype, x, w, r, attrs)


def check_epilogue_nhwc(device, dtype, x, w, r, attrs):
    """The same conv as a channels-last layer of an NHWC chain (nhwc_ok): NCHW or NHWC input, an NHWC
    residual and output (NHWC bytes in NCHW-shaped buffers), the output buffer written in place; and a
    per-channel extra of lower rank broadcast."""
    from tensorforge import kernels
    from tensorforge.kernels.layouts import logical, raw
    from tensorforge.runtime.plan import LayerSpec
    want = _ref("fused.ConvAct", attrs, [x, w, None, r])
    for in_nhwc in ([], [0]):
        params = {"nhwc_ok": True, "in_nhwc": in_nhwc + [3], "out_nhwc": [0]}
        lay = LayerSpec("conv", "fused.ConvAct", [], [], attrs=attrs,
                        tactic={"source": "triton", "name": "epilogue", "params": params})
        fn = kernels.make_kernel(lay, 17, device)
        xin = raw(x) if in_nhwc else x
        buf = torch.empty(want.shape, dtype=want.dtype, device=device)
        got = fn([xin, w, None, raw(r)], [buf])
        assert got[0] is buf, "the NHWC output buffer is written in place"
        _close(logical(buf), want, dtype)
        _close(logical(fn([xin, w, None, raw(r)])[0]), want, dtype)  # no buffer given
    # nhwc_ok outside a chain: an NCHW buffer given (not written in place: the result is channels-last)
    lay = LayerSpec("conv", "fused.ConvAct", [], [], attrs=attrs,
                    tactic={"source": "triton", "name": "epilogue", "params": {"nhwc_ok": True}})
    buf = torch.empty(want.shape, dtype=want.dtype, device=device)
    _close(kernels.make_kernel(lay, 17, device)([x, w, None, r], [buf])[0], want, dtype)
    # as the autotuner times it: a batch of 1, channels-last activations and output buffer (session 10 on
    # the H200: the result came back as a view of that buffer with another stride on the size-1 dim,
    # whose copy into it failed, and the tactic was skipped on every conv of yolo_det_small)
    x1, r1 = (t[:1].contiguous(memory_format=torch.channels_last) for t in (x, r))
    buf = torch.empty((1,) + tuple(want.shape[1:]), dtype=want.dtype, device=device).contiguous(
        memory_format=torch.channels_last)
    got = kernels.make_kernel(lay, 17, device)([x1, w, None, r1], [buf])[0]
    assert got is buf, "a batch-1 channels-last buffer is written in place"
    _close(buf, want[:1], dtype)
    bias = _rand((4, 1, 1), dtype, device, 23)  # a [C, 1, 1] extra: broadcast as 4-D, then NHWC-ordered
    lay = LayerSpec("conv", "fused.ConvAct", [], [], attrs=attrs,
                    tactic={"source": "triton", "name": "epilogue", "params": {"nhwc_ok": True, "out_nhwc": [0]}})
    got = kernels.make_kernel(lay, 17, device)([x, w, None, bias])[0]
    _close(logical(got), _ref("fused.ConvAct", attrs, [x, w, None, bias]), dtype)


def upsample_cases(device, dtype):
    """(expr, inputs, upsample) for fused.Pointwise reading nearest-upsampled operands: 2x / 3x / 4x and
    unequal factors, NCHW and channels-last (NHWC) operands, broadcast and scalar neighbours, rank 3."""
    top = _rand((2, 5, 3, 7), dtype, device, 17)
    for f in ((2, 2), (3, 3), (4, 4), (2, 3)):
        lat = _rand((2, 5, 3 * f[0], 7 * f[1]), dtype, device, 18)
        yield cases.residual_relu_expr(), [top, lat], [[1, 1, *f], None]
        nhwc = [t.contiguous(memory_format=torch.channels_last) for t in (lat, top)]
        yield cases.residual_relu_expr(), nhwc, [None, [1, 1, *f]]
    yield cases.act_chain_expr(), [top, _rand((5, 1, 1), dtype, device, 19)], [[1, 1, 2, 2], None]
    yield cases.act_chain_expr(), [_rand((4, 1, 6), dtype, device, 20), _rand((1,), dtype, device, 21)], [[1, 3, 2], None]
    other = _rand((2, 5, 3, 7), dtype, device, 22)  # two upsampled operands with one factor per axis
    yield cases.residual_relu_expr(), [top, other], [[1, 1, 2, 2]] * 2


def check_upsample(device, dtype):
    """The generated kernel (not the reference fallback) on upsampled operands equals the reference."""
    from tensorforge.kernels.triton.runners import PointwiseRunner
    for expr, ins, ups in upsample_cases(device, dtype):
        attrs = {"expr": expr, "upsample": ups}
        runner = PointwiseRunner(attrs, {"BLOCK": 128}, None)
        got = runner(ins)[0]
        assert all(p is not None for p in runner.plans.values()), "fell back to the reference"
        _close(got, _ref("fused.Pointwise", attrs, ins), dtype)


def check_nhwc_runner(cases, runner_of, check):
    """Every (name, attrs, inputs) case through runner_of(attrs), never its reference fallback: its output
    is channels-last and check(name, got, attrs, inputs) accepts it (the conv families)."""
    for name, attrs, ins in cases:
        runner = runner_of(attrs)
        assert runner.plan(ins) is not None, name  # the kernel runs (no reference fallback)
        got = runner(ins)[0]
        assert got.is_contiguous(memory_format=torch.channels_last), name
        check(name, got, attrs, ins)


def run_in_fresh_process(module: str, func: str) -> None:
    """Call `module.func()` in a new Python without TRITON_INTERPRET: compiling for a real GPU target
    in the test process fails once an interpreted kernel has called a @triton.jit helper (triton
    3.6's interpreter patches triton.language for device-function calls and never restores it)."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", f"from {module} import {func}; {func}()"], cwd=root, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


def check_e4m3_cast(device):
    """The generated e4m3 cast on every e4m3 value, every midpoint between neighbours (ties), a hair either
    side of them, subnormals and values past 448, against torch's round-to-nearest-even conversion (the CPU
    interpreter's store turns NaN into 384, so NaN is checked on CUDA only)."""
    from tensorforge.kernels.triton.runners import PointwiseRunner
    from tensorforge.ops.fused.expr import ExprBuilder
    grid = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).float()
    grid = grid[torch.isfinite(grid)].unique()
    mids = (grid[1:] + grid[:-1]) / 2
    x = torch.cat([grid, mids, torch.nextafter(mids, torch.full_like(mids, 1e9)),
                   torch.nextafter(mids, torch.full_like(mids, -1e9)),
                   torch.tensor([1e-30, -3e-4, 500.0, -1e6, 464.0])]).to(device)
    b = ExprBuilder()
    expr = b.build(b.op("Cast", [b.input(0)], {"to": 17}))
    got = PointwiseRunner({"expr": expr}, {"BLOCK": 256}, None)([x])[0]
    want = x.cpu().clamp(-448, 448).to(torch.float8_e4m3fn)
    assert torch.equal(got.cpu().view(torch.uint8), want.view(torch.uint8))
    if device != "cpu":
        two = torch.tensor([float("nan"), 1.0], device=device)
        nan = PointwiseRunner({"expr": expr}, {"BLOCK": 256}, None)([two])[0]
        assert torch.isnan(nan.float().cpu()[0]) and float(nan.float().cpu()[1]) == 1.0
