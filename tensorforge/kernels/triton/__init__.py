"""The triton tactic source: generated kernels for fused pointwise layers, softmax, layernorm /
rmsnorm (+ epilogue), reductions with pointwise prologues, and Conv/Gemm/MatMul epilogues (the
torch op, then one generated pointwise kernel). CUDA only.

Code generation (codegen, pointwise, rowwise) is pure string work and never imports triton, so
its golden tests run anywhere; only launch.compile_source imports it, at the first call."""
from __future__ import annotations

import importlib.util
import math

from ...ir.attrs import from_json
from ...ops import registry
from .. import register_source
from ..aten.common import inp

ROW_TYPES = ("fused.Softmax", "fused.LogSoftmax", "fused.LayerNorm", "fused.RMSNorm", "fused.Reduce")
EPILOGUE_TYPES = {"fused.ConvAct": 3, "fused.GemmAct": 3, "fused.MatMulAct": 3}
_OFFERS: list = []   # candidates functions of the kernel-family modules (gemm, conv, attention, pool)
_VARIANTS: dict = {}  # tactic name -> factory(layer, attrs, opset, device, params, ref) -> runner


def offers(fn):
    """Register a kernel family's candidates function `fn(layer, device) -> [tactic, ...]`."""
    _OFFERS.append(fn)
    return fn


def variant(name: str):
    """Register the runner factory of tactic `name`: f(layer, attrs, opset, device, params, ref)."""
    def deco(fn):
        _VARIANTS[name] = fn
        return fn
    return deco


def _tactic(name, **params):
    return {"source": "triton", "name": name, "params": params}


def _trailing(axes) -> bool:
    ax = sorted(int(a) for a in axes)
    return bool(ax) and all(a < 0 for a in ax) and ax == list(range(-len(ax), 0))


def candidates(layer, device) -> list[dict]:
    """Triton tactics for the layer types the generated kernels cover (CUDA with triton only)."""
    if getattr(device, "type", str(device)) != "cuda" or importlib.util.find_spec("triton") is None:
        return []
    extra = [x for fn in _OFFERS for x in fn(layer, device)]
    return extra + _generated(layer)


def _generated(layer) -> list[dict]:
    """Tactics of the generated pointwise / row / epilogue kernels."""
    t, a = layer.type, layer.attrs
    if t == "fused.Pointwise":
        return [_tactic("pointwise", BLOCK=1024, num_warps=4), _tactic("pointwise", BLOCK=2048, num_warps=8)]
    if t in ("fused.Softmax", "fused.LogSoftmax") and _trailing(a.get("axes", [-1])):
        return [_tactic("softmax", num_warps=4), _tactic("softmax", num_warps=8)]
    if t in ("fused.LayerNorm", "fused.RMSNorm"):
        return _norm_tactics(layer)
    if t == "fused.Reduce" and _trailing(a["axes"]) and a["kind"] != "prod":
        return [_tactic("reduce", num_warps=4)]
    if t in EPILOGUE_TYPES and a.get("epilogue"):
        return [_tactic("epilogue", BLOCK=1024, num_warps=4)]
    return []


# row-length tier (next pow2, up to) -> level-3 and level-4 (ROWS, num_warps); at <= 1024 ROWS is
# given for 1024-element rows and scales up for shorter ones (same elements per program, <= 64 rows)
_NORM_CFGS = (
    (1024, [(4, 4), (8, 8), (2, 4), (1, 4)], [(16, 8), (4, 8), (8, 4), (2, 2), (1, 2)]),
    (2048, [(2, 8), (1, 8), (1, 4), (4, 8)], [(8, 8), (2, 4), (1, 16), (4, 16)]),
    (4096, [(1, 8), (2, 8), (1, 16), (1, 4)], [(4, 8), (2, 16), (4, 16)]),
    (8192, [(1, 8), (1, 16), (1, 4)], [(2, 8), (2, 16)]),
    (None, [(1, 8), (1, 4)], [(1, 16), (2, 8)]),  # looped (rows over 8192 elements)
)


def _norm_tactics(layer) -> list[dict]:
    """"norm" configs for the layer's row length (shape_info; a safe default list without it)."""
    shape = (inp(layer, 0) or {}).get("shape")
    if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
        return [_tactic("norm", ROWS=1, num_warps=4), _tactic("norm", ROWS=4, num_warps=4),
                _tactic("norm", ROWS=1, num_warps=8)]
    axis = int(layer.attrs.get("axis", -1)) % len(shape)
    n, m = math.prod(shape[axis:]), math.prod(shape[:axis])
    bn = 16
    while bn < n:
        bn *= 2
    tier = next(t for t in _NORM_CFGS if t[0] is None or bn <= t[0])
    scale = max(1, 1024 // bn) if tier[0] == 1024 else 1
    most = min(64, 1 << (m - 1).bit_length())  # more rows than M would only repeat a config

    def rows(cfgs):
        return [(min(most, r * scale), w) for r, w in cfgs]
    l3 = rows(tier[1])
    if m < 1024:  # few rows: more programs first (the level-0 pick)
        l3.sort(key=lambda c: c[0])
    out, seen = [], set()
    for lvl, cfgs in ((3, l3), (4, rows(tier[2]))):
        for r, w in cfgs:
            if (r, w) not in seen:
                seen.add((r, w))
                out.append(dict(_tactic("norm", ROWS=r, num_warps=w), **({"level": 4} if lvl == 4 else {})))
    return out


def factory(layer, opset, device):
    """fn(inputs) -> [outputs] for a triton tactic (compiles on the first call per signature)."""
    from . import runners
    attrs = {k: from_json(v) for k, v in layer.attrs.items()}
    op = registry.get(layer.type, layer.domain, layer.name)

    def ref(inputs):
        return op.run(inputs, attrs, opset)
    name, params = layer.tactic.get("name"), layer.tactic.get("params", {})
    if name in _VARIANTS:
        from ..aten import _layouts  # in_nhwc / out_nhwc (layout chains; tactics with nhwc_ok)
        return _layouts(_VARIANTS[name](layer, attrs, opset, device, params, ref), params)
    if name == "pointwise":
        return runners.PointwiseRunner(attrs, params, ref)
    if name == "softmax":
        return runners.SoftmaxRunner(attrs, params, ref, layer.type == "fused.LogSoftmax")
    if name == "norm":
        return runners.NormRunner(attrs, params, ref, layer.type == "fused.RMSNorm")
    if name == "reduce":
        return runners.ReduceRunner(attrs, params, ref)
    if name == "epilogue":
        bare = {k: v for k, v in attrs.items() if k != "epilogue"}

        def anchor(inputs):
            return op.run(inputs, bare, opset)[0]
        return runners.EpilogueRunner(attrs, params, ref, anchor, EPILOGUE_TYPES[layer.type])
    from ...errors import EngineFormatError
    raise EngineFormatError(f"layer '{layer.name}': unknown triton tactic '{name}'")


register_source("triton", factory, candidates)

# kernel families (each module registers @offers / @variant; triton itself is imported lazily inside)
from . import families  # noqa: E402,F401
