"""Scan (opset 8 with a batch axis; opset 9+ with per-input axes and directions). The body runs once
per slice along the scan axis; its state outputs feed the next step, its scan outputs are stacked."""
from __future__ import annotations

import torch

from ..errors import ShapeError
from ..ir.subgraph import n_formal
from .control_flow import merge_shape, split_captures
from .interpreter import run_graph
from .registry import extra, infer, reference


def _scan(body, states, xs, captures, in_axes, in_dirs, out_axes, out_dirs, opset, device):
    """One scan over xs (tensors sliced along in_axes); returns final states + stacked outputs."""
    n = len(states)
    steps = xs[0].shape[in_axes[0]] if xs else 0
    outs = [[] for _ in body.outputs[n:]]
    for t in range(steps):
        sl = [x.select(a, steps - 1 - t if d else t) for x, a, d in zip(xs, in_axes, in_dirs)]
        res = run_graph(body, list(states) + sl, captures, opset, device)
        states = res[:n]
        for o, r in zip(outs, res[n:]):
            o.append(r)
    stacked = []
    for k, o in enumerate(outs):
        if out_dirs[k]:
            o = o[::-1]
        if not o:
            raise ShapeError("Scan over zero steps (empty scan outputs) is not supported")
        stacked.append(torch.stack(o, dim=out_axes[k] % (o[0].dim() + 1)))
    return list(states) + stacked


def _attrs(m, k, scan_input_axes, scan_input_directions, scan_output_axes, scan_output_directions):
    return ([0] * m if scan_input_axes is None else list(scan_input_axes),
            [0] * m if scan_input_directions is None else list(scan_input_directions),
            [0] * k if scan_output_axes is None else list(scan_output_axes),
            [0] * k if scan_output_directions is None else list(scan_output_directions))


@reference("Scan", since=9)
def scan_ref(*ins, body, num_scan_inputs, scan_input_axes=None, scan_input_directions=None,
             scan_output_axes=None, scan_output_directions=None, _opset=None, _device=None):
    formal, captures = split_captures(body, ins)
    n = len(formal) - num_scan_inputs
    xs = formal[n:]
    ia, idr, oa, odr = _attrs(num_scan_inputs, len(body.outputs) - n, scan_input_axes, scan_input_directions,
                              scan_output_axes, scan_output_directions)
    ia = [a % x.dim() for a, x in zip(ia, xs)]
    return tuple(_scan(body, formal[:n], xs, captures, ia, idr, oa, odr, _opset, _device))


@reference("Scan")
def scan8_ref(lens, *ins, body, num_scan_inputs, directions=None, _opset=None, _device=None):
    """Opset 8: every input has a leading batch axis; each batch item is scanned along axis 1."""
    formal, captures = split_captures(body, ins)
    n = len(formal) - num_scan_inputs
    k = len(body.outputs) - n
    dirs = [0] * num_scan_inputs if directions is None else list(directions)
    batch = formal[0].shape[0]
    if lens is not None and any(int(x) != formal[n].shape[1] for x in lens.reshape(-1).tolist()):
        raise ShapeError("Scan (opset 8) with sequence_lens shorter than the scan axis is not supported")
    per = [_scan(body, [s[b] for s in formal[:n]], [x[b] for x in formal[n:]], captures, [0] * num_scan_inputs,
                 dirs, [0] * k, [0] * k, _opset, _device) for b in range(batch)]
    return tuple(torch.stack([p[j] for p in per]) for j in range(n + k))


def _opset8(node) -> bool:
    return node.attrs["body"].opset < 9


@extra("Scan", "infer_subgraphs")
def _scan_bodies(node, infer_body):
    body = node.attrs["body"]
    formal = node.inputs[:n_formal(node)]
    if _opset8(node):
        formal = formal[1:]
    m = node.attrs["num_scan_inputs"]
    n = len(formal) - m
    axes = list(node.attrs.get("scan_input_axes") or [0] * m)
    for b, v in zip(body.inputs, formal):
        b.dtype, b.const, b.sym = v.dtype, None, None
        b.shape = tuple(v.shape[1:]) if _opset8(node) else tuple(v.shape)
    for j, (b, v) in enumerate(zip(body.inputs[n:], formal[n:])):
        shp = list(v.shape)
        if _opset8(node):
            del shp[:2]
        else:
            del shp[axes[j] % len(shp)]
        b.shape = tuple(shp)
    infer_body(body)


@infer("Scan")
def scan_infer(node):
    body = node.attrs["body"]
    formal = node.inputs[:n_formal(node)]
    old = _opset8(node)
    if old:
        formal = formal[1:]
    m = node.attrs["num_scan_inputs"]
    n = len(formal) - m
    x0 = formal[n]
    if old:
        batch, steps = x0.shape[0], x0.shape[1]
    else:
        steps = x0.shape[list(node.attrs.get("scan_input_axes") or [0] * m)[0] % len(x0.shape)]
    out = [(o.dtype, merge_shape(node, f"c{k}", b.shape, o.shape))
           for k, (b, o) in enumerate(zip(body.inputs[:n], body.outputs[:n]))]
    oaxes = list(node.attrs.get("scan_output_axes") or [0] * (len(body.outputs) - n))
    for k, o in enumerate(body.outputs[n:]):
        shp = list(o.shape)
        if old:
            shp.insert(0, steps)
        else:
            shp.insert(oaxes[k] % (len(shp) + 1), steps)
        out.append((o.dtype, tuple(shp)))
    if old:
        out = [(dt, (batch,) + tuple(s)) for dt, s in out]
    return out



@extra("Scan", "eager_reason")
def _scan_eager(node) -> str:
    return "body run per step by the reference interpreter"
