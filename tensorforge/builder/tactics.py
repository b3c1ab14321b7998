"""Tactic selection: for every kernel layer, enumerate candidate kernels, check them against the
reference, time them and keep the fastest (the timing cache remembers timings across builds).

Builder optimization levels (values above 5 act as 5):
  0  no timing: the first (heuristic-preferred) candidate; the timing cache is ignored
  1  time the top 2 candidates in heuristic order
  2  time the top 4 candidates
  3  time all default candidates (the default)
  4  also tactics of the extended spaces (tactics tagged level 4, e.g. more Triton configs)
  5  everything (tactics tagged level 5)
A layer with a single candidate is never timed. Identical layers (same signature) are timed once.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import time

import torch

from .. import kernels
from ..errors import TensorforgeError
from ..progress import Progress
from ..runtime.binding import bind_symbols
from ..runtime.plan import EnginePlan
from . import autotune as at
from .tactic_check import check as check_tactic, inner_flip_atol
from .config import BuilderConfig
from .layout import plan_layouts
from .precompile import warm_compile
from .timing_cache import TimingCache, environment, make_key

log = logging.getLogger("tensorforge")
REFERENCE = kernels.reference()  # compared with, never handed out (dict(REFERENCE) is)
TOP_K = {1: 2, 2: 4}
TIMER = None  # tests may inject fn(layer, tactic, bench) -> ms instead of real timing


BRANCH_GRAPHS = "run-time condition read on the host (one sync); the taken branch replayed from its own CUDA graph"


def _eager_reasons(plan) -> None:
    """The layer info's reason why a layer left the whole-plan CUDA graph, as its chosen tactic runs it."""
    eager = plan.meta.get("eager_layers") or {}
    for lay in plan.layers:
        if lay.name in eager and lay.type == "If" and (lay.tactic or {}).get("name") == "if_graphs":
            eager[lay.name] = BRANCH_GRAPHS


def select_tactics(plan: EnginePlan, weights: dict, cfg: BuilderConfig, device) -> EnginePlan:
    """Fill layer.tactic for every kernel layer; lays weights out (e.g. channels-last) in place."""
    t0 = time.perf_counter()
    level = max(0, min(5, int(cfg.opt_level)))
    path = cfg.timing_cache if level > 0 else None
    cache = TimingCache.load(path) if path else TimingCache()
    sel = Selector(plan, weights, cfg, device, level, cache)
    todo = [lay for lay in plan.layers if lay.mode == "kernel"]
    if TIMER is None:
        warm_compile(sel, todo)
    # a progress line only on a terminal
    with _math_modes(cfg, device), Progress("Building: selecting tactics", len(todo), "layers") as bar:
        for i, lay in enumerate(todo, 1):
            lay.tactic = sel.select(lay)
            bar.update(i)
    _eager_reasons(plan)
    apply_layouts(plan, weights)
    plan_layouts(plan)
    if path:
        try:
            cache.save(path)
        except (OSError, TensorforgeError) as e:  # the engine is fine; the cache file is left as it was
            log.warning("Could not write timing cache to %s: %s", path, getattr(e, "strerror", None) or e)
    sel.stats["time_s"] = round(time.perf_counter() - t0, 3)
    plan.meta["tactic_selection"] = sel.stats
    if sel.quant_times:
        plan.meta["quant_times"] = sel.quant_times
    log.info("Tactic selection (level %d): %d layers, %d signatures timed, %d cache hits, %.3f s",
             level, sel.stats["layers"], sel.stats["timed"], sel.stats["cache_hits"], sel.stats["time_s"])
    return plan


