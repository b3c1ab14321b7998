"""Autotuning primitives: layer signatures, test inputs at the opt shapes, the check against the
reference, the timers (CUDA events / perf_counter) and the pure selection rule."""
from __future__ import annotations

import json
import math
import time

import numpy as np
import torch

from .. import dtypes, kernels
from ..kernels import LayerShapes
from ..runtime.shapes import eval_shape, eval_value

L2_BYTES = 50 << 20  # H100/H200 L2: two input sets are rotated when one fits in it
# max |got - ref| / max |ref| allowed when a tactic is checked against the reference
TOLERANCE = {"float32": 1e-4, "tf32": 5e-3, "float16": 1e-2, "bfloat16": 5e-2}


def choose(timings: dict):
    """The fastest tactic key of {tactic_key: ms | None}; None entries failed. Ties: smaller key."""
    ok = [(ms, k) for k, ms in timings.items() if ms is not None and math.isfinite(ms)]
    return min(ok)[1] if ok else None


def parse_tactic_key(key: str) -> dict:
    """Inverse of kernels.tactic_key: 'src:name:{params}' -> tactic dict."""
    src, name, params = key.split(":", 2)
    return {"source": src, "name": name, "params": json.loads(params)}


def display(tactic: dict) -> str:
    """Short human form of a tactic: aten:conv2d_nhwc[weight_layout=channels_last]."""
    p = tactic.get("params") or {}
    ps = ",".join(f"{k}={v}" for k, v in sorted(p.items()))
    return f"{tactic['source']}:{tactic['name']}" + (f"[{ps}]" if ps else "")


def tensor_info(plan, name, env, weights) -> dict | None:
    """{"dtype", "shape", "kind"} of a plan tensor at the symbol bindings env (None if unknown)."""
    if name is None:
        return None
    t = plan.tensors[name]
    try:
        shape = list(eval_shape(t.shape, env))
    except (NameError, KeyError, ValueError):
        return None
    d = {"dtype": t.dtype, "shape": shape, "kind": t.kind}
    if t.kind == "shape":
        d["value"] = [eval_value(v, env, t.dtype) for v in t.sym]
    elif t.kind == "weight" and t.host and name in weights and weights[name].numel() <= 64:
        d["value"] = weights[name].reshape(-1).tolist()
    return d


def shape_info(plan, lay, env, weights) -> LayerShapes | None:
    """The layer's concrete input/output descriptions, or None when a shape is data-dependent."""
    ins = [tensor_info(plan, n, env, weights) for n in lay.inputs]
    outs = [tensor_info(plan, n, env, weights) for n in lay.outputs]
    if any(i is None for i, n in zip(ins, lay.inputs) if n) or any(o is None for o in outs):
        return None
    return LayerShapes.of(ins, outs)


def signature(lay, info: LayerShapes, tf32: bool) -> dict:
    """What makes two layers interchangeable for tactic selection (names excluded)."""
    ins = [None if i is None else [i["dtype"], i["shape"], "weight" if i["kind"] == "weight" else "act",
                                   i.get("value")] for i in info.inputs]
    return {"type": lay.type, "domain": lay.domain, "attrs": lay.attrs, "inputs": ins,
            "outputs": [[o["dtype"], o["shape"]] for o in info.outputs], "precision": lay.precision,
            "layout": "nchw", "tf32": bool(tf32 and lay.precision == "float32"),
            "host_inputs": lay.host_inputs}


def _random(info: dict, device, seed: int) -> torch.Tensor:
    """Random data of a layer input (never all zeros; ints in [0, 2), bools mostly True)."""
    g = torch.Generator().manual_seed(seed)
    dt = dtypes.to_torch(info["dtype"])
    shape = info["shape"]
    if dt.is_floating_point:
        t = torch.rand(shape, generator=g, dtype=torch.float32) * 2 - 1
    elif dt == torch.bool:
        t = torch.rand(shape, generator=g) > 0.1
    else:
        t = torch.randint(0, 2, shape, generator=g)
    return t.to(dt).to(device)


