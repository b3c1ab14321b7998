"""Activations: Relu family, sigmoid-like, GELU, PRelu, Swish/SwiGLU, Shrink."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .common import infer_broadcast, infer_same, unary_ref
from .registry import infer, reference

_ACTIVATIONS = {
    "Relu": torch.relu, "Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "Softplus": F.softplus,
    "Mish": lambda x: x * torch.tanh(F.softplus(x)), "Softsign": F.softsign,
}
for _op, _fn in _ACTIVATIONS.items():
    reference(_op)(unary_ref(_fn))
infer(*_ACTIVATIONS)(infer_same)


@reference("LeakyRelu")
def leaky_relu(x, alpha=0.01):
    return F.leaky_relu(x, alpha)


@reference("Elu")
def elu(x, alpha=1.0):
    return F.elu(x, alpha)


@reference("Selu")
def selu(x, alpha=1.67326319217681884765625, gamma=1.05070102214813232421875):
    return gamma * torch.where(x > 0, x, alpha * (torch.exp(x) - 1))


@reference("Celu")
def celu(x, alpha=1.0):
    return F.celu(x, alpha)


@reference("ThresholdedRelu")
def thresholded_relu(x, alpha=1.0):
    return torch.where(x > alpha, x, torch.zeros_like(x))


@reference("HardSigmoid")
def hard_sigmoid(x, alpha=0.2, beta=0.5):
    return torch.clamp(alpha * x + beta, 0, 1)


@reference("HardSwish")
def hard_swish(x):
    return x * torch.clamp(x / 6 + 0.5, 0, 1)


@reference("Gelu")
def gelu(x, approximate="none"):
    return F.gelu(x, approximate=approximate)


@reference("PRelu")
def prelu(x, slope):
    return torch.where(x >= 0, x, x * slope)


@reference("Swish")
def swish_ref(x, alpha=1.0):
    return x * torch.sigmoid(alpha * x)


@reference("SwiGLU")
def swiglu_ref(a, b, alpha=1.0):
    return a * torch.sigmoid(alpha * a) * b


@reference("Shrink")
def shrink_ref(x, bias=0.0, lambd=0.5):
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    y = torch.where(x < -lambd, x + bias, zero)
    return torch.where(x > lambd, x - bias, y).to(x.dtype)


infer("LeakyRelu", "Elu", "Selu", "Celu", "ThresholdedRelu", "HardSigmoid", "HardSwish", "Gelu", "Swish",
      "Shrink")(infer_same)
infer("PRelu", "SwiGLU")(infer_broadcast)
