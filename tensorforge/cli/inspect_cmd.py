"""`tensorforge inspect`: model summary (I/O, opset, op histogram, parameters) or engine summary."""
from __future__ import annotations

import collections
import os

from ..errors import TensorforgeError


def _is_engine(path: str) -> bool:
    from ..runtime.format import MAGIC
    if path.startswith("zoo:") or not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def _dims(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def inspect_model(spec: str) -> str:
    """Summary of an ONNX model: inputs/outputs (dynamic dims by name), opset, ops, parameters."""
    from ..frontend import load_model_proto
    m = load_model_proto(spec)
    g = m.graph
    inits = {t.name for t in g.initializer}

    def vi_str(vi):
        tt = vi.type.tensor_type
        dt = _dtype_name(tt.elem_type)
        if not tt.HasField("shape"):
            return f"  {vi.name}: {dt} (shape not declared)"
        dims = [d.dim_param if d.dim_param else (d.dim_value if d.HasField("dim_value") else "?")
                for d in tt.shape.dim] if tt.HasField("shape") else ["?"]
        dyn = [str(d) for d in dims if not isinstance(d, int)]
        return f"  {vi.name}: {dt} {_dims(dims)}" + (f"  (dynamic: {', '.join(dyn)})" if dyn else "")

    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in m.opset_import)
    hist = collections.Counter(n.op_type for n in g.node)
    params = sum(_numel(t) for t in g.initializer)
    params += sum(_numel(a.t) for n in g.node if n.op_type == "Constant" for a in n.attribute if a.name == "value")
    lines = [f"==== ONNX Model: {spec} ====", f"Graph: {g.name} | IR version {m.ir_version} | Opset: {opsets}",
             f"Producer: {m.producer_name} {m.producer_version}".rstrip(),
             f"---- {sum(1 for i in g.input if i.name not in inits)} Input(s) ----"]
    lines += [vi_str(i) for i in g.input if i.name not in inits]
    lines += [f"---- {len(g.output)} Output(s) ----"] + [vi_str(o) for o in g.output]
    lines += [f"---- {len(g.node)} Node(s), {len(hist)} op type(s) ----"]
    lines += [f"  {op:<28} {n}" for op, n in sorted(hist.items(), key=lambda kv: (-kv[1], kv[0]))]
    lines += [f"Parameters: {params:,} ({len(g.initializer)} initializers)"]
    return "\n".join(lines + _support_lines(m))


def _support_lines(m) -> list[str]:
    """Every unsupported op with all its node names: the main graph's (a build refuses them) and the
    control-flow bodies' (they matter when their branch runs), or one OK line."""
    from ..frontend import unsupported_nodes
    lines = []
    for found, what in ((unsupported_nodes(m), "the build will fail"),
                        (unsupported_nodes(m, bodies=True), "inside If/Loop/Scan bodies")):
        if found:
            n = sum(len(v) for v in found.values())
            lines.append(f"---- {n} unsupported node(s), {len(found)} op type(s): {what} ----")
            lines += [f"  {op:<28} {len(names)}: {', '.join(names)}" for op, names in found.items()]
    return lines or ["Supported: every node's op has a tensorforge rule"]


def _dtype_name(elem_type: int) -> str:
    """ONNX element type as a name; unknown codes shown as such (a model may hold any integer)."""
    import onnx
    if not elem_type:
        return "?"
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except (KeyError, ValueError, TypeError):
        return f"unknown element type {elem_type}"


def _numel(t) -> int:
    n = 1
    for d in t.dims:
        n *= max(int(d), 0)
    return n


