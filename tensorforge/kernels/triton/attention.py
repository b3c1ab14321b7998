"""Triton flash-attention tactic "flash_attention" for fused.Attention layers (fp16 / bf16, head
sizes up to 128 padded to a power of two, additive or boolean masks broadcast through strides,
optional causal attr, any Sq / Sk).

The kernel (attention_source.py) reads Q, K, V straight from the layer's source tensors through
the strides of their view programs and writes the result through the inverse of the output view
into the output buffer, so no copies surround it. The view arithmetic runs once per input
signature on meta tensors; a signature the kernel does not cover runs the reference."""
from __future__ import annotations

import math

import torch

from ... import dtypes
from ..device import is_cuda
from ..layer_shapes import LOW
from ..registry import tactic_family
from . import reference, tactic_dict
from .runners import _out, _Runner

LOG2E = 1.4426950408889634
OUT_Q = {"float8e4m3fn": 1, "int8": 2, "uint8": 3}  # the output Q types the kernel stores (constexpr OUT_Q)
MAX_D = 128
SMEM = 160 * 1024  # shared-memory budget of one program when the device cannot be asked
GRID_Y = 65535
# (BLOCK_M, BLOCK_N, num_warps, num_stages)
LEVEL3 = ((128, 64, 4, 3), (64, 64, 4, 3), (128, 128, 8, 3), (32, 64, 4, 3))
LEVEL4 = ((128, 64, 8, 3), (128, 32, 4, 3), (64, 32, 4, 3), (64, 128, 4, 3), (128, 64, 4, 4),
          (64, 64, 4, 4), (128, 128, 8, 2), (64, 64, 2, 3), (32, 32, 2, 3), (16, 64, 2, 3))


def block_d(d: int) -> int:
    """The power-of-two tile width (>= 16) that holds a head dimension d."""
    return max(16, 1 << (int(d) - 1).bit_length())


def smem_bytes(bm, bn, stages, d, dv, mask=None) -> int:
    """Shared memory of a config estimate: the Q tile and the staged K / V (2-byte) and mask tiles.

    mask: None, or (element bytes, row) where row means one mask row serves every query."""
    tiles = 2 * bn * (block_d(d) + block_d(dv))
    if mask is not None:
        tiles += mask[0] * bn * (1 if mask[1] else bm)
    return 2 * bm * block_d(d) + stages * tiles


def _mask_tile(shapes):
    """(element bytes, row-broadcast) of the layer's mask, None without one."""
    m = shapes.inp(3)
    if m is None:
        return None
    shape = tuple(m["shape"])
    return ({"bool": 1, "float16": 2, "bfloat16": 2, "float32": 4}.get(m["dtype"], 8),
            len(shape) < 2 or shape[-2] == 1)


def smem_limit(device) -> int:
    """Shared memory one program may use on the device (opt-in maximum less a margin)."""
    if not torch.cuda.is_available():
        return SMEM
    props = torch.cuda.get_device_properties(device)
    return int(getattr(props, "shared_memory_per_block_optin", SMEM + 4096)) - 4096


def _dims(layer, shapes):
    """(head dim of Q/K, head dim of V) of the layer's views, or None when unknown."""
    from ...ops.fused.attention import view_shape
    q, v = shapes.inp(0), shapes.inp(2)
    if q is None or v is None:
        return None
    d = view_shape(q["shape"], layer.attrs.get("q_view"))[-1]
    dv = view_shape(v["shape"], layer.attrs.get("v_view"))[-1]
    return (d, dv) if isinstance(d, int) and isinstance(dv, int) else None


def _mask_ok(shapes) -> bool:
    m = shapes.inp(3)
    return m is None or m["dtype"] in ("bool", "float16", "bfloat16", "float32", "float64")





def _meta_view(t, steps, transpose_last=False):
    """The view program run on a meta tensor with t's shape and strides (views only, no copies)."""
    from ...ops.shape import reshape_dims
    x = torch.empty_strided(tuple(t.shape), tuple(t.stride()), dtype=t.dtype, device="meta")
    for st in steps or ():
        if st[0] == "reshape":
            x = x.view(reshape_dims(tuple(x.shape), list(st[1]), 0))
        elif st[0] == "transpose":
            x = x.permute(*st[1])
        elif st[0] == "select":
            x = x.select(st[1], st[2])
        elif st[0] == "narrow":
            x = x.narrow(st[1], st[2], st[3])
        else:
            raise ValueError(st)
    return x.transpose(-1, -2) if transpose_last else x


def _inverse_out(y_shape, steps):
    """(output shape, strides of the [.., L, Dv] result inside the contiguous output) or None."""
    from ...ops.fused.attention import view_shape
    shapes = [tuple(y_shape)]
    for st in steps or ():
        if st[0] not in ("reshape", "transpose"):
            return None
        shapes.append(tuple(view_shape(shapes[-1], [st])))
    x = torch.empty(shapes[-1], device="meta")
    for i in range(len(shapes) - 2, -1, -1):
        st = steps[i]
        x = x.view(shapes[i]) if st[0] == "reshape" else x.permute(*[st[1].index(j) for j in range(len(st[1]))])
    return (shapes[-1], tuple(x.stride())) if tuple(x.shape) == tuple(y_shape) else None


def _batch2(batch, strides):
    """Collapse the batch dims to (Z, H) with per-operand strides, or None when they need more."""
    from .launch import collapse
    dims, cst = collapse(tuple(batch), [list(s) for s in strides])
    if len(dims) > 2:
        return None
    pad = 2 - len(dims)
    return [1] * pad + dims, [[0] * pad + s for s in cst]


