"""Weight math that a refit replays as one recorded call (torch dispatches these functions to the
weight tape like its own, and records none of the calls inside): big elementwise weight transforms
done in few passes, without the guards their internal checks would otherwise record."""
from __future__ import annotations

import math

import torch
from torch.overrides import wrap_torch_function

CHUNK = 1 << 15  # elements per slice: a float32 slice and its float64 product stay in L2


@wrap_torch_function(lambda w, s, dtype=None, out=None: (w, s))
def mul_cast(w: torch.Tensor, s: torch.Tensor, dtype: torch.dtype | None = None,
             out: torch.Tensor | None = None) -> torch.Tensor:
    """(w * s).to(dtype), s broadcast along w's leading dims (size 1 or w's along dim 0).
    A float32 w is scaled in float32 (s rounded to float32 first, as TensorRT folds: within an ulp
    of the float64 product, and 1.6-8x faster than a mixed float32 x float64 multiply on the CPU);
    other dtypes in the promoted dtype, rounded once into dtype, slice by slice along dim 0.
    out: a tensor of w's shape and that dtype to write into (a refit: the engine's own weight)."""
    if w.dim() == 0 or s.dim() > w.dim() or \
            any(d != 1 and d != e for d, e in zip(reversed(s.shape), reversed(w.shape))):
        return (w * s).to(dtype or w.dtype)
    if out is None or out.shape != w.shape or out.dtype != (dtype or w.dtype):
        out = torch.empty(w.shape, dtype=dtype or w.dtype, device=w.device)
    s = s.reshape((1,) * (w.dim() - s.dim()) + tuple(s.shape))
    if w.dtype == torch.float32 and out.dtype == torch.float32:
        return torch.mul(w, s.to(torch.float32), out=out)
    step = max(1, CHUNK // max(1, w[0].numel()))
    for i in range(0, w.shape[0], step):
        si = s if s.shape[0] == 1 else s[i:i + step]
        torch.mul(w[i:i + step], si, out=out[i:i + step])
    return out


@wrap_torch_function(lambda t, dtype: (t,))
def saturate_cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """t in dtype with finite values clamped into its range (no new infinities). One conversion
    when nothing overflows (then equal to clamping first: values between the type's max and the
    rounding midpoint round to max); the clamp only for a type without infinities or on overflow."""
    m = torch.finfo(dtype).max
    if dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):  # types with infinities
        h = t.to(dtype)
        lo, hi = torch.aminmax(h) if h.numel() else (h.new_zeros(()), h.new_zeros(()))
        if bool(lo > -math.inf) and bool(hi < math.inf):  # no infinity (a NaN: the exact path below)
            return h
    return torch.where(torch.isfinite(t), t.clamp(-m, m), t).to(dtype)


@wrap_torch_function(lambda t, limit: (t,))
def overflows(t: torch.Tensor, limit: float) -> bool:
    """True when a finite value of t exceeds limit in magnitude (one pass when none does)."""
    if t.numel() == 0:
        return False
    lo, hi = torch.aminmax(t.detach().float())
    if bool(lo >= -limit) and bool(hi <= limit):  # NaN fails both comparisons: the exact check below
        return False
    a = t.detach().abs().float()
    return bool(((a > limit) & (a != math.inf)).any())


REPLAYABLE = {"mul_cast": mul_cast, "saturate_cast": saturate_cast, "overflows": overflows}
