"""Builder: ONNX -> frontend -> passes -> layers -> tactics -> memory plan -> Engine."""
from __future__ import annotations

import contextlib
import logging
import math
import time

import torch

from .. import dtypes, frontend, passes, plugin
from ..errors import ShapeError, TensorforgeError
from ..runtime import memory
from ..ir.symbolic import to_str
from ..runtime.binding import bind_symbols
from ..runtime.engine import Engine, default_device
from ..runtime.plan import ProfileSpec
from ..runtime.shapes import eval_shape
from .config import BuilderConfig
from .lower import lower
from .memcheck import check_fits, tensor_bytes
from .precision import assign_precision
from .refit import record as refit_record, recording as refit_recording
from .streams import assign_streams
from .tactics import select_tactics

log = logging.getLogger("tensorforge")


class Builder:
    """Builds engines from ONNX models according to a BuilderConfig."""

    def __init__(self, config: BuilderConfig | None = None):
        self.config = config or BuilderConfig()

    def build(self, model) -> Engine:
        """Build an engine from a path, 'zoo:NAME' or onnx.ModelProto."""
        cfg = self.config
        cfg.validate()
        t0 = time.perf_counter()
        device = torch.device(cfg.device) if cfg.device else default_device()
        if device.type == "cuda" and not torch.cuda.is_available():
            raise TensorforgeError("device 'cuda' requested but no CUDA device is available")
        proto = frontend.load_model_proto(model)
        refit = cfg.refit or cfg.strip_weights
        with refit_recording(proto) if refit else contextlib.nullcontext() as rec:
            g = frontend.load(proto, _pinned_shapes(proto, cfg))
            retarget = plugin.apply_overrides(g)  # {node: [op, domain]} run by a plugin instead of a built-in
            cfg = _strongly_typed_for_qdq(g, cfg)
            g_qdq = _has_qdq(g)
            n_nodes = len(g.nodes)
            g = passes.run_pipeline(g, None if cfg.fusion else passes.CLEANUP)
            g = assign_precision(g, cfg)
            plan, weights = lower(g)
            lowered = dict(weights)  # the tape's outputs (tactics may re-lay weights out later)
        _mark_shape_inputs(plan, g)
        plan.profiles, implicit = _profiles(plan, cfg)
        _check_io_memory(plan, device)
        plan.meta["implicit_profile"] = implicit
        plan = select_tactics(plan, weights, cfg, device)
        assign_streams(plan, cfg.max_aux_streams)
        plan.config = cfg.to_json()
        mem = _memory_at_max(plan)
        plan.device_memory_size = mem["total"]
        plan.meta.update(activation_bytes_unshared=mem["unshared"], kernel_allocated_bytes=mem["kernel"],
                         arena_bytes=mem["arena"])
        used = plugin.used_by(plan)
        if used:  # host-side implementations need their module at load; the error names it
            plan.meta["plugins"] = used
        if refit:
            plan.meta["refit"] = refit_record(proto, cfg.strip_weights, retarget, rec, lowered)
        if cfg.tf32 and device.type == "cuda":
            plan.meta["tf32"] = True
        info = {"onnx_nodes": n_nodes, "layers": len(plan.layers)}
        engine = Engine(plan, weights, device, build_info=info)
        if device.type == "cuda":  # compiled Triton kernels go into the engine (no compiling after a load)
            from ..kernels.triton.binaries import capture
            engine.artifacts = capture(engine)
        build_s = time.perf_counter() - t0
        info["build_time_s"] = round(build_s, 3)
        log.info("Engine built in %.3f sec: %d ONNX nodes -> %d layers, activation memory %.2f MiB",
                 build_s, n_nodes, len(plan.layers), plan.device_memory_size / 2**20)
        if _checks_fp16_form(g_qdq, cfg, device, refit):
            from .fp16_form import choose
            engine = choose(engine, proto, cfg, device, lambda c, m: Builder(c).build(m))
            engine.build_info["build_time_s"] = round(time.perf_counter() - t0, 3)  # both builds and timings
        return engine


