"""ONNX Runtime's CPU sigmoid and tanh (MLAS rational approximations, fused multiply-adds) in torch.

Dynamically quantized models re-quantize an LSTM's output: a one-ulp difference there flips a
quantization step downstream, so the contrib LSTM reference uses ORT's exact activations."""
from __future__ import annotations

import torch

_LOGISTIC_P = (4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05, 8.51377133304701e-03,
               2.48287947061529e-01)
_LOGISTIC_Q = (6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06, 1.70198817374094e-03,
               1.16817656904453e-01, 9.93151921023180e-01)
_TANH_P = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
           1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)
_TANH_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)


def _f32(t):
    """Round a float64 tensor to float32 and back (one float32 operation's rounding)."""
    return t.to(torch.float32).to(torch.float64)


def _poly(x2, coefs):
    """Horner evaluation with float32 fused multiply-adds (exact product, one rounding)."""
    c = [float(torch.tensor(v, dtype=torch.float32)) for v in coefs]
    p = _f32(x2 * c[0] + c[1])
    for v in c[2:]:
        p = _f32(p * x2 + v)
    return p


def _ratio(x, lim, pc, qc):
    x = x.to(torch.float32).clamp(-lim, lim).to(torch.float64)
    x2 = _f32(x * x)
    return _f32(_poly(x2, pc) * x) / _poly(x2, qc)


def mlas_sigmoid(x):
    """MlasComputeLogistic: p(x) / q(x) + 0.5 on [-18, 18]."""
    return (_ratio(x, 18.0, _LOGISTIC_P, _LOGISTIC_Q).to(torch.float32) + 0.5).to(x.dtype)


def mlas_tanh(x):
    """MlasComputeTanh: p(x) / q(x) on [-9, 9]."""
    return _ratio(x, 9.0, _TANH_P, _TANH_Q).to(torch.float32).to(x.dtype)
