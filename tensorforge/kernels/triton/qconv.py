"""Triton kernel family "qconv": fused.QConv with float8 e4m3 or int8 operands (symmetric: zero points
0) as an implicit GEMM over NHWC activations: the conv_igemm generator in its quantized mode
(conv_source: tl.dot on the 8-bit values into an exact fp32 / int32 accumulator; the epilogue
dequantizes with the x scale times the per-tensor or per-output-channel weight scale, adds the
bias, runs the layer's expression on its (dequantized) extras and, with out_q, quantizes the store).

The weight is read [Cout, KH, KW, Cin] (channels-last: K-major, as Hopper's 8-bit wgmma wants both
operands): tactic param weight_layout=channels_last lays it out once at build / load time (else the
runner converts it once and caches it); nhwc_ok: inputs and outputs may be NHWC activations of a
layout chain. Tactic params: BLOCK_M/N/K (BLOCK_K >= 32: the 8-bit MMA's K), num_warps,
num_stages. Timed against aten's fp16_form, so it is kept only where it is faster. Any Cin: a channel
count below BLOCK_K (the 3-channel stem) is masked, its K blocks mostly padding, which timing weighs
(session 9, H200: the stem's FP16 form took 2.9 ms at batch 128, 9x the FP16 engine's stem)."""
from __future__ import annotations

import json

import torch

from ...ops.fused.expr import expr_dtype
from ..device import is_cuda
from ..layer_shapes import is_weight
from ..registry import tactic_family
from . import reference
from .conv import ConvRunner, _epilogue_ok, _int32_overflow, configs, geometry
from .conv import tactic as conv_tactic
from .conv_source import ConvSignature, conv_source
from .launch import compile_source, dtype_name

QTYPES = ("float8e4m3fn", "int8")
OUT_Q = ("float8e4m3fn", "int8", "uint8")
FLOAT_OUT = ("float32", "float16", "bfloat16")
# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages): default search, then the extended one
LEVEL3 = ((128, 128, 128, 8, 3), (128, 64, 128, 4, 4), (64, 128, 64, 4, 4), (64, 64, 128, 4, 3))
LEVEL4 = ((128, 256, 128, 8, 3), (256, 128, 128, 8, 3), (128, 128, 64, 4, 4), (128, 64, 64, 4, 4),
          (64, 256, 64, 4, 3), (256, 64, 64, 8, 3), (64, 64, 64, 4, 3), (64, 32, 128, 4, 4))


def _extra_types(extras, extra_q, anchor):
    """[(dtype the expression sees, quantized?)] per extra: a quantized one is dequantized into the
    layer's float type (as the reference's DQ); a float one as it is."""
    eq = extra_q or []
    out = []
    for j, dt in enumerate(extras):
        q = bool(j < len(eq) and eq[j]) and not (dt in FLOAT_OUT or dt == "float64")
        out.append((anchor if q else dt, q))
    return out


def _problem(attrs, x, w, ws, bias, extras):
    """Whether a QConv at these (dtype, shape) inputs is one the kernel covers (dicts or tensors' info)."""
    if x is None or w is None or ws is None or len(x["shape"]) != 4 or len(w["shape"]) != 4:
        return False
    if x["dtype"] not in QTYPES or w["dtype"] != x["dtype"] or int(attrs.get("x_zp", 0) or 0) \
            or int(attrs.get("w_zp", 0) or 0) or int(attrs.get("group", 1)) != 1 or attrs.get("transpose"):
        return False
    cout, cin = w["shape"][0], w["shape"][1]
    n_scale = _numel(ws["shape"])
    if x["shape"][1] != cin or n_scale not in (1, cout) or (bias is not None and _numel(bias["shape"]) != cout):
        return False
    anchor = attrs.get("out_dtype", "float32")
    out_q = attrs.get("out_q")
    if anchor not in FLOAT_OUT or (out_q and out_q[2] not in OUT_Q) or (extras and not attrs.get("epilogue")):
        return False
    return all(e is not None for e in extras)


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def legal(layer, shapes) -> bool:
    """Layers this tactic covers (at these shapes)."""
    if layer.type != "fused.QConv" or shapes is None:
        return False
    x, w, ws = shapes.inp(0), shapes.inp(1), shapes.inp(3)
    extras = [shapes.inp(i) for i in range(4, len(shapes.inputs))]
    if not is_weight(w) or not _problem(layer.attrs, x, w, ws, shapes.inp(2), extras):
        return False
    a = layer.attrs
    anchor = a.get("out_dtype", "float32")
    typed = [{"dtype": t, "shape": e["shape"]} for (t, _), e in
             zip(_extra_types([e["dtype"] for e in extras], a.get("extra_q"), anchor), extras)]
    out = shapes.out(0)
    return _epilogue_ok(a.get("epilogue"), anchor, typed, out["shape"] if out else None)