class Selector:
    """Per-build selection state: opt-shape environment, timed signatures, device weights."""

    def __init__(self, plan, weights, cfg, device, level, cache):
        self.plan, self.weights, self.cfg, self.device = plan, weights, cfg, device
        self.level, self.cache = level, cache
        self.env = opt_env(plan)
        self.tf32 = bool(cfg.tf32) and getattr(device, "type", "cpu") == "cuda"
        self.libs_off = disabled_libraries(cfg.tactic_sources)
        self.hw = environment(device)
        self.memo: dict[str, dict] = {}
        self.dev_weights: dict = {}
        self.stats = {"opt_level": level, "layers": 0, "timed": 0, "cache_hits": 0, "tactics_timed": 0,
                      "failed": 0}
        self.quant_times: dict = {}  # quantized layer -> {tactic: ms} (the quantization report)

    def candidates(self, lay, info) -> list[dict]:
        """Candidates valid for the layer (shapes `info`) at this level, heuristic order, reference last."""
        cands = kernels.candidates(lay, info, self.device)
        cands = [c for c in cands if c == REFERENCE or kernels.library_of(c) not in self.libs_off]
        cands = [c for c in cands if kernels.level_of(c) <= max(self.level, 1)]
        cands = [{k: v for k, v in c.items() if k != "level"} for c in cands]
        if self.cfg.precision_constraints == "obey":  # obey Q/DQ strictly: no FP16 form of quantized layers
            cands = [c for c in cands if c.get("params", {}).get("form") != "fp16"]
        if self.level in TOP_K:
            cands = cands[:TOP_K[self.level]]
        return cands

    def untimed(self, lay):
        """(info, candidates, memo key, {tactic key: candidate}, cached timings, candidates to time) of a
        layer; key None when nothing is to be timed (level 0, one candidate, no shapes)."""
        info = at.shape_info(self.plan, lay, self.env, self.weights)
        cands = self.candidates(lay, info)
        if self.level == 0 or len(cands) == 1 or info is None:
            return info, cands, None, {}, {}, []
        key = make_key(at.signature(lay, info, self.tf32), self.hw)
        by_key = {kernels.tactic_key(c): c for c in cands}
        entry = self.cache.lookup(key) or {}
        known = {k: ms for k, ms in entry.get("timings", {}).items() if k in by_key}
        return info, cands, key, by_key, known, [c for k, c in by_key.items() if k not in known]

    def select(self, lay) -> dict:
        """The tactic for one kernel layer."""
        self.stats["layers"] += 1
        info, cands, key, by_key, known, todo = self.untimed(lay)
        if key is None:
            return copy.deepcopy(cands[0])
        if key in self.memo:
            return copy.deepcopy(self.memo[key])
        if todo and getattr(self.cfg, "error_on_timing_cache_miss", False) and self.cfg.timing_cache:
            raise TensorforgeError(f"timing cache miss for layer '{lay.name}' (--errorOnTimingCacheMiss)")
        fresh = self.measure(lay, info, todo) if todo else {}
        self.stats["cache_hits" if not todo else "timed"] += 1
        timings = {**known, **fresh}
        best = at.choose(timings)
        chosen = by_key[best] if best is not None else dict(REFERENCE)
        if fresh:
            self.cache.update(key, {"tactic": chosen, "ms": timings.get(best), "timings": fresh,
                                    "layer": f"{lay.type} {lay.precision}"})
        self.memo[key] = chosen
        if lay.type.startswith("fused.Q"):
            self.quant_times[lay.name] = {at.display(by_key[k]): ms for k, ms in timings.items()}
        log.debug("[Layer] %s: %s -> %s%s", lay.name, ", ".join(
            f"{at.display(by_key[k])} {_fmt_ms(ms)}" for k, ms in timings.items()), at.display(chosen),
            "" if todo else " (timing cache)")
        return copy.deepcopy(chosen)

    def measure(self, lay, info, todo) -> dict:
        """{tactic_key: ms or None} for candidates not yet timed (None: failed or mismatched)."""
        bench = at.LayerBench(self.plan, lay, info, self.weights, self.device, self.dev_weights)
        ref_fn = at.layer_fn(lay, REFERENCE, self.plan.opset, self.device)
        tol = at.tolerance(lay, self.tf32)
        steps, flip = 0, inner_flip_atol(lay)
        if lay.type.startswith("fused.Q") or quantized_output(self.plan, lay):
            # a quantized output (int8 / float8, a fused Q) may move a rounding tie by one step when a
            # kernel sums in another order: compared in steps (tactic_check.quantized_match), float outputs of a
            # quantized layer within 1 %
            tol, steps = max(tol, 1e-2), 1
        out = {}
        for c in todo:
            k = kernels.tactic_key(c)
            b = bench.in_layout(at.wants_channels_last(c))
            try:
                fn = ref_fn if c == REFERENCE else at.layer_fn(lay, c, self.plan.opset, self.device)
                if c != REFERENCE:
                    ok, err = check_tactic(fn, ref_fn, b, tol, steps, flip)
                    if not ok:
                        log.warning("layer '%s': tactic %s does not match the reference (error %.3g > %.3g);"
                                    " skipped", lay.name, at.display(c), err, tol)
                        out[k] = None
                        self.stats["failed"] += 1
                        continue
                out[k] = self.time(lay, c, fn, b)
                self.stats["tactics_timed"] += 1
            except Exception as e:  # noqa: BLE001 - a tactic that cannot run is skipped
                if c == REFERENCE:
                    raise
                log.warning("layer '%s': tactic %s failed (%s: %s); skipped", lay.name, at.display(c),
                            type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "")
                out[k] = None
                self.stats["failed"] += 1
        return out

    def time(self, lay, tactic, fn, bench) -> float:
        if TIMER is not None:
            return float(TIMER(lay, tactic, bench))
        iters = max(1, int(self.cfg.avg_timing))
        takes_out = kernels.writes_in_place(tactic)
        if getattr(self.device, "type", "cpu") == "cuda":  # outputs copied as the runtime copies them
            copy = self.cfg.activation_memory != "direct" or any(o in self.plan.outputs for o in lay.outputs)
            return at.time_cuda(fn, bench, iters, copy=copy, takes_out=takes_out)
        return at.time_cpu(fn, bench, iters, takes_out=takes_out)


