"""Triton kernel family "gemm": MatMul / Gemm / fused.MatMulAct / fused.GemmAct with a 2-D constant
weight, fp32 accumulation and the bias + epilogue fused into the GEMM's store (gemm_source).

Tactic params: BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, num_warps, num_stages (+ SPLIT_K for the
split-K variant: fp32 partials into a per-plan workspace, then a small reduce kernel that
applies bias + epilogue). A signature the kernels do not cover runs the reference instead."""
from __future__ import annotations

import math

import torch

from ...ops.fused.expr import expr_dtype
from ..device import is_cuda
from ..layer_shapes import weight_gemm
from ..registry import tactic_family
from . import reference, tactic_dict
from .codegen import supported
from .launch import dtype_name
from .runners import _out, _Runner

TYPES = ("MatMul", "fused.MatMulAct", "Gemm", "fused.GemmAct")
LOW = ("float16", "bfloat16")
RUN_DTYPES = ("float16", "bfloat16", "float32")  # fp32: exact (ieee) dot, never offered
INT64_FROM = 2 ** 31  # element offsets from this size on are computed in 64 bits

# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages); GROUP_M is 8 throughout
LARGE = [(128, 128, 64, 8, 3), (128, 256, 64, 8, 3), (128, 64, 64, 4, 4), (64, 128, 64, 4, 4)]
LARGE_EXT = [(256, 128, 64, 8, 3), (64, 256, 64, 4, 4), (128, 128, 32, 4, 4), (128, 128, 64, 4, 3),
             (128, 256, 64, 8, 4), (128, 128, 128, 8, 3), (64, 64, 64, 4, 4), (128, 64, 128, 4, 3)]
SMALL = [(16, 64, 128, 4, 4), (32, 64, 64, 4, 4), (64, 64, 64, 4, 4), (64, 128, 64, 4, 3),
         (32, 128, 128, 4, 3)]
SMALL_EXT = [(16, 32, 128, 4, 4), (16, 64, 64, 4, 5), (32, 32, 128, 4, 4), (32, 64, 128, 4, 3),
             (64, 64, 128, 4, 3), (64, 32, 64, 4, 4), (16, 128, 64, 4, 4), (32, 128, 64, 4, 4)]
SPLIT = [(32, 64, 128, 4, 4), (16, 64, 128, 4, 4)]  # with SPLIT_K filling the GPU once / twice
SPLIT_EXT = [(t, s) for t in [(16, 64, 128, 4, 4), (32, 64, 128, 4, 4), (64, 64, 64, 4, 4)] for s in (2, 4, 8)]
# serial (one-kernel) split-K tiles, SPLIT_K chosen to fill the GPU about once (level 3) / twice
SERIAL = [(64, 64, 64, 4, 4), (32, 64, 128, 4, 4), (128, 64, 64, 4, 4)]
SERIAL_EXT = [(64, 32, 64, 4, 4), (128, 32, 64, 4, 4), (64, 128, 64, 4, 3), (16, 64, 128, 4, 4)]


def _pow2(n: int, lo: int = 16) -> int:
    return max(lo, 1 << max(0, int(n) - 1).bit_length())


