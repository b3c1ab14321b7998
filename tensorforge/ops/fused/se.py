"""fused.SqueezeExcite: a whole squeeze-excitation block as one layer.

    y = x · gate(Conv1x1(act1(Conv1x1(GlobalAveragePool(x), w1, b1)), w2, b2))

Inputs: x [N, C, *spatial], w1 [Cr, C(, 1, 1)], b1 [Cr] or None, w2 [C, Cr(, 1, 1)], b2 [C] or None.
Attrs: act1 ("Relu", "HardSwish", "SiLU" = y·Sigmoid(y), or "" for none), gate ("HardSigmoid" with
alpha / beta, or "Sigmoid"). The reference runs exactly the ONNX ops' math (the same torch calls as
the unfused chain's references), so on the CPU a fused model computes the same bits as before."""
from __future__ import annotations

import torch

from ..activation import hard_sigmoid, hard_swish
from ..conv import conv_ref
from ..pool import gap_ref
from ..registry import infer, reference

ACTS = {"": lambda h: h, "Relu": torch.relu, "HardSwish": hard_swish, "SiLU": lambda h: h * torch.sigmoid(h)}
GATES = ("HardSigmoid", "Sigmoid")


def _as_conv_weight(w, rank):
    """A [O, I] weight as the [O, I, 1, ...] of a 1x1 convolution (a 4-D one unchanged)."""
    return w.reshape(*w.shape[:2], *([1] * (rank - 2))) if w.dim() == 2 else w


@reference("fused.SqueezeExcite")
def squeeze_excite_ref(x, w1, b1=None, w2=None, b2=None, act1="Relu", gate="HardSigmoid", alpha=0.2,
                       beta=0.5):
    p = gap_ref(x)
    h = ACTS[act1](conv_ref(p, _as_conv_weight(w1, x.dim()), b1))
    s = conv_ref(h, _as_conv_weight(w2, x.dim()), b2)
    s = hard_sigmoid(s, alpha, beta) if gate == "HardSigmoid" else torch.sigmoid(s)
    return x * s


@infer("fused.SqueezeExcite")
def squeeze_excite_infer(node):
    x = node.inputs[0]
    return [(x.dtype, x.shape)]
