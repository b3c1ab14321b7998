"""The "plugin" tactic source: one tactic family per plugin op, one tactic per implementation."""
from __future__ import annotations

import os

from ..kernels import registry as tactics
from ..kernels.device import is_cuda


def _factory(impl):
    """factory(layer, attrs, opset, device, params) -> fn(inputs) -> outputs for one implementation."""
    def factory(layer, attrs, opset, device, params):
        def fn(inputs):
            out = impl.fn(*inputs, **attrs)
            return list(out) if isinstance(out, (tuple, list)) else [out]
        return fn
    return factory


def _usable(impl, device) -> bool:
    """Triton implementations run on CUDA devices (or on the CPU under Triton's interpreter)."""
    return impl.kind not in ("triton", "device") or is_cuda(device) or os.environ.get("TRITON_INTERPRET") == "1"


def refresh(plugin) -> None:
    """(Re-)register the plugin's family with its current implementations."""
    for fam in [f for f in tactics.families() if f.name == f"plugin {plugin.name}"]:
        tactics.unregister(fam)
    factories = {plugin.tactic_name(n): _factory(i) for n, i in plugin.impls.items() if i.kind != "device"}

    def candidates(layer, shapes, device):
        if (layer.type, layer.domain) != (plugin.op, plugin.domain):
            return []
        return [plugin.tactic(n) for n, i in plugin.impls.items()
                if layer.precision in i.precisions and _usable(i, device)]
    tactics.register(tactics.Family(f"plugin {plugin.name}", "plugin", factories, candidates, "PLUGIN",
                                    needs_shapes=False))
