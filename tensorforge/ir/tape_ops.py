"""Weight math that a refit replays as one recorded call (torch dispatches these functions to the
weight tape like its own): big elementwise weight transforms done in cache-sized slices."""
from __future__ import annotations

import torch
from torch.overrides import wrap_torch_function

CHUNK = 1 << 15  # elements per slice: a float32 slice and its float64 product stay in L2


@wrap_torch_function(lambda w, s, dtype=None, out=None: (w, s))
def mul_cast(w: torch.Tensor, s: torch.Tensor, dtype: torch.dtype | None = None,
             out: torch.Tensor | None = None) -> torch.Tensor:
    """(w * s).to(dtype) in the promoted dtype (float32 w times float64 s: exactly w.double() * s),
    rounded once into a dtype result, slice by slice along dim 0 (s: size 1 or w's along dim 0).
    out: a tensor of w's shape and that dtype to write into (a refit: the engine's own weight)."""
    if w.dim() == 0 or s.dim() > w.dim() or \
            any(d != 1 and d != e for d, e in zip(reversed(s.shape), reversed(w.shape))):
        return (w * s).to(dtype or w.dtype)
    if out is None or out.shape != w.shape or out.dtype != (dtype or w.dtype):
        out = torch.empty(w.shape, dtype=dtype or w.dtype)
    s = s.reshape((1,) * (w.dim() - s.dim()) + tuple(s.shape))
    step = max(1, CHUNK // max(1, w[0].numel()))
    for i in range(0, w.shape[0], step):
        si = s if s.shape[0] == 1 else s[i:i + step]
        torch.mul(w[i:i + step], si, out=out[i:i + step])
    return out


REPLAYABLE = {"mul_cast": mul_cast}