def inspect_engine(path: str) -> str:
    """Summary of an engine: build info, I/O, profiles, memory, and every layer with its tactic."""
    from ..runtime import Engine
    from ..runtime.format import read
    from ..runtime.plan import EnginePlan
    from ..runtime.schema import check_shapes, check_weights
    header, weights, artifacts = read(path)  # inspect never needs the GPU: keep weights on the host
    plan = EnginePlan.from_json(header["plan"])
    refit = plan.meta.get("refit") or {}
    if weights or not refit.get("stripped"):
        check_weights(plan, weights, path)
    check_shapes(plan, path)
    eng = Engine(plan, weights, "cpu", artifacts, header.get("build", {}))
    p = eng.plan
    dev = header.get("device", {})
    cap = dev.get("capability")
    lines = [f"==== tensorforge Engine: {path} ====",
             f"Size: {os.path.getsize(path) / 2**20:.2f} MiB | built for: {dev.get('name')}"
             + (f" (sm_{cap[0]}{cap[1]})" if cap else "") + f" | opset {p.opset} | "
             f"tensorforge {header.get('tensorforge_version')} | torch {header.get('torch_version')}",
             f"Build: {eng.build_info}",
             _activation_line(p),
             f"Weights: {sum(w.numel() * w.element_size() for w in eng.weights.values()) / 2**20:.2f} MiB "
             f"in {len(eng.weights)} tensors" + (" (weights stripped: refit before inference)" if
                                                 refit.get("stripped") else " (refittable)" if refit else ""),
             f"---- {len(eng.inputs)} Input(s) ----"]
    if p.meta.get("tactic_selection"):
        lines.insert(-1, _tactic_line(p.meta["tactic_selection"]))
    lines += [f"  {n}: {p.tensors[n].dtype} {_dims(p.tensors[n].shape)}" for n in p.inputs]
    lines += [f"---- {len(p.outputs)} Output(s) ----"]
    lines += [f"  {n}: {p.tensors[n].dtype} {_dims(p.tensors[n].shape)}" for n in p.outputs]
    for i, prof in enumerate(p.profiles):
        for name, (mn, op, mx) in prof.shapes.items():
            lines.append(f"  profile {i}: {name} min={_dims(mn)} opt={_dims(op)} max={_dims(mx)}")
    lines.append(f"---- {len(p.layers)} Layer(s) ----")
    for i, lay in enumerate(eng.layers):
        tac = lay.tactic[:-3] if lay.tactic.endswith(":{}") else lay.tactic
        if p.layers[i].mode == "view":
            tac = "view (no kernel: aliases its input)"
        origin = f" | from {', '.join(lay.origin)}" if len(lay.origin) > 1 else ""
        eager = p.meta.get("eager_layers", {}).get(lay.name)
        origin += f" | outside the CUDA graph: {eager}" if eager else ""
        lines.append(f"  [{i}] {lay.name} | {lay.type} | {lay.precision} | {tac}{origin}")
    hist = collections.Counter(lay.type for lay in p.layers)
    lines.append("Layer types: " + ", ".join(f"{k} {v}" for k, v in sorted(hist.items(), key=lambda kv: -kv[1])))
    from ..runtime.dynamic import dynamic_layers
    dyn = [lay.name for lay, d in zip(p.layers, dynamic_layers(p.layers, p.tensors)) if d]
    if dyn:
        lines.append(f"Data-dependent sizes: {len(dyn)} layer(s) run after the CUDA graph, eagerly, their outputs "
                     f"allocated when sized: {', '.join(dyn)}")
    if "engine_choice" in p.meta or any(lay.type.startswith("fused.Q") for lay in p.layers):
        from .quant_lines import quant_lines
        lines += quant_lines(eng)
    return "\n".join(lines)


def _activation_line(p) -> str:
    """Activation memory (and without reuse), plus the context's arena and what kernels allocate themselves."""
    line = (f"Activation memory: {p.device_memory_size / 2**20:.2f} MiB "
            f"(without reuse: {p.meta.get('activation_bytes_unshared', 0) / 2**20:.2f} MiB)")
    if "kernel_allocated_bytes" in p.meta:
        mode = p.config.get("activation_memory", "direct")
        if "arena_bytes" in p.meta:  # device_memory_size plans every activation; this is how a context splits it
            line += f"; context arena {p.meta['arena_bytes'] / 2**20:.2f} MiB"
        line += (f" + {p.meta['kernel_allocated_bytes'] / 2**20:.2f} MiB allocated by kernels "
                 f"(activation_memory={mode})")
    return line


_TACTIC_STATS = (("opt_level", "level {}"), ("layers", "{} layers"), ("timed", "{} signatures timed"),
                 ("tactics_timed", "{} tactics timed"), ("cache_hits", "{} timing-cache hits"),
                 ("failed", "{} tactics failed"), ("time_s", "{} s"))


def _tactic_line(stats: dict) -> str:
    """plan.meta["tactic_selection"] in one line (unknown keys as key=value)."""
    parts = [fmt.format(stats[k]) for k, fmt in _TACTIC_STATS if k in stats]
    known = {k for k, _ in _TACTIC_STATS}
    parts += [f"{k}={v}" for k, v in stats.items() if k not in known]
    return "Tactic selection: " + ", ".join(parts)


def inspect_path(path: str) -> str:
    if not path.startswith("zoo:") and not os.path.exists(os.path.expanduser(path)):
        raise TensorforgeError(f"file not found: {path}")
    return inspect_engine(path) if _is_engine(path) else inspect_model(path)