def _pinned_shapes(proto, cfg) -> dict:
    """{input: shape} of inputs every profile pins to one shape (min == opt == max), for models with
    control flow: an If on input shapes is then decided at build time (the common exporter pattern)."""
    if not cfg.profiles or not any(n.op_type == "If" for n in proto.graph.node):
        return {}
    out = {}
    for name in cfg.profiles[0].shapes:
        shapes = [tuple(s) for p in cfg.profiles for s in p.shapes.get(name, [None])]
        if all(s == shapes[0] and s is not None for s in shapes):
            out[name] = shapes[0]
    return out


def _mark_shape_inputs(plan, g) -> None:
    """Shape-tensor inputs (given symbolic contents by the frontend) keep them in the plan."""
    for v in g.inputs:
        if v.sym is not None and v.name in plan.tensors:
            plan.tensors[v.name].sym = [to_str(x) for x in v.sym.reshape(-1).tolist()]


def _profile_values(plan, i, prof, shape_inputs) -> dict:
    """Validated {shape input: [min, opt, max] values} of one profile."""
    given = getattr(prof, "values", {}) or {}
    for name in given:
        if name not in shape_inputs:
            raise ShapeError(f"profile {i}: '{name}' is not a shape tensor input (shape tensor inputs: "
                             f"{', '.join(shape_inputs) or 'none'})")
    out = {}
    for name in shape_inputs:
        if name not in given:
            raise ShapeError(f"profile {i}: no values for shape tensor input '{name}' "
                             "(OptimizationProfile.set_shape_input)")
        n = len(plan.tensors[name].sym)
        if any(len(v) != n for v in given[name]):
            raise ShapeError(f"profile {i}: shape tensor input '{name}' has {n} values, profile gives "
                             f"{len(given[name][0])}")
        out[name] = [list(v) for v in given[name]]
    return out


def _profiles(plan, cfg: BuilderConfig):
    """Validate the config's profiles against the network inputs; make an implicit one if needed."""
    dynamic = {n: plan.tensors[n].shape for n in plan.inputs
               if any(not isinstance(d, int) for d in plan.tensors[n].shape)}
    shape_inputs = [n for n in plan.inputs if plan.tensors[n].sym is not None]
    if shape_inputs and not cfg.profiles:
        raise ShapeError(f"shape tensor input(s) {', '.join(shape_inputs)} need an optimization profile "
                         "with their values (OptimizationProfile.set_shape_input)")
    if not cfg.profiles:
        if dynamic:
            log.warning("no optimization profile given for dynamic input(s) %s; tuning for dims = 1, "
                        "any shape accepted at run time", ", ".join(dynamic))
        shapes = {n: [[1 if not isinstance(d, int) else d for d in s]] * 3 for n, s in dynamic.items()}
        return ([ProfileSpec(shapes)] if dynamic else []), True
    out = []
    for i, prof in enumerate(cfg.profiles):
        for name in prof.shapes:
            if name not in plan.inputs:
                raise ShapeError(f"profile {i}: '{name}' is not a network input (inputs: {', '.join(plan.inputs)})")
        shapes = {}
        for name in plan.inputs:
            spec = plan.tensors[name].shape
            if name not in prof.shapes:
                if name in dynamic:
                    raise ShapeError(f"profile {i}: no shapes for dynamic input '{name}' ({spec})")
                continue
            mn, op, mx = prof.shapes[name]
            for s in (mn, op, mx):
                if len(s) != len(spec):
                    raise ShapeError(f"profile {i}: '{name}' has rank {len(spec)}, profile gives {len(s)}")
                for d, sd in zip(s, spec):
                    if isinstance(sd, int) and d != sd:
                        raise ShapeError(f"profile {i}: '{name}' static dim {sd} given as {d}")
            shapes[name] = [list(mn), list(op), list(mx)]
        out.append(ProfileSpec(shapes, _profile_values(plan, i, prof, shape_inputs)))
    return out, False


