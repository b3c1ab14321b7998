"""com.microsoft activations: Gelu, FastGelu, BiasGelu, QuickGelu, BiasAdd."""
from __future__ import annotations

import math

import torch

from ..common import in_info, infer_broadcast, infer_same
from ..registry import infer, reference
from . import MS


@reference("Gelu", domain=MS)
def gelu_ref(x):
    return 0.5 * x * (1.0 + torch.erf(x * (1.0 / math.sqrt(2.0))))


@reference("BiasGelu", domain=MS)
def bias_gelu_ref(a, b):
    return gelu_ref(a + b)


@reference("FastGelu", domain=MS)
def fast_gelu_ref(x, bias=None):
    """The tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), x += bias."""
    if bias is not None:
        x = x + bias
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


@reference("QuickGelu", domain=MS)
def quick_gelu_ref(x, alpha=1.702):
    return x * torch.sigmoid(alpha * x)


@reference("BiasAdd", domain=MS)
def bias_add_ref(x, bias, skip):
    """x + bias + skip (x, skip: (N, S, C); bias: (C,))."""
    return x + bias + skip


infer("Gelu", "QuickGelu", "BiasAdd", domain=MS)(infer_same)


@infer("BiasGelu", "FastGelu", domain=MS)
def bias_gelu_infer(node):
    if len(node.inputs) < 2 or node.inputs[1] is None:
        return [in_info(node, 0)]
    return infer_broadcast(node)
