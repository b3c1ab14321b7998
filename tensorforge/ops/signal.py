"""Signal processing: DFT, STFT, MelWeightMatrix, window functions."""
from __future__ import annotations

import math

import torch

from .. import dtypes
from ..errors import ShapeError
from .common import has_input, known_ints, scalar_item
from .registry import infer, reference


def _as_complex(x):
    """(..., 1) real or (..., 2) real/imag -> complex tensor without the last dim (in double: the
    transforms' rounding noise stays far below float32's)."""
    xf = x.to(torch.float64)
    return xf[..., 0] if x.shape[-1] == 1 else torch.complex(xf[..., 0], xf[..., 1])


def _dft_axis(rank, axis_t, axis, opset):
    a = scalar_item(axis_t) if axis_t is not None else (axis if axis is not None else (-2 if opset >= 20 else 1))
    return int(a) % rank


@reference("DFT", host_inputs=(1, 2))
def dft_ref(x, dft_length=None, axis_t=None, axis=None, inverse=0, onesided=0, _opset=20):
    ax = _dft_axis(x.dim(), axis_t, axis, _opset)
    n = scalar_item(dft_length)
    sig = _as_complex(x)
    if inverse:
        n = n or (2 * (x.shape[ax] - 1) if onesided else x.shape[ax])
        if onesided:
            return torch.fft.irfft(sig, n=int(n), dim=ax).unsqueeze(-1).to(x.dtype)
        y = torch.fft.ifft(sig, n=int(n), dim=ax)
    else:
        y = torch.fft.fft(sig, n=int(n or x.shape[ax]), dim=ax)
        if onesided:
            y = y.narrow(ax, 0, y.shape[ax] // 2 + 1)
    return torch.stack([y.real, y.imag], -1).to(x.dtype)


@infer("DFT")
def dft_infer(node):
    x = node.inputs[0]
    a = node.attrs
    rank = len(x.shape)
    if has_input(node, 2):
        ax_v = known_ints(node.inputs[2])
        if ax_v is None:
            raise ShapeError(f"DFT '{node.name}': axis is data-dependent (not supported)")
        ax = ax_v[0] % rank
    elif "axis" in a:
        ax = a["axis"] % rank
    else:  # default axis is 1 before opset 20 and -2 from 20 on: the same axis for rank-3 inputs
        if 1 % rank != (-2) % rank:
            raise ShapeError(f"DFT '{node.name}': give the axis explicitly (its default differs "
                             "between opsets 17 and 20)")
        ax = 1
    n = known_ints(node.inputs[1])[0] if has_input(node, 1) else None
    shp = list(x.shape)
    if a.get("inverse", 0):
        shp[ax] = n or ((x.shape[ax] - 1) * 2 if a.get("onesided", 0) else x.shape[ax])
        shp[-1] = 1 if a.get("onesided", 0) else 2
    else:
        full = n or x.shape[ax]
        shp[ax] = full // 2 + 1 if a.get("onesided", 0) else full
        shp[-1] = 2
    return [(x.dtype, tuple(shp))]


@reference("STFT", host_inputs=(1, 3))
def stft_ref(signal, frame_step, window=None, frame_length=None, onesided=1):
    step = int(scalar_item(frame_step))
    n = int(scalar_item(frame_length)) if frame_length is not None else window.shape[0]
    sig = _as_complex(signal)  # (B, L)
    frames = sig.unfold(-1, n, step)  # (B, frames, n)
    if window is not None:
        frames = frames * window.to(frames.real.dtype if frames.is_complex() else frames.dtype)
    y = torch.fft.fft(frames, n=n, dim=-1)
    if onesided:
        y = y[..., : n // 2 + 1]
    return torch.stack([y.real, y.imag], -1).to(signal.dtype)


@infer("STFT")
def stft_infer(node):
    x = node.inputs[0]
    step = known_ints(node.inputs[1])
    n = known_ints(node.inputs[3])[0] if has_input(node, 3) else (
        node.inputs[2].shape[0] if has_input(node, 2) else None)
    if step is None or n is None:
        raise ShapeError(f"STFT '{node.name}': frame step/length are data-dependent (not supported)")
    frames = (x.shape[1] - n) // step[0] + 1
    bins = n // 2 + 1 if node.attrs.get("onesided", 1) else n
    return [(x.dtype, (x.shape[0], frames, bins, 2))]


@reference("MelWeightMatrix", host_inputs=(0, 1, 2, 3, 4))
def mel_ref(num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz, output_datatype=1):
    """Triangular mel filters over the one-sided spectrum (the ONNX reference's integer bin edges)."""
    mels, n, sr = int(scalar_item(num_mel_bins)), int(scalar_item(dft_length)), int(scalar_item(sample_rate))
    lo, hi = float(scalar_item(lower_edge_hertz)), float(scalar_item(upper_edge_hertz))
    to_mel = lambda f: 2595 * math.log1p(f / 700) / math.log(10)  # noqa: E731
    lm, hm = to_mel(lo), to_mel(hi)
    step = (hm - lm) / (mels + 2)
    edges = [int(((n + 1) * (700 * math.expm1((i * step + lm) / 2595 * math.log(10)))) // sr)
             for i in range(mels + 2)]
    out = torch.zeros((n // 2 + 1, mels), dtype=torch.float64)
    for i in range(mels):
        left, center, right = edges[i], edges[i + 1], edges[i + 2]
        if center == left:
            out[center, i] = 1
        else:
            for j in range(left, center + 1):
                out[j, i] = (j - left) / (center - left)
        for j in range(center, right):
            out[j, i] = (right - j) / (right - center)
    return out.to(dtypes.to_torch(dtypes.from_onnx(output_datatype)))


@infer("MelWeightMatrix")
def mel_infer(node):
    mels, n = known_ints(node.inputs[0]), known_ints(node.inputs[1])
    if mels is None or n is None:
        raise ShapeError(f"MelWeightMatrix '{node.name}': sizes are data-dependent (not supported)")
    return [(dtypes.from_onnx(node.attrs.get("output_datatype", 1)), (n[0] // 2 + 1, mels[0]))]


def _window(kind):
    def ref(size, output_datatype=1, periodic=1, _device=None):
        n = int(size.reshape(-1)[0])
        i = torch.arange(n, dtype=torch.float64, device=_device)
        d = n if periodic else n - 1
        if kind == "hann":
            w = torch.sin(i * math.pi / d) ** 2
        elif kind == "hamming":
            a = 25.0 / 46.0
            w = a - torch.cos(i * math.pi * 2 / d) * (1 - a)
        else:
            w = 0.42 - 0.5 * torch.cos(i * math.pi * 2 / d) + 0.08 * torch.cos(i * math.pi * 4 / d)
        return w.to(dtypes.to_torch(dtypes.from_onnx(output_datatype)))
    return ref


for _op, _kind in (("HannWindow", "hann"), ("HammingWindow", "hamming"), ("BlackmanWindow", "blackman")):
    reference(_op, host_inputs=(0,))(_window(_kind))


@infer("HannWindow", "HammingWindow", "BlackmanWindow")
def window_infer(node):
    n = known_ints(node.inputs[0])
    if n is None:
        raise ShapeError(f"{node.op} '{node.name}': size is data-dependent (not supported)")
    return [(dtypes.from_onnx(node.attrs.get("output_datatype", 1)), (n[0],))]