class FlashAttentionRunner(_Runner):
    """fused.Attention on the flash kernel; signatures it cannot take run the reference."""

    def plan(self, inputs):
        try:
            return self._plan(inputs)
        except (RuntimeError, ValueError):  # a view that needs a copy, shapes that do not broadcast
            return None

    def _plan(self, inputs):
        a = self.attrs
        q0, k0, v0 = inputs[:3]
        mask = inputs[3] if len(inputs) > 3 else None
        dt = q0.dtype
        if dt not in (torch.float16, torch.bfloat16) or k0.dtype != dt or v0.dtype != dt:
            return None
        if mask is not None and mask.dtype != torch.bool and not mask.dtype.is_floating_point:
            return None
        q = _meta_view(q0, a.get("q_view"))
        k = _meta_view(k0, a.get("k_view"), bool(a.get("k_transposed", 0)))
        v = _meta_view(v0, a.get("v_view"))
        (L, d), (S, dk), (Sv, dv) = q.shape[-2:], k.shape[-2:], v.shape[-2:]
        batch = tuple(q.shape[:-2])
        if dk != d or Sv != S or max(d, dv) > MAX_D or min(L, S, d, dv) == 0 or q.dim() < 2 or \
                tuple(torch.broadcast_shapes(batch, k.shape[:-2], v.shape[:-2])) != batch:
            return None
        k, v = k.expand(*batch, S, d), v.expand(*batch, S, dv)
        m = None
        if mask is not None:
            m = torch.empty_strided(tuple(mask.shape), tuple(mask.stride()), device="meta").expand(*batch, L, S)
        inv = _inverse_out(batch + (L, dv), a.get("out_view"))
        if inv is None:
            return None
        out_shape, o_strides = inv
        ops = [q.stride(), k.stride(), v.stride(), m.stride() if m is not None else (0,) * (len(batch) + 2),
               o_strides]
        nb = len(batch)
        b2 = _batch2(batch, [s[:nb] for s in ops])
        if b2 is None or b2[0][0] * b2[0][1] > GRID_Y:
            return None
        (Z, H), bst = b2
        inner = [s[nb:] for s in ops]
        scale = a.get("scale")
        scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
        p = self.params
        bm, bn = int(p.get("BLOCK_M", 64)), int(p.get("BLOCK_N", 64))
        causal = bool(a.get("causal", 0))
        args = [q.storage_offset(), k.storage_offset(), v.storage_offset(), m.storage_offset() if m is not None else 0]
        for i in range(5):
            args += [bst[i][0], bst[i][1], inner[i][0], inner[i][1]]
        oq = a.get("out_q")
        if oq and oq[2] not in OUT_Q:
            return None
        args += [H, L, S, scale * LOG2E, float(oq[0]) if oq else 1.0, float(oq[1] or 0) if oq else 0.0]
        meta = dict(D=d, DV=dv, BLOCK_M=bm, BLOCK_N=bn, BLOCK_D=block_d(d), BLOCK_DV=block_d(dv),
                    PAD_D=block_d(d) != d, PAD_DV=block_d(dv) != dv,
                    MASK_KIND=0 if m is None else (2 if mask.dtype == torch.bool else 1),
                    MASK_ROW=m is not None and (L == 1 or m.stride(-2) == 0), CAUSAL=causal,
                    PAD_M=L % bm != 0, TAIL_LOOP=causal or S % bn != 0, OUT_Q=OUT_Q[oq[2]] if oq else 0,
                    num_warps=int(p.get("num_warps", 4)), num_stages=int(p.get("num_stages", 3)))
        return self._launcher(args, meta, (-(-L // bm), Z * H), out_shape, dtypes.to_torch(oq[2]) if oq else dt)

    def _launcher(self, args, meta, grid, out_shape, dt):
        from .attention_source import NAME, SOURCE
        from .launch import compile_source
        kernel = compile_source(SOURCE, NAME)[grid]
        odt = dtypes.from_torch(dt)

        def run(ins, outs=None):
            q = ins[0]
            out = _out(outs, out_shape, odt, q.device)
            m = ins[3] if len(ins) > 3 and ins[3] is not None else q
            if m.dtype == torch.bool:
                m = m.view(torch.uint8)
            kernel(q, ins[1], ins[2], m, out, *args, **meta)
            return [out]
        return run


def flash_attention(layer, attrs, opset, device, params):
    """Runner of the flash_attention tactic."""
    return FlashAttentionRunner(attrs, params, reference(layer, attrs, opset))


@tactic_family("triton", {"flash_attention": flash_attention}, library="TRITON", writes_in_place=True)
def flash_candidates(layer, shapes, device):
    """flash_attention configs for a fp16/bf16 fused.Attention with head dims <= 128 (CUDA only)."""
    if layer.type != "fused.Attention" or not is_cuda(device):
        return []
    ins = [shapes.inp(i) for i in range(3)]
    if any(t is None for t in ins) or len({t["dtype"] for t in ins}) != 1 or ins[0]["dtype"] not in LOW:
        return []
    dims = _dims(layer, shapes)
    if dims is None or not 0 < max(dims) <= MAX_D or not _mask_ok(shapes):
        return []
    out, limit, mask = [], smem_limit(device), _mask_tile(shapes)
    for level, configs in ((3, LEVEL3), (4, LEVEL4)):
        for bm, bn, warps, stages in configs:
            if smem_bytes(bm, bn, stages, *dims, mask) > limit:
                continue
            t = tactic_dict("flash_attention", BLOCK_M=bm, BLOCK_N=bn, num_warps=warps, num_stages=stages)
            if level == 4:
                t["level"] = 4
            out.append(t)
    return out
