"""The aten tactic source: layers run through the ops' torch implementations (cuBLAS/cuDNN on
CUDA, ATen CPU kernels on CPU)."""
from __future__ import annotations

from ...ir.attrs import from_json
from ...ops import registry
from .. import register_source


def _factory(layer, opset, device):
    op = registry.get(layer.type, layer.domain, layer.name)
    attrs = {k: from_json(a) for k, a in layer.attrs.items()}
    run = op.run

    def fn(inputs):
        return run(inputs, attrs, opset)
    return fn


def _candidates(layer, device):
    return [{"source": "aten", "name": "reference", "params": {}}]


register_source("aten", _factory, _candidates)