QUANT_DTYPES = ("int8", "uint8", "float8e4m3fn", "float8e5m2", "float8e4m3fnuz", "float8e5m2fnuz")


def quantized_output(plan, lay) -> bool:
    """Whether a layer writes a quantized tensor (a QuantizeLinear fused into it: int8 / uint8 / float8)."""
    return any(str(plan.tensors[o].dtype) in QUANT_DTYPES for o in lay.outputs if o in plan.tensors)


def disabled_libraries(spec) -> set:
    """Disabled tactic libraries from {NAME: enabled} or ["+NAME", "-NAME", ...]."""
    if not spec:
        return set()
    if isinstance(spec, dict):
        return {k.upper() for k, on in spec.items() if not on}
    return {s[1:].upper() for s in spec if isinstance(s, str) and s.startswith("-")}


def opt_env(plan) -> dict:
    """Symbol bindings at profile 0's opt shapes (tactics are tuned there)."""
    shapes = {}
    prof = plan.profiles[0].shapes if plan.profiles else {}
    for n in plan.inputs:
        spec = plan.tensors[n].shape
        shapes[n] = tuple(prof[n][1]) if n in prof else tuple(d if isinstance(d, int) else 1 for d in spec)
    return bind_symbols(plan, shapes)


def apply_layouts(plan, weights) -> None:
    """Lay weights out once as the chosen tactics want them (param weight_layout)."""
    for lay in plan.layers:
        if lay.tactic.get("params", {}).get("weight_layout") == "channels_last":
            name = lay.inputs[1]
            w = weights.get(name)
            if w is not None and w.dim() == 4:
                weights[name] = w.contiguous(memory_format=torch.channels_last)


@contextlib.contextmanager
def _math_modes(cfg, device):
    """Time under the math modes the engine will run with (TF32 on/off)."""
    if getattr(device, "type", "cpu") != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(cfg.tf32)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _fmt_ms(ms):
    return "failed" if ms is None else f"{ms:.4f} ms"
