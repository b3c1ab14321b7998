"""Triton pooling kernels (tactic "pool"): 2-D MaxPool without Indices, AveragePool, and 4-D
GlobalAveragePool / GlobalMaxPool, float16 / bfloat16 / float32; the max pools also on the 8-bit
types of a quantized network (int8, uint8: max commutes with quantization, exact).

Why: torch's CUDA max_pool2d always computes an int64 indices tensor (4x the bytes of an fp16
output); these kernels write only the values. Inputs are read through their strides; the fast
path is channels-last (BLOCK_C contiguous channels per pixel); the output keeps the input's
memory format (or is written into the caller's buffer, any dense layout). Tactic params:
BLOCK_P (output pixels per program), BLOCK_C (channels per program, channels-last inputs; NCHW
inputs run BLOCK_P * BLOCK_C pixels of one channel plane per program), num_warps, nhwc_ok."""
from __future__ import annotations

import torch

from ...ops.spatial import pool_out_dim, resolve_pads
from ..device import is_cuda
from ..layer_shapes import FLOATS
from ..registry import tactic_family
from . import tactic_dict
from .launch import compile_source, dtype_name
from .runners import _Runner

WINDOW = ("MaxPool", "AveragePool")
GLOBAL = ("GlobalAveragePool", "GlobalMaxPool")
LIMIT = 2 ** 31 - 1
# max pools also on these, as ONNX types them (session 9: an int8 MaxPool run as the reference took
# 0.86 ms in ResNet-50 at bs 128, 12x the FP16 kernel)
# (and float8 e4m3: an FP8 ResNet-50's MaxPool with its Q moved above it; session 13 on the H200 the aten
# reference failed there, torch pools no float8)
BYTES = ("int8", "uint8", "float8e4m3fn")
NCHW_MAX_P = 2048   # pixels per program when the input is NCHW (one channel plane per program)


