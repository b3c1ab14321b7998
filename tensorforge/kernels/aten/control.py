"""Tactic "if_graphs" for an If decided at run time (CUDA): the condition is read on the host (one small
sync, as the reference does), and the taken branch, run by the reference interpreter, is captured once
into a CUDA graph of its own per (branch, input shapes, dtypes) and replayed afterwards: one graph launch
instead of the branch's every torch kernel and its interpreter's Python.

The branch reads static copies of the If's inputs (copied in before each replay) and its outputs are
the graph's own tensors, cloned out (a later call overwrites them). A branch whose run cannot be
captured (a host read of device data inside it: a nested If, a Loop's trip count, NonZero; anything that
syncs) fails its capture, which torch reports, and runs eagerly from then on for that key. The first
run of a key is eager too (lazy initialization and constant placement happen outside any capture)."""
from __future__ import annotations

import torch

from ...ops.interpreter import run_graph
from ..registry import tactic_family
from . import tactic

MAX_KEYS = 4  # captured (branch, signature) entries kept per layer: each holds its graph's memory


def graph_capture(fn, static_in: list):
    """(replay(), outputs) of fn(static_in) captured in a CUDA graph on a fresh side stream and pool;
    raises when the capture fails (the caller runs fn eagerly instead)."""
    g = torch.cuda.CUDAGraph()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.graph(g, stream=side, pool=torch.cuda.graph_pool_handle()):
        outs = fn(static_in)
    torch.cuda.current_stream().wait_stream(side)
    return g.replay, outs


class BranchGraphs:
    """fn(inputs) -> outputs of an If layer: the branch chosen on the host, replayed from its graph."""

    capturable = False  # reads the condition on the host: never inside a whole-plan capture

    def __init__(self, attrs: dict, opset: int, device, capture=graph_capture):
        self.branches = (attrs["else_branch"], attrs["then_branch"])
        self.opset, self.device, self.capture = opset, device, capture
        self.seen: dict = {}  # key -> runs so far (a key is captured at its second run)
        self.graphs: dict = {}  # key -> (replay, static inputs, static outputs), or None: eager for good

    def _eager(self, branch, captures):
        return list(run_graph(branch, [], captures, self.opset, self.device))

    def __call__(self, inputs):
        cond, captures = inputs[0], list(inputs[1:])
        taken = bool(cond.reshape(-1)[0])
        branch = self.branches[taken]
        if not all(isinstance(t, torch.Tensor) for t in captures):
            return self._eager(branch, captures)
        key = (taken, tuple((tuple(t.shape), t.dtype, t.device) for t in captures))
        entry = self.graphs.get(key, False)
        if entry is False:  # not captured yet
            n = self.seen[key] = self.seen.get(key, 0) + 1
            if n < 2 or len(self.graphs) >= MAX_KEYS:
                return self._eager(branch, captures)
            entry = self.graphs[key] = self._capture(branch, captures)
        if entry is None:
            return self._eager(branch, captures)
        replay, static_in, static_out = entry
        for s, t in zip(static_in, captures):
            s.copy_(t)
        replay()
        return [o.clone() if isinstance(o, torch.Tensor) else o for o in static_out]

    def _capture(self, branch, captures):
        """(replay, static inputs, static outputs), or None when the branch cannot be captured."""
        static_in = [t.clone() for t in captures]
        try:
            replay, outs = self.capture(lambda ins: self._eager(branch, ins), static_in)
        except Exception:  # noqa: BLE001 - any capture failure: this key runs eagerly from now on
            return None
        if not all(isinstance(o, torch.Tensor) for o in outs):
            return None
        return replay, static_in, outs


def if_graphs_kernel(layer, attrs, opset, device, params):
    return BranchGraphs(attrs, opset, device)


@tactic_family("aten", {"if_graphs": if_graphs_kernel}, library="ATEN", needs_shapes=False)
def control_candidates(layer, shapes, device):
    """An If on CUDA: its branches as CUDA graphs (timed against the reference interpreter)."""
    if layer.type != "If" or layer.domain not in ("", "ai.onnx") or getattr(device, "type", str(device)) != "cuda":
        return []
    return [tactic("if_graphs")]