def tactic(cfg, level: int = 3) -> dict:
    """The qconv tactic dict of one (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages)."""
    return conv_tactic(cfg, level, "qconv")


def qconv_configs(cin: int, cout: int, m: int) -> list[tuple]:
    """[(config, level)]: LEVEL3 then LEVEL4, fitted to the GEMM (BLOCK_K >= 32); the first one is level 3
    whatever its list (a small GEMM that no default tile fits still gets one at level 3)."""
    out = configs(cin, cout, m, ((3, LEVEL3), (4, LEVEL4)), min_k=32)
    return [(c, 3) if i == 0 else (c, lv) for i, (c, lv) in enumerate(out)]


def _info(t):
    return None if t is None else {"dtype": dtype_name(t), "shape": tuple(t.shape)}


class QConvRunner(ConvRunner):
    """One tf_qconv kernel per input signature; inputs it does not cover run the reference."""

    def plan(self, inputs):
        ins = list(inputs) + [None] * max(0, 4 - len(inputs))
        x, w, bias, ws, extras = ins[0], ins[1], ins[2], ins[3], ins[4:]
        a = self.attrs
        if not _problem(a, _info(x), _info(w), _info(ws), _info(bias), [_info(e) for e in extras]):
            return None
        anchor, out_q = a.get("out_dtype", "float32"), a.get("out_q")
        st, pads, dil, (oh, ow) = geometry(a, tuple(x.shape), tuple(w.shape))
        out_shape = (x.shape[0], w.shape[0], oh, ow)
        epi = a.get("epilogue")
        types = _extra_types([dtype_name(e) for e in extras], a.get("extra_q"), anchor)
        typed = [{"dtype": t, "shape": tuple(e.shape)} for (t, _), e in zip(types, extras)]
        if min(oh, ow) <= 0 or _int32_overflow(x, out_shape) or not _epilogue_ok(epi, anchor, typed, out_shape):
            return None
        out_dt = out_q[2] if out_q else (expr_dtype(epi, [anchor] + [t for t, _ in types]) if epi else anchor)
        if out_dt not in OUT_Q + FLOAT_OUT:
            return None
        sig = ConvSignature(anchor, out_dt, None if bias is None else dtype_name(bias),
                            tuple(dtype_name(e) for e in extras), json.dumps(epi, sort_keys=True) if epi else "",
                            tuple(w.shape[2:]), tuple(st), (pads[0], pads[1]), tuple(dil), qtype=dtype_name(x),
                            per_channel=ws.numel() > 1, extra_q=tuple(q for _, q in types), out_q=bool(out_q))
        src, consts = conv_source(sig, "tf_qconv")
        kernel = compile_source(src, "tf_qconv")
        eq = a.get("extra_q") or []
        scalars = [float(a.get("x_scale", 1.0))]
        scalars += [float(v) for j, (_, q) in enumerate(types) if q for v in (eq[j][0], eq[j][1] or 0)]
        scalars += [float(out_q[0]), float(out_q[1] or 0)] if out_q else []
        return self._launcher(kernel, sig, x, w, out_shape, [v for _, v in consts], extra_from=4, scales=3,
                              scalars=scalars)


def make_qconv(layer, attrs, opset, device, params):
    """The qconv runner of a layer (falls back to the reference for inputs it does not cover)."""
    return QConvRunner(attrs, params, reference(layer, attrs, opset))


def _fp8_ok(device) -> bool:
    return not torch.cuda.is_available() or torch.cuda.get_device_capability(device) >= (8, 9)


@tactic_family("triton", {"qconv": make_qconv}, library="TRITON", writes_in_place=True)
def qconv_candidates(layer, shapes, device) -> list[dict]:
    """qconv tactics of a symmetric e4m3 / int8 QConv on CUDA (level-3 configs first)."""
    if not is_cuda(device) or not legal(layer, shapes):
        return []
    x, w = shapes.inp(0), shapes.inp(1)
    if x["dtype"] == "float8e4m3fn" and not _fp8_ok(device):
        return []
    _, _, _, (oh, ow) = geometry(layer.attrs, x["shape"], w["shape"])
    m = x["shape"][0] * oh * ow
    return [tactic(cfg, level) for cfg, level in qconv_configs(w["shape"][1], w["shape"][0], m)]

