"""Training ops: NLL / softmax cross-entropy losses and the ai.onnx.preview.training optimizers."""
from __future__ import annotations

import torch

from ..errors import ShapeError
from .common import in_info
from .registry import infer, reference


def _nll(logp, target, weight=None, ignore_index=None, reduction="mean"):
    """NegativeLogLikelihoodLoss on log-probabilities (N, C, d...) and targets (N, d...)."""
    t = target.to(torch.int64)
    valid = t != ignore_index if ignore_index is not None else torch.ones_like(t, dtype=torch.bool)
    ts = torch.where(valid, t, torch.zeros_like(t))
    loss = -logp.gather(1, ts.unsqueeze(1)).squeeze(1)
    if weight is not None:
        w = weight[ts.clamp(0, weight.shape[0] - 1)]
    else:
        w = torch.ones_like(loss)
    w = torch.where(valid, w, torch.zeros_like(w))
    loss = loss * w
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if weight is not None or ignore_index is not None:
        return loss.sum() / w.sum()
    return loss.mean()


@reference("NegativeLogLikelihoodLoss")
def nll_ref(x, target, weight=None, ignore_index=None, reduction="mean"):
    return _nll(x, target, weight, ignore_index, reduction).to(x.dtype)


@reference("SoftmaxCrossEntropyLoss")
def sce_ref(x, target, weight=None, ignore_index=None, reduction="mean"):
    logp = torch.log_softmax(x.double() if x.dtype == torch.float64 else x.float(), 1)
    loss = _nll(logp, target, weight.to(logp.dtype) if weight is not None else None, ignore_index,
                reduction)
    return loss.to(x.dtype), logp.to(x.dtype)


@infer("NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss")
def loss_infer(node):
    (dt, xs), (_, ts) = in_info(node, 0), in_info(node, 1)
    if len(xs) < 2:
        raise ShapeError(f"{node.op} '{node.name}': input must have rank >= 2")
    out = tuple(ts) if node.attrs.get("reduction", "mean") == "none" else ()
    return [(dt, out), (dt, tuple(xs))][:max(1, len(node.outputs))]


TRAINING = "ai.onnx.preview.training"


def _groups(data, k):
    """(R, T, X1..Xn, G1..Gn, ...) -> R, T and per-tensor tuples of the k trailing groups."""
    r, t, rest = data[0], data[1], data[2:]
    n = len(rest) // k
    return r, t, [tuple(rest[j * n + i] for j in range(k)) for i in range(n)]


@reference("Adagrad", domain=TRAINING)
def adagrad_ref(*data, decay_factor=0.0, epsilon=0.0, norm_coefficient=0.0):
    r, t, items = _groups(data, 3)
    rate = r / (1 + t * decay_factor)
    xs, hs = [], []
    for x, g, h in items:
        gr = norm_coefficient * x + g
        h2 = h + gr * gr
        xs.append((x - rate * gr / (torch.sqrt(h2) + epsilon)).to(x.dtype))
        hs.append(h2.to(h.dtype))
    return tuple(xs + hs)


@reference("Adam", domain=TRAINING)
def adam_ref(*data, alpha=0.9, beta=0.999, epsilon=0.0, norm_coefficient=0.0, norm_coefficient_post=0.0):
    r, t, items = _groups(data, 4)
    tf = t.to(torch.float64)
    rate = torch.where(t > 0, r * torch.sqrt(1 - beta ** tf) / (1 - alpha ** tf), r.to(torch.float64))
    xs, vs, hs = [], [], []
    for x, g, v, h in items:
        gr = norm_coefficient * x + g
        v2 = alpha * v + (1 - alpha) * gr
        h2 = beta * h + (1 - beta) * gr * gr
        x2 = x - rate.to(x.dtype) * (v2 / (torch.sqrt(h2) + epsilon))
        xs.append(((1 - norm_coefficient_post) * x2).to(x.dtype))
        vs.append(v2.to(v.dtype))
        hs.append(h2.to(h.dtype))
    return tuple(xs + vs + hs)


@reference("Momentum", domain=TRAINING)
def momentum_ref(*data, alpha=0.9, beta=1.0, mode="standard", norm_coefficient=0.0):
    r, t, items = _groups(data, 3)
    xs, vs = [], []
    for x, g, v in items:
        gr = norm_coefficient * x + g
        b = torch.where(t > 0, torch.tensor(beta, dtype=x.dtype), torch.tensor(1.0, dtype=x.dtype))
        v2 = alpha * v + b * gr
        x2 = x - r * (gr + alpha * v2 if mode == "nesterov" else v2)
        xs.append(x2.to(x.dtype))
        vs.append(v2.to(v.dtype))
    return tuple(xs + vs)


@infer("Adagrad", "Adam", "Momentum", domain=TRAINING)
def optimizer_infer(node):
    k = {"Adagrad": 3, "Adam": 4, "Momentum": 3}[node.op]
    n = (len(node.inputs) - 2) // k
    xs = [in_info(node, 2 + i) for i in range(n)]
    states = [in_info(node, 2 + (j + 2) * n + i) for j in range(k - 2) for i in range(n)]
    return xs + states
