"""`tensorforge report` on an engine: its build facts and layers plus a profiling run with forgeexec's
profiler and layer information, as the report's ReportData."""
from __future__ import annotations

import contextlib

from ..report.data import ReportData, apply_profile, row_of


def _shapes(engine, given: dict) -> dict:
    """Inference shapes: --shapes, else profile 0's opt shapes, else 1 for dynamic dims."""
    out = {}
    for t in engine.inputs:
        if t.name in given:
            out[t.name] = tuple(given[t.name])
        elif -1 in t.shape and engine.num_profiles:
            out[t.name] = tuple(engine.get_profile_shape(0, t.name)[1])
        else:
            out[t.name] = tuple(1 if d < 0 else d for d in t.shape)
    return out


def _device_name(engine) -> str:
    """The name of the device the engine runs on ('CPU' on the CPU)."""
    if engine.device.type != "cuda":
        return "CPU"
    import torch
    return torch.cuda.get_device_name(engine.device)


def profile(engine, shapes: dict, iterations: int, warmup: int = 2):
    """Run the engine with forgeexec's profiler: (its --exportProfile list, the context after the run)."""
    import json

    from .forgeexec.api import zoo_value_ranges
    from .forgeexec.inputs import make_inputs
    from .forgeexec.profile import Profiler
    feed = make_inputs(engine.inputs, shapes, {}, zoo_value_ranges(None))
    ctx = engine.create_execution_context()
    for _ in range(warmup):
        ctx.infer(feed)
    prof = Profiler()
    ctx.profiler = prof
    for _ in range(iterations):
        ctx.infer(feed)
    ctx.profiler = None
    return json.loads(prof.json()), ctx


@contextlib.contextmanager
def torch_threads(n):
    """torch's intra-op threads set to n (None: unchanged) for the block."""
    import torch
    saved = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def build_facts(engine) -> dict:
    """Build summary: ONNX nodes, layers, fusions, build time, tactic selection, memory."""
    plan, info = engine.plan, dict(engine.build_info or {})
    fused = [lay for lay in plan.layers if len(lay.origin) > 1]
    out = {"ONNX nodes": info.get("onnx_nodes", "n/a"), "layers": len(plan.layers),
           "fused layers": len(fused), "ONNX nodes in fused layers": sum(len(lay.origin) for lay in fused),
           "build time (s)": info.get("build_time_s", "n/a")}
    sel = plan.meta.get("tactic_selection") or {}
    if sel:
        out["tactic selection"] = (f"level {sel.get('opt_level')}: {sel.get('timed', 0)} signatures timed, "
                                   f"{sel.get('cache_hits', 0)} cache hits, {sel.get('time_s', 0)} s")
    cfg = plan.config or {}
    flags = [k for k in ("fp16", "bf16", "int8", "fp8", "tf32", "strongly_typed") if cfg.get(k)]
    out["precision flags"] = ", ".join(flags) or "fp32 only"
    out["activation memory (MiB)"] = round(plan.device_memory_size / 2**20, 3)
    out["fusions"] = [lay.name for lay in fused]
    return out


def from_engine(engine, title: str, shapes: dict | None = None, iterations: int = 20,
                threads: int | None = None) -> ReportData:
    """Profile `engine` on its device (on the CPU with `threads` torch threads, default 1, as forgeexec)
    and collect everything the page shows."""
    from .forgeexec.layerinfo import layer_info
    cpu = engine.device.type != "cuda"
    threads = threads or (1 if cpu else None)
    with torch_threads(threads):
        prof, ctx = profile(engine, _shapes(engine, shapes or {}), iterations)
    info = layer_info(engine, ctx, "detailed")
    by_name = {lay.name: lay for lay in engine.layers}
    rows = []
    for d in info["Layers"]:
        lay = by_name.get(d["Name"])
        if lay is not None:
            d = dict(d, precision=lay.precision, attrs=lay.attrs)
        row = row_of(d)
        row.fused = max(1, len(lay.origin)) if lay is not None else row.fused
        rows.append(row)
    data = ReportData(title=title, device=_device_name(engine), layers=rows,
                      tf32=bool((engine.plan.config or {}).get("tf32", True)))
    apply_profile(data, prof)
    data.build = build_facts(engine)
    data.notes.append(f"Profiled on {data.device}: {data.iterations} inferences at input shapes "
                      + ", ".join(f"{n}={'x'.join(map(str, s))}" for n, s in _shapes(engine, shapes or {}).items())
                      + (f" with {threads} torch thread(s) (--cpuThreads)" if cpu else ""))
    return data