class LayerBench:
    """Inputs for one layer at the opt shapes: real weights, random activations (several sets)."""

    def __init__(self, plan, lay, info: LayerShapes, weights, device, dev_weights: dict):
        self.lay, self.info, self.device = lay, info, device
        fixed, rand = {}, []
        for i, (name, inf) in enumerate(zip(lay.inputs, info.inputs)):
            if name is None:
                fixed[i] = None
            elif inf["kind"] == "weight":
                on_host = plan.tensors[name].host
                if on_host:
                    fixed[i] = weights[name]
                else:
                    if name not in dev_weights:
                        dev_weights[name] = weights[name].to(device)
                    fixed[i] = dev_weights[name]
            elif inf["kind"] == "shape":
                fixed[i] = torch.tensor(inf["value"], dtype=dtypes.to_torch(inf["dtype"])).reshape(inf["shape"])
            else:
                rand.append(i)
        self.fixed, self.rand = fixed, rand
        self.channels_last = False
        nbytes = sum(int(np.prod(info.inputs[i]["shape"])) * dtypes.itemsize(info.inputs[i]["dtype"])
                     for i in rand)
        self.nbytes = nbytes
        n_sets = 2 if 0 < nbytes <= L2_BYTES else 1
        self.sets = [self._make(seed) for seed in range(n_sets)]

    def _make(self, seed):
        ins = [self.fixed.get(i) for i in range(len(self.lay.inputs))]
        for i in self.rand:
            ins[i] = _random(self.info.inputs[i], self.device, seed * 131 + i)
        return ins

    def outputs(self, channels_last: bool = False):
        """Output buffers like the runtime's arena slots (channels_last: NHWC bytes, as in a chain)."""
        out = []
        for o in self.info.outputs:
            t = torch.empty(o["shape"], dtype=dtypes.to_torch(o["dtype"]), device=self.device)
            out.append(t.contiguous(memory_format=torch.channels_last) if channels_last and t.dim() == 4 else t)
        return out

    def in_layout(self, channels_last: bool) -> "LayerBench":
        """The same bench with 4-D float activations channels-last (NHWC bytes) when asked."""
        if not channels_last:
            return self
        other = object.__new__(LayerBench)
        other.__dict__.update(self.__dict__)
        other.channels_last = True
        other.sets = [[_cl(t) if i in self.rand else t for i, t in enumerate(s)] for s in self.sets]
        return other


def _cl(t):
    """A 4-D float or 8-bit quantized activation as NHWC bytes (the activations a layout chain holds)."""
    ok = t.is_floating_point() or t.dtype in (torch.int8, torch.uint8)
    return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 and ok else t


def wants_channels_last(tactic: dict) -> bool:
    """Tactics that run NHWC (timed with NHWC activations, as inside a channels-last chain)."""
    return (tactic.get("params") or {}).get("weight_layout") == "channels_last"


def layer_fn(lay, tactic, opset, device):
    """The kernel callable of a layer under a given tactic (the layer itself is not modified)."""
    saved = lay.tactic
    lay.tactic = tactic
    try:
        return kernels.make_kernel(lay, opset, device)
    finally:
        lay.tactic = saved


def tolerance(lay, tf32: bool) -> float:
    if lay.precision == "float32":
        return TOLERANCE["tf32"] if tf32 else TOLERANCE["float32"]
    return TOLERANCE.get(lay.precision, 1e-2)


def _runner(fn, bench: LayerBench, copy: bool = True, takes_out: bool = False):
    """One timed step as the runtime does it: run the kernel (into the planned buffers when it takes
    them: takes_out, the tactic writes in place); copy its results into those buffers when the runtime
    would (copy=False: a kernel that allocates its outputs hands them on as they are,
    activation_memory="direct")."""
    outs = bench.outputs(bench.channels_last)
    sets = bench.sets
    state = {"i": 0}

    def step():
        ins = sets[state["i"] % len(sets)]
        state["i"] += 1
        if takes_out:
            res = fn(list(ins), outs)
        else:
            res = fn(list(ins))
            if not copy:
                return
        for o, r in zip(outs, res):
            if r is not o:
                o.copy_(r)
    return step


def time_cuda(fn, bench: LayerBench, iters: int, repeats: int = 3, copy: bool = True,
              takes_out: bool = False) -> float:
    """ms per run, timed as the runtime runs it: `iters` back-to-back runs (at least 8) captured in
    a CUDA graph, CUDA events around its replays, min over repeats (at least 10 when a replay takes
    under 0.1 ms: microsecond kernels need them). A tactic that cannot be captured is timed with
    eager launches queued behind a GPU sleep (events then measure GPU time, not Python overhead)."""
    step = _runner(fn, bench, copy, takes_out)
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    n = max(8, iters)
    replay = _graph(step, n)
    best = math.inf
    r = 0
    while r < repeats:
        r += 1
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        if replay is None:
            torch.cuda._sleep(4_000_000 + 400_000 * n)  # ~2 ms + 0.2 ms per run at 2 GHz
        start.record()
        if replay is not None:
            replay()
        else:
            for _ in range(n):
                step()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / n)
        if r == 1 and best * n < 0.1:
            repeats = max(repeats, 10)
    return best


def _graph(step, n):
    """replay() of a CUDA graph of n steps captured on a side stream (None if capture fails)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    from ..runtime.graphs import capture

    def steps():
        for _ in range(n):
            step()
    try:
        g = capture(steps, stream)
    except Exception:  # noqa: BLE001 - not capturable: eager timing
        torch.cuda.synchronize()
        return None
    torch.cuda.current_stream().wait_stream(stream)
    g.replay()  # the first replay uploads the graph
    torch.cuda.synchronize()
    return g.replay


def time_cpu(fn, bench: LayerBench, iters: int, repeats: int = 3, takes_out: bool = False) -> float:
    """ms per run on the host clock (CPU engines)."""
    step = _runner(fn, bench, takes_out=takes_out)
    step()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        best = min(best, (time.perf_counter() - t0) * 1e3 / iters)
    return best
