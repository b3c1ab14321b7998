"""Plugin Triton kernels as device code: tactic ("plugin", "device_kernel") whose params describe
the launch as data (kernel key and name, argument list, grid, outputs, constexprs), so an engine
runs them from its stored cubins without the plugin module. The kernel source lives only in the
process that loaded the plugin (build time); the engine file holds the cubins, never the source.

Launch spec (params): args  ["in0", "out0", "numel0", 7, ...]   tensors, element counts, ints
                      grid  [["cdiv", "numel0", 1024], 1, ...]  up to 3 dims
                      outputs [0, ...]  output i has the shape and dtype of input outputs[i]
                      meta  {"BLOCK": 1024}                     constexprs"""
from __future__ import annotations

import torch

from ..errors import TensorforgeError
from .registry import tactic_family

SOURCES: dict = {}  # kernel key -> (source, kernel name): filled by the plugin module's registration


def _value(token, ins, outs):
    """One launch argument or grid term from its data form."""
    if isinstance(token, int):
        return token
    if isinstance(token, list) and len(token) == 3 and token[0] == "cdiv":
        a, b = _value(token[1], ins, outs), _value(token[2], ins, outs)
        return -(-a // b)
    if isinstance(token, str):
        for prefix, pick in (("numel", lambda i: ins[i].numel()), ("in", lambda i: ins[i]),
                             ("out", lambda i: outs[i])):
            if token.startswith(prefix) and token[len(prefix):].isdigit():
                return pick(int(token[len(prefix):]))
    raise TensorforgeError(f"plugin kernel launch: bad argument {token!r}")


def device_kernel(layer, attrs, opset, device, params):
    """fn(inputs) -> outputs launching the plugin kernel (stored cubin, else Triton with the source)."""
    from .triton.launch import Kernel, MissingKernel
    key, name = params["key"], params["kernel"]
    src = SOURCES.get(key, ("", name))[0]
    kernel = Kernel(src, name, key)
    meta = dict(params.get("meta", {}))

    def fn(inputs):
        ins = [t.contiguous() for t in inputs]
        outs = [torch.empty_like(ins[i]) for i in params["outputs"]]
        args = [_value(a, ins, outs) for a in params["args"]]
        grid = tuple(_value(g, ins, outs) for g in params["grid"])
        if not src:
            from .driver import current_store
            if current_store() is None:
                raise MissingKernel(f"layer '{layer.name}': plugin kernel '{name}' has no stored cubin here "
                                    f"(engines built on a GPU store it); load plugin module "
                                    f"{params.get('module') or ''} to compile it")
        kernel[grid](*args, **meta)
        return outs
    return fn


@tactic_family("plugin", {"device_kernel": device_kernel}, library="PLUGIN", needs_shapes=False)
def plugin_device_candidates(layer, shapes, device):
    """Offered by each plugin's own family (tensorforge.plugin), never here."""
    return []
