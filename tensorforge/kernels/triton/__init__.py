"""The triton tactic source: generated kernels for fused pointwise layers, softmax, layernorm /
rmsnorm (+ epilogue), reductions with pointwise prologues, and Conv/Gemm/MatMul epilogues (the
torch op, then one generated pointwise kernel). CUDA only.

Code generation (codegen, pointwise, rowwise) is pure string work and never imports triton, so
its golden tests run anywhere; only launch.compile_source imports it, at the first call."""
from __future__ import annotations

import importlib.util

from ...ir.attrs import from_json
from ...ops import registry
from .. import register_source

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
        return [_tactic("norm", num_warps=4), _tactic("norm", num_warps=8)]
    if t == "fused.Reduce" and _trailing(a["axes"]) and a["kind"] != "prod":
        return [_tactic("reduce", num_warps=4)]
    if t in EPILOGUE_TYPES and a.get("epilogue"):
        return [_tactic("epilogue", BLOCK=1024, num_warps=4)]
    return []


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
