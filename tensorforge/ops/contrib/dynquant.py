"""com.microsoft dynamically quantized layers: DynamicQuantizeMatMul, MatMulIntegerToFloat,
DynamicQuantizeLSTM. Activations are quantized to uint8 per GEMM call as ORT does (range includes 0,
scale (max - min) / 255, round half to even), so results match ORT's integer GEMMs."""
from __future__ import annotations

import torch

from ...errors import UnsupportedOpError
from ..common import in_info
from ..matmul import matmul_infer
from ..registry import infer, reference
from . import MS
from .mlas import mlas_sigmoid, mlas_tanh


def quantize_u8(a):
    """(q, scale, zero point) of a float tensor over its whole range (ORT GetQuantizationParameter)."""
    af = a.to(torch.float32)
    lo = torch.clamp(af.min(), max=0.0) if af.numel() else af.new_zeros(())
    hi = torch.clamp(af.max(), min=0.0) if af.numel() else af.new_zeros(())
    scale = torch.where(hi == lo, torch.ones_like(hi), (hi - lo) / 255.0)
    zp = torch.round((0.0 - lo / scale).clamp(0, 255))
    q = (torch.round(af / scale) + zp).clamp(0, 255)
    return q, scale, zp


def int_matmul(qa, za, b, zb):
    """(qa - za) @ (b - zb), exact (int64 on CPU, float64 elsewhere), as float32."""
    exact = torch.int64 if qa.device.type == "cpu" else torch.float64
    a = (qa.to(torch.float64) - (za.to(torch.float64) if za is not None else 0)).to(exact)
    w = b.to(torch.float64)
    if zb is not None:
        w = w - zb.to(torch.float64)
    return torch.matmul(a, w.to(exact)).to(torch.float32)


@reference("MatMulIntegerToFloat", domain=MS)
def matmul_integer_to_float_ref(a, b, a_scale, b_scale, a_zero_point=None, b_zero_point=None, bias=None):
    """(a - a_zp) @ (b - b_zp) * a_scale * b_scale + bias."""
    y = int_matmul(a, a_zero_point, b, b_zero_point) * (a_scale.to(torch.float32) * b_scale.to(torch.float32))
    return y + bias if bias is not None else y


@reference("DynamicQuantizeMatMul", domain=MS)
def dynamic_quantize_matmul_ref(a, b, b_scale, b_zero_point=None, bias=None):
    """MatMulIntegerToFloat after quantizing a to uint8 over its whole range."""
    qa, sa, za = quantize_u8(a)
    y = int_matmul(qa, za, b, b_zero_point) * (sa * b_scale.to(torch.float32))
    return y + bias if bias is not None else y


@infer("MatMulIntegerToFloat", "DynamicQuantizeMatMul", domain=MS)
def dq_matmul_infer(node):
    dt = node.inputs[0].dtype if node.op == "DynamicQuantizeMatMul" else node.inputs[2].dtype
    return [(dt, matmul_infer(node)[0][1])]


def _qgemm(a, w, scale, zp):
    """a (float) @ w (int8/uint8 (K, N)) with a quantized as one block and w's per-column scale."""
    qa, sa, za = quantize_u8(a)
    return int_matmul(qa, za, w, zp) * (sa * scale.to(torch.float32))


