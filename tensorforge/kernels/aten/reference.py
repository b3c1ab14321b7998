"""Tactic "reference": the op's reference implementation (the oracle; every layer can run it)."""
from __future__ import annotations

from ...errors import EngineFormatError
from ...ops import registry as ops
from ..registry import reference as reference_tactic, tactic_family


def reference_kernel(layer, attrs, opset, device, params):
    """fn(inputs) -> outputs running the op's reference on `device`."""
    if layer.domain not in ("", "ai.onnx", "com.microsoft") and not ops.has(layer.type, layer.domain):
        raise EngineFormatError(f"layer '{layer.name}' runs plugin op '{layer.domain}::{layer.type}' on its "
                                "torch reference (host code): load its plugin module first "
                                "(tensorforge.plugin.load / --staticPlugins)")
    op = ops.get(layer.type, layer.domain, layer.name)
    run = op.run
    n_out = len(layer.outputs)

    def fn(inputs):
        return run(inputs, attrs, opset, n_out, device)
    if "eager_reason" in op.extra:  # host syncs inside (control flow): never captured in a CUDA graph
        fn.capturable = False
    return fn


@tactic_family("aten", {"reference": reference_kernel}, library="ATEN", needs_shapes=False)
def reference_candidates(layer, shapes, device):
    """Every layer has its reference (kernels.candidates puts it last)."""
    return [reference_tactic()]