def _check_io_memory(plan, device) -> None:
    """Refuse, before any tactic runs, input/output shapes whose buffers alone exceed the device."""
    for prof in plan.profiles or [ProfileSpec({})]:
        shapes = {n: tuple(prof.shapes[n][2]) if n in prof.shapes else tuple(plan.tensors[n].shape)
                  for n in plan.inputs}
        try:
            env = bind_symbols(plan, shapes, {n: v[2] for n, v in prof.values.items()})
        except (NameError, KeyError):
            continue
        total, biggest = 0, None
        for name in list(plan.inputs) + list(plan.outputs):
            if plan.tensors[name].dtype.startswith(("seq(", "opt(")):  # host objects (sequences, optionals)
                continue
            try:
                shp = eval_shape(plan.tensors[name].shape, env)
            except (NameError, KeyError):
                continue
            if any(d < 0 for d in shp):
                raise ShapeError(f"tensor '{name}' would have shape {list(shp)} at the largest profile shapes; "
                                 "check the model's attributes (pads, strides, kernel)")
            size = tensor_bytes(shp, plan.tensors[name].dtype)
            total += size
            biggest = max(biggest or (0, ""), (size, f"'{name}' {list(shp)}"))
        if biggest:
            check_fits(total, device, f"the inputs and outputs at their largest shapes (biggest: {biggest[1]})")


def _memory_at_max(plan) -> dict:
    """Activation bytes at the largest profile shapes: total (every activation planned in one arena:
    engine.device_memory_size, what a context given an allocator takes from it), arena (the part a
    context without one keeps in its arena: in direct mode kernels allocate the rest), kernel (the
    planned peak of kernel-allocated activations) and unshared (the no-reuse baseline)."""
    taken = memory.kernel_allocated(plan)
    arena_lt, all_lt = memory.lifetimes(plan, taken), memory.lifetimes(plan)
    out = dict.fromkeys(("total", "arena", "kernel", "unshared"), 0)
    for prof in plan.profiles or [ProfileSpec({})]:
        shapes = {n: tuple(prof.shapes[n][2]) if n in prof.shapes else tuple(plan.tensors[n].shape)
                  for n in plan.inputs}
        env = bind_symbols(plan, shapes, {n: v[2] for n, v in prof.values.items()})
        bufs = {}
        for name, (first, last) in all_lt.items():
            try:
                shp = eval_shape(plan.tensors[name].shape, env)
            except (NameError, KeyError):
                continue
            size = math.prod(shp) * dtypes.itemsize(plan.tensors[name].dtype)  # Python ints: no overflow
            bufs[name] = memory.Buffer(name, size, first, last)
        here = {"total": memory.plan(list(bufs.values()))[1],
                "arena": memory.plan([b for n, b in bufs.items() if n in arena_lt])[1],
                "kernel": memory.plan([b for n, b in bufs.items() if n in taken])[1],
                "unshared": memory.total_unshared(list(bufs.values()))}
        out = {k: max(v, here[k]) for k, v in out.items()}
    return out


def _has_qdq(g) -> bool:
    from ..passes.quant import has_qdq
    return has_qdq(g)


def _checks_fp16_form(had_qdq: bool, cfg, device, refit: bool) -> bool:
    """Whether the quantized engine of a Q/DQ model is timed against its FP16 form (builder.fp16_form)."""
    if not had_qdq or refit or cfg.fp16_engine_check == "never" or cfg.precision_constraints == "obey":
        return False
    return cfg.fp16_engine_check == "always" or (device.type == "cuda" and int(cfg.opt_level) >= 1)


def _strongly_typed_for_qdq(g, cfg):
    """With Q/DQ in the graph the build is strongly typed: precisions come from the Q/DQ nodes and the
    graph's types. --fp16 / --bf16 with a Q/DQ model (TensorRT's weakly typed mode with Q/DQ): the
    Q/DQ still decide the quantized layers, and the rest, where the graph has it in FP32, may run in
    the reduced type."""
    from ..passes.quant import has_qdq
    if cfg.strongly_typed or not has_qdq(g):
        return cfg
    if cfg.fp16 or cfg.bf16:
        log.info("the model has Q/DQ nodes: they decide the quantized layers; the non-Q/DQ part follows "
                 "--%s", "fp16" if cfg.fp16 else "bf16")
        return cfg
    if cfg.int8 or cfg.fp8:
        log.warning("the model has Q/DQ nodes: strongly typed build, precision flags are ignored")
    import dataclasses
    return dataclasses.replace(cfg, strongly_typed=True)