def _direction(xs, lens, w, r, ws, wz, rs, rz, b, p, h, c, clip, input_forget, reverse):
    """One direction of the LSTM over (T, B, I) inputs; returns (Y (T, B, H), h, c)."""
    t_len, batch = xs.shape[0], xs.shape[1]
    hid = r.shape[0]
    if reverse:  # reverse each row within its own length
        idx = torch.arange(t_len, device=xs.device).reshape(-1, 1)
        rev = torch.where(idx < lens.reshape(1, -1), lens.reshape(1, -1) - 1 - idx, idx)
        xs = xs.gather(0, rev.reshape(t_len, batch, 1).expand(xs.shape))
    gx = _qgemm(xs.reshape(t_len * batch, -1), w, ws, wz).reshape(t_len, batch, 4 * hid)
    bi, bo, bf, bc = (b[:4 * hid] + b[4 * hid:]).split(hid) if b is not None else (0, 0, 0, 0)
    pi, po, pf = p.split(hid) if p is not None else (None, None, None)
    big = torch.finfo(torch.float32).max if clip is None else clip
    out = []
    for t in range(t_len):
        # ORT quantizes h per chunk of ceil(batch / its threads) rows, per row once threads >= batch
        # (its result depends on its thread count): per row here, ORT's result on a large enough pool
        g = gx[t] + torch.cat([_qgemm(h[i:i + 1], r, rs, rz) for i in range(batch)])
        gi, go, gf, gc = g.split(hid, -1)
        # ORT's order: gate (+ peephole * c) + bias, clip, activation
        i = mlas_sigmoid((gi + (c * pi if pi is not None else 0) + bi).clamp(-big, big))
        if input_forget:
            f = 1 - i
        else:
            f = mlas_sigmoid((gf + (c * pf if pf is not None else 0) + bf).clamp(-big, big))
        c2 = c * f + i * mlas_tanh((gc + bc).clamp(-big, big))
        o = mlas_sigmoid((go + (c2 * po if po is not None else 0) + bo).clamp(-big, big))
        h2 = mlas_tanh(c2) * o
        live = (t < lens).reshape(-1, 1)
        h, c = torch.where(live, h2, h), torch.where(live, c2, c)
        out.append(torch.where(live, h2, torch.zeros_like(h2)))
    y = torch.stack(out) if out else xs.new_zeros((0, batch, hid))
    if reverse:
        y = y.gather(0, rev.reshape(t_len, batch, 1).expand(y.shape))
    return y, h, c


def _per_dir(v, d):
    """Direction d's slice of a per-direction parameter ((D,) or (D, 4H)); scalars as they are."""
    return v[d] if v is not None and v.dim() > 0 else v


@reference("DynamicQuantizeLSTM", domain=MS)
def dynamic_quantize_lstm_ref(x, w, r, b=None, sequence_lens=None, initial_h=None, initial_c=None,
                              p=None, w_scale=None, w_zero_point=None, r_scale=None, r_zero_point=None,
                              hidden_size=None, direction="forward", clip=None, input_forget=0,
                              activations=None, activation_alpha=None, activation_beta=None):
    """ONNX LSTM (gates iofc) with W (D, I, 4H) and R (D, H, 4H) quantized, scales per direction or
    per direction and column."""
    if activations and [a.lower() for a in activations] != ["sigmoid", "tanh", "tanh"] * (len(activations) // 3):
        raise UnsupportedOpError(f"DynamicQuantizeLSTM: activations {activations} are not supported")
    t_len, batch = x.shape[0], x.shape[1]
    hid = r.shape[1]
    dirs = w.shape[0]
    lens = sequence_lens.to(torch.int64) if sequence_lens is not None else torch.full((batch,), t_len, device=x.device)
    ys, hs, cs = [], [], []
    for d in range(dirs):
        h = initial_h[d] if initial_h is not None else x.new_zeros((batch, hid))
        c = initial_c[d] if initial_c is not None else x.new_zeros((batch, hid))
        y, h, c = _direction(x, lens.to(x.device), w[d], r[d], _per_dir(w_scale, d), _per_dir(w_zero_point, d),
                             _per_dir(r_scale, d), _per_dir(r_zero_point, d),
                             b[d] if b is not None else None, p[d] if p is not None else None, h, c, clip,
                             input_forget, direction == "reverse" or d == 1)
        ys.append(y)
        hs.append(h)
        cs.append(c)
    return torch.stack(ys, 1), torch.stack(hs), torch.stack(cs)


@infer("DynamicQuantizeLSTM", domain=MS)
def dynamic_quantize_lstm_infer(node):
    (dt, xs), (_, ws), (_, rs) = in_info(node, 0), in_info(node, 1), in_info(node, 2)
    dirs, hid = ws[0], rs[1]
    outs = [(dt, (xs[0], dirs, xs[1], hid)), (dt, (dirs, xs[1], hid)), (dt, (dirs, xs[1], hid))]
    return outs[:len(node.outputs)]