def _split_k(m, n, k, tile, sms, waves) -> int:
    """SPLIT_K in 2..8 that fills about `waves` x sms programs (each split keeps >= 2 K blocks)."""
    tiles = math.ceil(m / tile[0]) * math.ceil(n / tile[1])
    return max(2, min(8, math.ceil(waves * sms / tiles), k // (2 * tile[2])))


def _serial_k(m, n, k, tile, sms, waves) -> int | None:
    """SPLIT_K (2..16) of a serial split-K tile filling about `waves` x sms programs, every split
    non-empty (None: the tile already fills the GPU or K is too short)."""
    tiles = math.ceil(m / tile[0]) * math.ceil(n / tile[1])
    bk = min(tile[2], _pow2(k))
    s = min(16, math.ceil(waves * sms / tiles), math.ceil(k / bk))
    if s < 2:
        return None
    kper = math.ceil(math.ceil(k / s) / bk) * bk
    s = math.ceil(k / kper)
    return s if s >= 2 else None


def _params(m, n, k, cfg, split):
    """Tactic params of a config clamped to the problem (blocks <= next pow2 of the dims; no more
    stages than K blocks per program; 4 warps for tiles under 64x64)."""
    bm, bn, bk, w, s = cfg
    bm, bn, bk = min(bm, _pow2(m)), min(bn, _pow2(n)), min(bk, _pow2(k))
    iters = math.ceil(k / (bk * (split or 1)))
    p = {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": 8,
         "num_warps": w if bm * bn >= 64 * 64 else 4, "num_stages": max(2, min(s, iters))}
    if split:
        p["SPLIT_K"] = split
    return p


def _tactics(m, n, k, cfgs, level, split=None, serial=False):
    out = []
    for cfg in cfgs:
        sk = split(*cfg[:3]) if split else None
        if split and sk is None:
            continue
        t = tactic_dict("gemm", **_params(m, n, k, cfg, sk), **({"SERIAL": 1} if serial else {}))
        if level > 3:
            t["level"] = level
        out.append(t)
    return out


def configs(m: int, n: int, k: int, sms: int = 132) -> list[dict]:
    """Tactics for an [m, k] x [k, n] GEMM: level 3 first (<= 6), then level-4 ones; no duplicates."""
    if m >= 1024:
        out = _tactics(m, n, k, LARGE, 3) + _tactics(m, n, k, LARGE_EXT + SMALL[2:4], 4)
    elif m > 512:
        out = _tactics(m, n, k, [LARGE[3], LARGE[0], LARGE[2], SMALL[2]], 3)
        out += _tactics(m, n, k, LARGE[1:2] + LARGE_EXT[:5] + SMALL[:2] + SMALL_EXT[3:5], 4)
    else:  # small M: serial split-K fills the GPU when the output has few tiles
        out = _tactics(m, n, k, SMALL[:3], 3)
        out += _tactics(m, n, k, SERIAL, 3, lambda *t: _serial_k(m, n, k, t, sms, 1), serial=True)
        out += _tactics(m, n, k, SMALL[3:] + SMALL_EXT + LARGE[:1], 4)
        out += _tactics(m, n, k, SERIAL + SERIAL_EXT, 4, lambda *t: _serial_k(m, n, k, t, sms, 2), serial=True)
        out += _tactics(m, n, k, SERIAL_EXT, 4, lambda *t: _serial_k(m, n, k, t, sms, 1), serial=True)
        if k >= 1536:  # two-kernel split-K (partials + reduce)
            for tile, waves in zip(SPLIT, (1, 2)):
                out += _tactics(m, n, k, [tile], 4, lambda *t, w=waves: _split_k(m, n, k, t, sms, w))
            for tile, s in SPLIT_EXT:
                out += _tactics(m, n, k, [tile], 4, lambda *t, s=s: s)
    seen, uniq = set(), []
    for t in out:
        key = tuple(sorted(t["params"].items()))
        if key not in seen:
            seen.add(key)
            uniq.append(t)
    return uniq


def operand_kind(shape, out_shape) -> str | None:
    """Access kind (full | inner | outer | scalar) of a contiguous operand over the output, or None."""
    return _tensor_kind(torch.empty([int(d) for d in shape], device="meta"), tuple(int(d) for d in out_shape))


def problem(layer, shapes):
    """(M, N, K) when the layer fits the kernel at these shapes, else None."""
    mnk = weight_gemm(layer, shapes, LOW)
    if mnk is None:
        return None
    m, n, k = mnk
    a = shapes.inp(0)
    out_shape = list(a["shape"][:-1]) + [n]
    ops = [shapes.inp(i) for i in range(2, len(layer.inputs))]
    bias, extras = (ops[0] if ops else None), ops[1:]
    if bias is not None and (bias["dtype"] != a["dtype"] or operand_kind(bias["shape"], out_shape) is None):
        return None
    if not _epilogue_ok(layer, shapes, a["dtype"], extras, out_shape):
        return None
    return m, n, k


def _epilogue_ok(layer, shapes, dt, extras, out_shape) -> bool:
    epi = layer.attrs.get("epilogue")
    if extras and not epi:
        return False
    if any(e is None or operand_kind(e["shape"], out_shape) is None for e in extras):
        return False
    dts = [dt] + [e["dtype"] for e in extras]
    if epi and not supported(epi, dts):
        return False
    out = shapes.out(0)
    want = expr_dtype(epi, dts) if epi else dt
    return out is not None and out["dtype"] == want and [int(d) for d in out["shape"]] == out_shape


def _sms(device) -> int:
    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 132





def gemm_factory(layer, attrs, opset, device, params):
    """The GEMM runner of a layer (plans per input signature; falls back to the reference)."""
    return GemmRunner(layer.type, attrs, params, reference(layer, attrs, opset))


def _tensor_kind(t, out_shape) -> str | None:
    """Access kind of an actual operand tensor over the output (None: not covered)."""
    from .launch import kind_of, operand_strides
    try:
        if tuple(torch.broadcast_shapes(t.shape, out_shape)) != tuple(out_shape):
            return None
    except RuntimeError:
        return None
    kind = kind_of(operand_strides(t, out_shape), out_shape, len(out_shape) - 1)
    return kind if kind != "strided" else None


def _rows(a, m, k):
    """(sam, sak, copy): A's row/col strides when its leading dims fold into M rows without a copy."""
    try:
        sam, sak = a.view(m, k).stride()
        return sam, sak, False
    except RuntimeError:
        return k, 1, True


class GemmRunner(_Runner):
    """One tf_gemm launch (or tf_gemm + tf_gemm_reduce with SPLIT_K) per input signature."""

    def __init__(self, typ, attrs, params, fallback):
        super().__init__(attrs, params, fallback)
        self.gemm = typ in ("Gemm", "fused.GemmAct")

    def _launch(self, kernel, grid, args, warps, stages, **meta):
        kernel[grid](*args, num_warps=warps, num_stages=stages, **meta)

    def spec(self, inputs):
        """The problem of these inputs: dict (M, N, K, strides, operand kinds...) or None."""
        at, (a, b) = self.attrs, inputs[:2]
        if a is None or b is None or a.dim() < 2 or b.dim() != 2:
            return None
        dt = dtype_name(a)
        if dt not in RUN_DTYPES or dtype_name(b) != dt or (self.gemm and (a.dim() != 2 or at.get("transA", 0))):
            return None
        bv = b.t() if self.gemm and at.get("transB", 0) else b
        k, n = bv.shape
        out_shape = tuple(a.shape[:-1]) + (n,)
        c, extras, epi = (inputs[2] if len(inputs) > 2 else None), list(inputs[3:]), at.get("epilogue")
        if a.shape[-1] != k or any(e is None for e in extras) or (extras and not epi):
            return None
        kinds = [_tensor_kind(t, out_shape) for t in ([c] if c is not None else []) + extras]
        if None in kinds or (c is not None and dtype_name(c) != dt):
            return None
        bias = (dt, kinds.pop(0)) if c is not None else None
        ex = tuple((dtype_name(e), kd) for e, kd in zip(extras, kinds))
        dts = [dt] + [d for d, _ in ex]
        if epi and not supported(epi, dts):
            return None
        m = math.prod(a.shape[:-1])
        sam, sak, copy = _rows(a, m, k)
        return {"M": m, "N": n, "K": k, "sa": (sam, sak), "sb": bv.stride(), "copy": copy, "shape": out_shape,
                "dt": dt, "out_dt": expr_dtype(epi, dts) if epi else dt, "bias": bias, "extras": ex}

    def plan(self, inputs):
        from .gemm_source import GemmSignature, gemm_source, reduce_source
        from .launch import compile_source
        p = self.spec(inputs)
        if p is None:
            return None
        m, n, k, (sam, sak), (sbk, sbn) = p["M"], p["N"], p["K"], p["sa"], p["sb"]
        prm, epi = self.params, self.attrs.get("epilogue")
        bm, bn, bk, split = prm["BLOCK_M"], prm["BLOCK_N"], prm["BLOCK_K"], int(prm.get("SPLIT_K", 1))
        big = max((m + 256) * n * split, (m + 256) * sam + (k + 256) * sak,
                  (k + 256) * sbk + (n + 256) * sbn) >= INT64_FROM
        serial = split > 1 and bool(prm.get("SERIAL", 0))
        sig = GemmSignature(p["dt"], p["out_dt"], p["bias"], p["extras"], float(self.attrs.get("alpha", 1.0)),
                            float(self.attrs.get("beta", 1.0)) if self.gemm else 1.0, k % bk == 0, big, split > 1,
                            serial)
        src, consts = gemm_source(sig, epi)
        kernel = compile_source(src, "tf_gemm")
        meta = {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": int(prm.get("GROUP_M", 8))}
        warps, stages = int(prm.get("num_warps", 4)), int(prm.get("num_stages", 3))
        tiles = math.ceil(m / bm) * math.ceil(n / bn)
        grid = (tiles, split)
        dims = [m, n, k, sam, sak, sbk, sbn]
        shape, out_dt = p["shape"], p["out_dt"]
        cvals = [v for _, v in consts]
        dev = inputs[0].device
        if split > 1:
            ws = torch.empty((split, m, n), dtype=torch.float32, device=dev)
            kper = math.ceil(math.ceil(k / split) / bk) * bk
        if serial:  # counters start at 0; the last program of each tile resets its counter
            cnt = torch.zeros(tiles, dtype=torch.int32, device=dev)
            meta["SPLIT_K"] = split
        elif split > 1:
            rsrc, rconsts = reduce_source(sig, epi)
            finish = compile_source(rsrc, "tf_gemm_reduce")
            rbn = min(256, _pow2(n))
            rmeta = {"SPLIT_K": split, "BLOCK_M": min(_pow2(m, 1), max(1, 1024 // rbn)), "BLOCK_N": rbn}
            rgrid = (math.ceil(m / rmeta["BLOCK_M"]) * math.ceil(n / rbn),)
            rvals = [v for _, v in rconsts]

        def run(ins, outs=None):
            a = ins[0].reshape(m, k) if p["copy"] else ins[0]
            out = _out(outs, shape, out_dt, a.device)
            if m == 0 or n == 0:
                return [out]
            ops = [t for t in ins[2:] if t is not None]
            if split == 1:
                self._launch(kernel, grid, [a, ins[1]] + ops + [out] + dims + cvals, warps, stages, **meta)
            elif serial:
                self._launch(kernel, grid, [a, ins[1]] + ops + [out, ws, cnt] + dims + [kper, m * n] + cvals,
                             warps, stages, **meta)
            else:
                self._launch(kernel, grid, [a, ins[1], ws] + dims + [kper, m * n], warps, stages, **meta)
                self._launch(finish, rgrid, [ws] + ops + [out, m, n, m * n] + rvals, 4, 1, **rmeta)
            return [out]
        return run


@tactic_family("triton", {"gemm": gemm_factory}, library="TRITON", writes_in_place=True)
def gemm_candidates(layer, shapes, device) -> list[dict]:
    """Triton GEMM configs for a GEMM layer with a 2-D fp16/bf16 weight (CUDA only)."""
    if not is_cuda(device) or layer.type not in TYPES:
        return []
    mnk = problem(layer, shapes)
    if mnk is None or 0 in mnk:
        return []
    return configs(*mnk, sms=_sms(device))
