"""The whole-engine no-regression rule for Q/DQ models: the quantized engine is kept only if it is faster than
the FP16 engine of the same model with its Q/DQ taken out (timed whole, CUDA graph), unless the user obeys
the Q/DQ strictly (--precisionConstraints=obey).

Why: each quantized layer is already kept only where it beats its own FP16 form (tactics), but that FP16 form
still reads and writes the 8-bit tensors around it. At small batches the 8-bit kernels and those boundaries
cost more than an FP16 engine without them (session 13 on the H200: ResNet-50 INT8 at batch 4, 0.511 ms
against 0.397 ms for FP16, with every quantized layer faster than its FP16 form).

The FP16 form: weights behind a DQ (or a constant Q -> DQ) become the float weights they dequantize to (so the
weights keep their quantization), activation Q -> DQ round trips go away. A model whose Q/DQ cannot all be
taken out (a DQ of a graph input, a Q read by an integer op) has no FP16 form and keeps its quantized engine."""
from __future__ import annotations

import dataclasses
import logging
import statistics
import time

import onnx
import torch
from onnx import helper, numpy_helper

from ..dtypes import to_torch
from ..errors import TensorforgeError

log = logging.getLogger("tensorforge")

Q, DQ = "QuantizeLinear", "DequantizeLinear"
MARGIN = 0.02  # the FP16 engine must be this much faster: timing noise must not flip an engine


def _is(node, op) -> bool:
    return node.op_type == op and node.domain in ("", "ai.onnx", "com.microsoft")