def _np2(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def _config(bp, bc, warps, level=3) -> dict:
    t = tactic_dict("pool", BLOCK_P=int(bp), BLOCK_C=int(bc), num_warps=int(warps), nhwc_ok=True)
    if level > 3:
        t["level"] = level
    return t


def supported(layer, shapes) -> bool:
    """2-D windowed pools (MaxPool with one output) and 4-D global pools over float inputs."""
    x = shapes.inp(0)
    # offered for fp16/bf16 only: the fp32 path missed the reference by 4e-4 on the H200 (open)
    if x is None or len(x["shape"]) != 4:
        return False
    if x["dtype"] not in ("float16", "bfloat16") and not (x["dtype"] in BYTES and _is_max(layer.type)):
        return False
    if layer.type in GLOBAL:
        return True
    if layer.type == "MaxPool" and len(layer.outputs) != 1:
        return False  # Indices requested: the reference computes them
    return layer.type in WINDOW and len(layer.attrs.get("kernel_shape", ())) == 2





def _is_max(kind: str) -> bool:
    return kind in ("MaxPool", "GlobalMaxPool")


def make_pool(layer, attrs, opset, device, params):
    """Runner of tactic "pool" (falls back to the reference without Indices when unsupported)."""
    from ...ops import registry
    op, n_out = registry.get(layer.type, layer.domain, layer.name), len(layer.outputs)

    def fallback(inputs):
        return op.run(inputs, attrs, opset, n_out)
    return PoolRunner(layer.type if n_out == 1 else "", attrs, params, fallback)


def window_geometry(attrs, kind: str, h: int, w: int) -> dict | None:
    """Kernel constants of a 2-D MaxPool / AveragePool at input size (h, w); None if unsupported."""
    k = list(attrs["kernel_shape"])
    if len(k) != 2:
        return None
    s = list(attrs.get("strides") or [1, 1])
    d = list(attrs.get("dilations") or [1, 1])
    pads = resolve_pads(attrs.get("auto_pad", "NOTSET"), [h, w], k, s, d, attrs.get("pads"))
    ceil = int(attrs.get("ceil_mode", 0))
    oh = int(pool_out_dim(h, k[0], s[0], d[0], pads[0], pads[2], ceil))
    ow = int(pool_out_dim(w, k[1], s[1], d[1], pads[1], pads[3], ceil))
    if oh <= 0 or ow <= 0:
        return None
    include = kind == "AveragePool" and int(attrs.get("count_include_pad", 0))
    lo_h, hi_h = (-pads[0], h + pads[2]) if include else (0, h)
    lo_w, hi_w = (-pads[1], w + pads[3]) if include else (0, w)
    return {"OH": oh, "OW": ow, "bounds": [lo_h, hi_h, lo_w, hi_w],
            "const": dict(KH=k[0], KW=k[1], SH=s[0], SW=s[1], PT=pads[0], PL=pads[1], DH=d[0], DW=d[1],
                          IS_MAX=kind == "MaxPool")}


def _extent(t) -> int:
    """1 + the largest element offset of t (int32 indexing is safe below 2**31)."""
    return 1 + sum((d - 1) * abs(st) for d, st in zip(t.shape, t.stride()))


def _fits(o, shape, dt) -> bool:
    """The caller's buffer takes the result: same shape and dtype, dense (any dim order)."""
    return o is not None and tuple(o.shape) == tuple(shape) and dtype_name(o) == dt and (
        o.is_contiguous() or o.is_contiguous(memory_format=torch.channels_last))


def _same_format(x, shape):
    """An output tensor in x's memory format (channels-last in -> channels-last out)."""
    cl = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    y = torch.empty(shape, dtype=x.dtype, device=x.device)
    return y.contiguous(memory_format=torch.channels_last) if cl else y


class PoolRunner(_Runner):
    """One launch plan per input signature; the reference for what the kernels do not cover."""

    def __init__(self, kind, attrs, params, fallback):
        super().__init__(attrs, params, fallback)
        self.kind = kind

    def plan(self, inputs):
        x = inputs[0]
        if self.kind not in WINDOW + GLOBAL or x is None or x.dim() != 4 or x.numel() == 0 \
                or not (dtype_name(x) in FLOATS or dtype_name(x) in BYTES and _is_max(self.kind)):
            return None
        return self._global(x) if self.kind in GLOBAL else self._window(x)

    def _tile(self, x):
        """(BLOCK_P, BLOCK_C) for a channels-last input (same elements per program when C is
        small), None for other layouts; and the config's elements per program."""
        bp, bc = int(self.params.get("BLOCK_P", 64)), int(self.params.get("BLOCK_C", 64))
        c = x.shape[1]
        if x.stride(1) == 1 and c > 1:  # channels-last: vectorize along C
            cc = min(bc, _np2(c))
            return (max(1, bp * bc // cc), cc), bp * bc
        return None, bp * bc

    def _window(self, x):
        n, c, h, w = x.shape
        g = window_geometry(self.attrs, self.kind, h, w)
        if g is None:
            return None
        kernel = compile_source(_source(), "tf_pool2d")
        shape = (n, c, g["OH"], g["OW"])
        tile, elems = self._tile(x)
        c_fast = tile is not None
        bp, bc = tile if c_fast else (min(elems, NCHW_MAX_P), 1)
        npix = n * g["OH"] * g["OW"]
        n_p, n_c = -(-npix // bp), -(-c // bc)
        dt = dtype_name(x)
        consts = dict(g["const"], BLOCK_P=bp, BLOCK_C=bc, C_FAST=c_fast, EVEN_C=c % bc == 0,
                      UPCAST=dtype_name(x) in BYTES)
        geo = [npix, c, g["OH"], g["OW"], h, w]

        def run(ins, outs=None):
            xi = ins[0]
            y = outs[0] if outs and _fits(outs[0], shape, dt) else _same_format(xi, shape)
            big = max(_extent(xi), _extent(y)) >= LIMIT
            args = [xi, y, *geo, *xi.stride(), *y.stride(), *g["bounds"], n_p, n_c]
            self.launch(kernel, (n_p * n_c,), args, BIG=big, **consts)
            return [y]
        return run

    def _global(self, x):
        n, c, h, w = x.shape
        sp = _flat_stride(x)
        if sp is None:
            return None
        hw = h * w
        kernel = compile_source(_source(), "tf_global_pool")
        tile, elems = self._tile(x)
        if tile is not None:
            bp, bc = min(tile[0], _np2(hw)), tile[1]
        else:  # NCHW: H*W is contiguous, a few channels per program
            bp = min(_np2(hw), 256)
            bc = max(1, min(_np2(c), elems // bp))
        n_c = -(-c // bc)
        dt, shape = dtype_name(x), (n, c, 1, 1)
        meta = dict(IS_MAX=self.kind == "GlobalMaxPool", BLOCK_P=bp, BLOCK_C=bc, EVEN_C=c % bc == 0)

        def run(ins, outs=None):
            xi = ins[0]
            y = outs[0] if outs and _fits(outs[0], shape, dt) else torch.empty(shape, dtype=xi.dtype, device=xi.device)
            big = max(_extent(xi), _extent(y)) >= LIMIT
            args = [xi, y, c, hw, xi.stride(0), xi.stride(1), sp, y.stride(0), y.stride(1), n_c]
            self.launch(kernel, (n_c * n,), args, BIG=big, **meta)
            return [y]
        return run


def _flat_stride(x):
    """The stride of the merged H*W axis, or None when H and W do not merge (a strided view)."""
    _, _, h, w = x.shape
    sh, sw = x.stride(2), x.stride(3)
    if w == 1:
        return sh
    if h == 1 or sh == w * sw:
        return sw
    return None


def _source() -> str:
    from .pool_source import SRC
    return SRC


@tactic_family("triton", {"pool": make_pool}, library="TRITON", writes_in_place=True)
def pool_candidates(layer, shapes, device) -> list[dict]:
    """Two configs at level 3 (sized by channels / plane size), more at level 4."""
    if not is_cuda(device) or layer.type not in WINDOW + GLOBAL or not supported(layer, shapes):
        return []
    n, c, h, w = shapes.inp(0)["shape"]
    if layer.type in GLOBAL:
        bp = min(_np2(h * w), 32)
        base = [(bp, min(_np2(c), 64), 4), (min(bp, 16), min(_np2(c), 128), 4)]
        extra = [(min(_np2(h * w), p), min(_np2(c), cc), wp) for p, cc, wp in
                 ((8, 256, 4), (32, 128, 8), (64, 64, 8), (16, 64, 4))]
    else:
        c1, c2 = min(_np2(c), 64), min(_np2(c), 128)
        base = [(max(8, 4096 // c1), c1, 4), (max(8, 8192 // c2), c2, 8)]
        extra = [(max(8, e // cc), cc, wp) for e, cc, wp in
                 ((2048, min(_np2(c), 64), 4), (2048, min(_np2(c), 32), 4), (4096, min(_np2(c), 128), 4),
                  (8192, min(_np2(c), 64), 8), (4096, min(_np2(c), 256), 8), (16384, min(_np2(c), 128), 8))]
    seen, out = set(), []
    for i, cfg in enumerate(base + extra):
        if cfg not in seen:
            seen.add(cfg)
            out.append(_config(*cfg, level=3 if i < len(base) else 4))
    return out
