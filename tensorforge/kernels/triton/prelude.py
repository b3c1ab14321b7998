"""The helper functions every generated Triton module starts with (pure strings: nothing here imports
triton): truncated division and Python modulo, tanh, expm1, round half to even, softplus, the e4m3
grid (hardware conversion on the GPU, computed in the CPU interpreter)."""

PRELUDE = '''import os

import triton
import triton.language as tl
try:
    from triton.language.extra import libdevice
except ImportError:  # older triton
    from triton.language.extra.cuda import libdevice


@triton.jit
def _tdiv(a, b):
    q = tl.abs(a) // tl.abs(b)
    return tl.where((a < 0) != (b < 0), -q, q)


@triton.jit
def _pymod(a, b):
    r = a - _tdiv(a, b) * b
    return tl.where((r != 0) & ((r < 0) != (b < 0)), r + b, r)


@triton.jit
def _tanh(x):
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x < 0, -t, t)


@triton.jit
def _expm1(x):
    return tl.where(tl.abs(x) < 1e-5, x + 0.5 * x * x, tl.exp(x) - 1.0)


@triton.jit
def _rint(x):
    r = tl.floor(x + 0.5)
    odd = (r - 2.0 * tl.floor(r * 0.5)) != 0
    return tl.where((r - x == 0.5) & odd, r - 1.0, r)


# e4m3 by the GPU's conversion (sm89+: cvt.rn.satfinite: ties to even, saturating at 448, NaN kept); in the
# CPU interpreter, whose fp32 -> fp8 store rounds half up, the grid is computed exactly instead
_HW_FP8 = tl.constexpr(os.environ.get("TRITON_INTERPRET", "0") in ("", "0"))


@triton.jit
def _e4m3(a):
    if _HW_FP8:
        y = a.to(tl.float8e4nv).to(tl.float32)
    else:
        c = tl.minimum(tl.maximum(a, -448.0), 448.0)
        e = tl.maximum(((c.to(tl.int32, bitcast=True) >> 23) & 255), 121)
        r = _rint(c * ((257 - e) << 23).to(tl.float32, bitcast=True)) * ((e - 3) << 23).to(tl.float32, bitcast=True)
        y = tl.where(a != a, a, tl.where(r == 0.0, c * 0.0, r))
    return y


@triton.jit
def _softplus(x):
    return tl.where(x > 20.0, x, tl.log(1.0 + tl.exp(x)))
'''