def _consts(graph) -> dict:
    """name -> TensorProto of the initializers and Constant nodes' values."""
    out = {t.name: t for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            out[n.output[0]] = n.attribute[0].t
    return out


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _run(node, consts, value=None):
    """The reference of one Q or DQ node on constants (its first input `value` when given)."""
    from ..frontend.onnx_loader import tensor_to_torch
    from ..ops.quant import dequantize_ref, quantize_ref
    args = [value if value is not None else tensor_to_torch(consts[node.input[0]])]
    args += [tensor_to_torch(consts[x]) if x else None for x in node.input[1:]]
    fn = dequantize_ref if _is(node, DQ) else quantize_ref
    return fn(*args, **_attrs(node))


def fp16_form(proto: onnx.ModelProto) -> onnx.ModelProto | None:
    """The model without its Q/DQ (see the module's text), or None when some cannot be taken out."""
    g = proto.graph
    consts = _consts(g)
    prod = {o: n for n in g.node for o in n.output}
    keep, folded, renamed = [], [], {}
    drop = set()
    for n in g.node:
        if not _is(n, DQ):
            continue
        if any(x and x not in consts for x in n.input[1:]):
            return None  # a scale computed at run time
        src = prod.get(n.input[0])
        if n.input[0] in consts:  # a stored 8-bit weight
            w = _run(n, consts)
        elif src is not None and _is(src, Q) and src.input[0] in consts and all(
                not x or x in consts for x in src.input[1:]):  # a float weight behind Q -> DQ
            w = _run(n, consts, _run(src, consts))
        elif src is not None and _is(src, Q):  # an activation's round trip
            renamed[n.output[0]] = src.input[0]
            drop.add(id(n))
            continue
        else:
            return None  # dequantizes a graph input or an integer op's output
        if w.dtype not in (torch.float16, torch.float32):
            return None  # (a bfloat16 weight: numpy has no such type to store it through)
        folded.append(numpy_helper.from_array(w.numpy(), n.output[0]))
        drop.add(id(n))
    used = {x for n in g.node if id(n) not in drop for x in n.input} | {o.name for o in g.output}
    for n in g.node:
        if _is(n, Q) and id(n) not in drop:
            if any(o in used for o in n.output):
                return None  # an 8-bit tensor read by something else than a DQ
            drop.add(id(n))
    if not drop:
        return None

    def name(x):
        while x in renamed:
            x = renamed[x]
        return x
    for n in g.node:
        if id(n) in drop:
            continue
        m = onnx.NodeProto()
        m.CopyFrom(n)
        m.input[:] = [name(x) if x else x for x in n.input]
        keep.append(m)
    for o in g.output:  # a graph output that was a round trip's DQ: the tensor before it, under its name
        if name(o.name) != o.name:
            keep.append(helper.make_node("Identity", [name(o.name)], [o.name], name=f"{o.name}_fp16_form"))
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    del out.graph.node[:]
    out.graph.node.extend(keep)
    live = {x for n in keep for x in n.input}
    inits = [t for t in out.graph.initializer if t.name in live] + [t for t in folded if t.name in live]
    del out.graph.initializer[:]
    out.graph.initializer.extend(inits)
    del out.graph.value_info[:]
    return out


def _feeds(engine, device) -> dict:
    """Inputs at the first profile's opt shapes: random floats, ones for integers (valid ids and masks)."""
    plan = engine.plan
    prof = plan.profiles[0] if plan.profiles else None
    feeds = {}
    for name in plan.inputs:
        spec = plan.tensors[name]
        shape = prof.shapes[name][1] if prof and name in prof.shapes else spec.shape
        if prof and name in prof.values:
            feeds[name] = torch.tensor(prof.values[name][1], dtype=torch.int64)
            continue
        if any(not isinstance(d, int) for d in shape):
            raise TensorforgeError(f"input '{name}' has no opt shape to time the engine at")
        dt = to_torch(spec.dtype)
        x = torch.rand(shape, device=device).to(dt) if dt.is_floating_point else torch.ones(shape, dtype=dt,
                                                                                              device=device)
        feeds[name] = x
    return feeds


def time_engine(engine, device, seconds: float = 0.2) -> float:
    """Milliseconds per inference at the opt shapes: a CUDA graph's replays on a GPU (eager launches when the
    engine cannot be captured), wall time of infer() on the CPU; the median of 5 runs."""
    ctx = engine.create_execution_context()
    feeds = _feeds(engine, device)
    first = ctx.infer(feeds)
    if device.type != "cuda":
        def run():
            ctx.infer(feeds)
        sync = lambda: None  # noqa: E731
    else:
        from ..runtime.graphs import context_graph
        try:
            run, _ = context_graph(ctx, feeds, first)
        except Exception:  # noqa: BLE001 - not capturable: eager launches on a side stream
            s = torch.cuda.Stream()

            def run():
                ctx.execute_async(s)
        sync = torch.cuda.synchronize
    run()
    sync()
    t0 = time.perf_counter()
    run()
    sync()
    one = max(time.perf_counter() - t0, 1e-6)
    n = max(1, min(200, int(seconds / 5 / one)))
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            run()
        sync()
        runs.append((time.perf_counter() - t0) / n * 1e3)
    return statistics.median(runs)


def choose(quantized, proto, cfg, device, build):
    """The engine to return: `quantized`, or the FP16 form's engine (built by build(cfg, proto)) when that is
    faster by more than MARGIN. Either carries plan.meta['engine_choice'] with both times and the reason."""
    from .quant_report import quant_report
    choice = {"quantized_ms": None, "fp16_form_ms": None, "chosen": "quantized"}
    form = fp16_form(proto)
    if form is None:
        choice["why"] = "the Q/DQ cannot all be taken out (a DQ of a graph input or an integer op): no FP16 form"
        quantized.plan.meta["engine_choice"] = choice
        return quantized
    fcfg = dataclasses.replace(cfg, fp16=True, bf16=False, int8=False, fp8=False, strongly_typed=False,
                               fp16_engine_check="never")
    try:
        other = build(fcfg, form)
        choice["quantized_ms"] = round(time_engine(quantized, device), 4)
        choice["fp16_form_ms"] = round(time_engine(other, device), 4)
    except Exception as e:  # noqa: BLE001 - the check must not fail a build that succeeded: keep the quantized
        msg = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        choice["why"] = f"the FP16 form did not build or run ({type(e).__name__}: {msg}): no comparison"
        log.warning("Q/DQ model: the FP16 engine to compare with did not build or run (%s: %s); keeping the "
                    "quantized engine", type(e).__name__, msg)
        quantized.plan.meta["engine_choice"] = choice
        return quantized
    q, f = choice["quantized_ms"], choice["fp16_form_ms"]
    if f < q * (1 - MARGIN):
        choice.update(chosen="fp16_form", why=(
            f"the FP16 engine without the Q/DQ ({f:.3f} ms) is faster than the quantized one ({q:.3f} ms); "
            "--precisionConstraints=obey keeps the Q/DQ"), quantized_report=quant_report(quantized))
        log.warning("Q/DQ model: the quantized engine (%.3f ms) is slower than the FP16 engine without its Q/DQ "
                    "(%.3f ms): keeping the FP16 one (--precisionConstraints=obey keeps the Q/DQ)", q, f)
        other.plan.meta["engine_choice"] = choice
        return other
    choice["why"] = f"faster than the FP16 engine without the Q/DQ ({q:.3f} vs {f:.3f} ms)"
    log.info("Q/DQ model: the quantized engine (%.3f ms) is kept over the FP16 engine without its Q/DQ (%.3f ms)",
             q, f)
    quantized.plan.meta["engine_choice"] = choice
    return quantized
