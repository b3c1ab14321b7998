"""Recurrent layers: RNN, GRU, LSTM."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .registry import infer, reference

# name -> (fn(x, alpha, beta), default alpha, default beta); alpha/beta consumed only if listed
_ACT = {
    "relu": (lambda x, a, b: torch.relu(x), None, None),
    "tanh": (lambda x, a, b: torch.tanh(x), None, None),
    "sigmoid": (lambda x, a, b: torch.sigmoid(x), None, None),
    "affine": (lambda x, a, b: a * x + b, 1.0, 0.0),
    "leakyrelu": (lambda x, a, b: F.leaky_relu(x, a), 0.01, None),
    "thresholdedrelu": (lambda x, a, b: torch.where(x > a, x, torch.zeros_like(x)), 1.0, None),
    "scaledtanh": (lambda x, a, b: a * torch.tanh(b * x), 1.0, 1.0),
    "hardsigmoid": (lambda x, a, b: torch.clamp(a * x + b, 0, 1), 0.2, 0.5),
    "elu": (lambda x, a, b: F.elu(x, a), 1.0, None),
    "softsign": (lambda x, a, b: F.softsign(x), None, None),
    "softplus": (lambda x, a, b: F.softplus(x), None, None),
}
_DEFAULTS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}


def _activations(op, names, alphas, betas, dirs):
    """Per direction, the list of activation callables (alpha/beta taken in order)."""
    names = list(names) if names else _DEFAULTS[op] * dirs
    alphas, betas = list(alphas or []), list(betas or [])
    out = []
    for n in names:
        fn, da, db = _ACT[n.lower()]
        a = alphas.pop(0) if da is not None and alphas else da
        b = betas.pop(0) if db is not None and betas else db
        out.append(lambda x, fn=fn, a=a, b=b: fn(x, a, b))
    k = len(out) // dirs
    return [out[d * k:(d + 1) * k] for d in range(dirs)]


def _reverse(x, lens):
    """Reverse each batch column of a (T, B, ...) tensor within its own length."""
    t = x.shape[0]
    idx = torch.arange(t, device=x.device).reshape(t, 1)
    rev = torch.where(idx < lens.reshape(1, -1), lens.reshape(1, -1) - 1 - idx, idx)
    return x.gather(0, rev.reshape(rev.shape + (1,) * (x.dim() - 2)).expand(x.shape))


def _step_fn(op, w, r, b, p, acts, hidden, clip, lbr, input_forget):
    """The cell of one direction: (x_t, h, c) -> (h, c)."""
    def cl(v):
        return v.clamp(-clip, clip) if clip is not None else v

    def step(xt, h, c):
        gx = xt @ w.t() + (b[: w.shape[0]] if b is not None else 0)
        rb = b[w.shape[0]:] if b is not None else None
        if op == "RNN":
            return acts[0](cl(gx + h @ r.t() + (rb if rb is not None else 0))), c
        if op == "GRU":
            xz, xr, xh = gx.split(hidden, -1)
            rz, rr, rh = r.split(hidden, 0)
            bz, br, bh = rb.split(hidden, -1) if rb is not None else (0, 0, 0)
            z = acts[0](cl(xz + h @ rz.t() + bz))
            rt = acts[0](cl(xr + h @ rr.t() + br))
            hh = xh + (rt * (h @ rh.t() + bh) if lbr else (rt * h) @ rh.t() + bh)
            return (1 - z) * acts[1](cl(hh)) + z * h, c
        g = gx + h @ r.t() + (rb if rb is not None else 0)
        gi, go, gf, gc = g.split(hidden, -1)
        pi, po, pf = p.split(hidden) if p is not None else (0, 0, 0)
        i = acts[0](cl(gi + pi * c))
        f = 1 - i if input_forget else acts[0](cl(gf + pf * c))
        c2 = f * c + i * acts[1](cl(gc))
        o = acts[0](cl(go + po * c2))
        return o * acts[2](c2), c2
    return step


def _run(op, x, w, r, b, seq_lens, h0, c0, p, attrs):
    layout = attrs.get("layout", 0)
    if layout:
        x = x.transpose(0, 1)
    t_len, batch = x.shape[0], x.shape[1]
    hidden = attrs["hidden_size"]
    direction = attrs.get("direction", "forward")
    dirs = 2 if direction == "bidirectional" else 1
    acts = _activations(op, attrs.get("activations"), attrs.get("activation_alpha"),
                        attrs.get("activation_beta"), dirs)
    lens = seq_lens.to(torch.int64).to(x.device) if seq_lens is not None else \
        torch.full((batch,), t_len, dtype=torch.int64, device=x.device)
    ys, hs, cs = [], [], []
    for d in range(dirs):
        reverse = direction == "reverse" or d == 1
        step = _step_fn(op, w[d], r[d], b[d] if b is not None else None, p[d] if p is not None else None,
                        acts[d], hidden, attrs.get("clip"), attrs.get("linear_before_reset", 0),
                        attrs.get("input_forget", 0))
        h = h0[d] if h0 is not None else x.new_zeros((batch, hidden))
        c = c0[d] if c0 is not None else x.new_zeros((batch, hidden))
        xs = _reverse(x, lens) if reverse else x
        out = []
        for t in range(t_len):
            live = (t < lens).reshape(-1, 1)
            h2, c2 = step(xs[t], h, c)
            h, c = torch.where(live, h2, h), torch.where(live, c2, c)
            out.append(torch.where(live, h2, torch.zeros_like(h2)))
        y = torch.stack(out) if out else x.new_zeros((0, batch, hidden))
        ys.append(_reverse(y, lens) if reverse else y)
        hs.append(h)
        cs.append(c)
    y = torch.stack(ys, 1)  # (T, dirs, B, H)
    yh, yc = torch.stack(hs), torch.stack(cs)
    if layout:
        y, yh, yc = y.permute(2, 0, 1, 3), yh.transpose(0, 1), yc.transpose(0, 1)
    return y, yh, yc


@reference("RNN")
def rnn_ref(x, w, r, b=None, sequence_lens=None, initial_h=None, **attrs):
    y, yh, _ = _run("RNN", x, w, r, b, sequence_lens, _state(initial_h, attrs), None, None, attrs)
    return y, yh


@reference("GRU")
def gru_ref(x, w, r, b=None, sequence_lens=None, initial_h=None, **attrs):
    y, yh, _ = _run("GRU", x, w, r, b, sequence_lens, _state(initial_h, attrs), None, None, attrs)
    return y, yh


@reference("LSTM")
def lstm_ref(x, w, r, b=None, sequence_lens=None, initial_h=None, initial_c=None, p=None, **attrs):
    return _run("LSTM", x, w, r, b, sequence_lens, _state(initial_h, attrs), _state(initial_c, attrs),
                p, attrs)


def _state(s, attrs):
    """Initial states arrive as (dirs, B, H), or (B, dirs, H) with layout=1."""
    return s.transpose(0, 1) if s is not None and attrs.get("layout", 0) else s


@infer("RNN", "GRU", "LSTM")
def rnn_infer(node):
    x = node.inputs[0]
    a = node.attrs
    layout, hidden = a.get("layout", 0), a["hidden_size"]
    dirs = 2 if a.get("direction", "forward") == "bidirectional" else 1
    seq, batch = (x.shape[1], x.shape[0]) if layout else (x.shape[0], x.shape[1])
    y = (batch, seq, dirs, hidden) if layout else (seq, dirs, batch, hidden)
    st = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
    outs = [(x.dtype, y), (x.dtype, st), (x.dtype, st)]
    return outs[:max(len(node.outputs), 1)] if node.op == "LSTM" else outs[:2]
