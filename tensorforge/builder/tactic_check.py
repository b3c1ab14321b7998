"""The builder's check of a tactic against the reference layer before it is timed: float outputs
within a relative tolerance of the largest value, integer and float8 (quantized) outputs in steps of
their format."""
from __future__ import annotations

import math

import torch


def check(fn, ref_fn, bench, tol: float, int_steps: int = 0) -> tuple[bool, float]:
    """Run the tactic and the reference on the first input set; (ok, relative error). Integer outputs
    must be equal, or within int_steps (quantized layers) on at most 1 % of the elements; float8
    outputs are compared in steps of the format (quantized_match)."""
    got = fn(list(bench.sets[0]))
    ref = ref_fn(list(bench.sets[0]))
    worst = 0.0
    for g, r in zip(got, ref):
        if g is None or r is None or tuple(g.shape) != tuple(r.shape) or g.dtype != r.dtype:
            return False, math.inf
        if not r.is_floating_point() or r.dtype in FLOAT8:
            if not quantized_match(g, r, int_steps, tol if r.dtype in FLOAT8 else 0.0):
                return False, math.inf
            continue
        gf, rf = g.float(), r.float()
        if not torch.equal(torch.isnan(gf), torch.isnan(rf)):
            return False, math.inf
        fin = torch.isfinite(rf)
        scale = rf[fin].abs().max().item() if fin.any() else 1.0
        err = (gf[fin] - rf[fin]).abs().max().item() / max(scale, 1e-6) if fin.any() else 0.0
        worst = max(worst, err)
    return worst <= tol, worst


FLOAT8 = tuple(getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
               if hasattr(torch, n))


def quantized_match(g, r, steps: int, rel: float = 0.0) -> bool:
    """An integer or float8 output against the reference: equal when steps is 0. Else integers: within
    `steps` on all elements and different on at most 1 % (an int32 accumulator is exact; only the
    float epilogue may move a tie). Float8: within `steps` steps of the format on all but 1 % of the
    elements and within steps + 1 everywhere (a value on a rounding boundary moves by a step when a
    kernel sums in fp32 in another order); steps count representable values between the two (ulps,
    across zero too); NaNs at the same places. An element closer than `rel` x the largest reference
    value also matches, as a float output would: near zero e4m3's steps are 2^-9 apart, so an FP16
    attention (softmax in FP16, error ~1e-3 of the largest output) differed there by hundreds of steps
    from the fp32 reference and every attention tactic with an output Q failed this check on the H200
    (session 11, BERT FP8: 2 of 12 attentions fell back to the reference kernel)."""
    if not steps or not r.numel():
        return torch.equal(g, r) if r.dtype not in FLOAT8 else torch.equal(g.view(torch.uint8), r.view(torch.uint8))
    if r.dtype in FLOAT8:
        gf, rf = g.float(), r.float()
        if not torch.equal(torch.isnan(gf), torch.isnan(rf)):
            return False
        keep = ~torch.isnan(rf)
        d = (_ordinal(g) - _ordinal(r))[keep].abs()
        if not d.numel():
            return True
        if rel > 0:
            near = (gf - rf)[keep].abs()
            atol = rel * float(rf[keep].abs().max())
            d = torch.where(near <= atol, torch.zeros_like(d), torch.where(near <= 2 * atol, torch.minimum(
                d, torch.full_like(d, steps + 1)), d))
        return int(d.max()) <= steps + 1 and float((d > steps).float().mean()) <= 0.01
    d = (g.to(torch.int64) - r.to(torch.int64)).abs()
    return int(d.max()) <= steps and float((d > 0).float().mean()) <= 0.01


def _ordinal(t):
    """float8 bit patterns as integers in value order (sign-magnitude: -0 and +0 are both 0)."""
    b = t.view(torch.uint8).to(torch.int16)
    mag = b & 0x7F
    return torch.where((b & 0x80) != 0, -mag, mag)
