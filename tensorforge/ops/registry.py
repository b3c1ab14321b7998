"""The op registry: one OpDef per op type, filled by decorators in the ops modules.

Each op has:
  reference(*inputs, **attrs) -> Tensor | tuple[Tensor]   torch implementation (oracle + CPU path)
  infer(node) -> list[(dtype, shape)]                       dtype/shape rule over IR Values
  symval(node, *vals) -> list[np.ndarray(object)]           optional: symbolic value propagation
and flags: host_inputs (indices read on the host, e.g. Reshape's shape), view (output 0 is a view
of input 0), data_dependent (output shape depends on input values).

Opset-dependent semantics are handled inside the functions: they receive the attributes of the
node and the inputs actually present (e.g. Squeeze axes as attribute before opset 13, as an
input after). A function that needs the opset takes a keyword `_opset`. A function whose inputs are
all host inputs (Range, ConstantOfShape) takes a keyword `_device`: the device its result lives on
(None = CPU, e.g. when constant folding), so it builds the result there without a host copy.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

from ..errors import UnsupportedOpError


@dataclass
class OpDef:
    op: str
    domain: str = ""
    reference: Callable | None = None
    infer: Callable | None = None
    symval: Callable | None = None
    host_inputs: tuple = ()
    view: bool = False
    data_dependent: bool = False
    deterministic: bool = True
    wants_opset: bool = False
    wants_n_outputs: bool = False
    wants_device: bool = False
    symval_always: bool = False
    extra: dict = field(default_factory=dict)

    def run(self, inputs, attrs, opset: int, n_outputs: int | None = None, device=None):
        """Call the reference with attributes (and the opset / output count / device when it asks)."""
        kw = dict(attrs)
        if self.wants_opset:
            kw["_opset"] = opset
        if self.wants_n_outputs and n_outputs is not None:
            kw["_n_outputs"] = n_outputs
        if self.wants_device and device is not None:
            kw["_device"] = device
        out = self.reference(*inputs, **kw)
        return out if isinstance(out, (tuple, list)) else (out,)


_REGISTRY: dict[tuple[str, str], OpDef] = {}
_DOMAIN_ALIASES = {"ai.onnx": "", "com.microsoft": "com.microsoft"}


def _key(op: str, domain: str) -> tuple[str, str]:
    return (_DOMAIN_ALIASES.get(domain, domain), op)


def _get_or_create(op, domain="") -> OpDef:
    k = _key(op, domain)
    if k not in _REGISTRY:
        _REGISTRY[k] = OpDef(op=op, domain=k[0])
    return _REGISTRY[k]


def reference(*ops: str, domain: str = "", host_inputs=(), view=False, data_dependent=False,
              deterministic=True):
    """Register a torch reference implementation for one or more op types."""
    def deco(fn):
        try:
            params = inspect.signature(fn).parameters
        except (ValueError, TypeError):  # builtins (torch.add) have no signature
            params = {}
        wants, wants_n = "_opset" in params, "_n_outputs" in params
        for op in ops:
            d = _get_or_create(op, domain)
            d.reference, d.wants_opset, d.wants_n_outputs = fn, wants, wants_n
            d.wants_device = "_device" in params
            d.host_inputs, d.view = tuple(host_inputs), view
            d.data_dependent, d.deterministic = data_dependent, deterministic
        return fn
    return deco


def infer(*ops: str, domain: str = ""):
    """Register a dtype/shape inference rule `fn(node) -> [(dtype, shape), ...]`."""
    def deco(fn):
        for op in ops:
            _get_or_create(op, domain).infer = fn
        return fn
    return deco


def symval(*ops: str, domain: str = "", always: bool = False):
    """Register symbolic value propagation `fn(node, *vals) -> [object ndarray, ...]`.

    always=True: run even when the inputs' contents are unknown (Shape, Size read only shapes)."""
    def deco(fn):
        for op in ops:
            d = _get_or_create(op, domain)
            d.symval, d.symval_always = fn, always
        return fn
    return deco


def get(op: str, domain: str = "", node_name: str | None = None) -> OpDef:
    """The OpDef of an op; a one-line UnsupportedOpError when it is not implemented."""
    _load_all()
    d = _REGISTRY.get(_key(op, domain))
    if d is None or d.reference is None or d.infer is None:
        where = f" (node '{node_name}')" if node_name else ""
        dom = f"{domain}::" if domain not in ("", "ai.onnx") else ""
        raise UnsupportedOpError(
            f"unsupported op '{dom}{op}'{where}; `tensorforge ops` prints the supported list")
    return d


def has(op: str, domain: str = "") -> bool:
    _load_all()
    d = _REGISTRY.get(_key(op, domain))
    return d is not None and d.reference is not None and d.infer is not None


def supported_ops() -> list[str]:
    _load_all()
    return sorted((f"{d}::{o}" if d else o) for (d, o), v in _REGISTRY.items()
                  if v.reference is not None and v.infer is not None)


_loaded = False


def _load_all():
    """Import every ops module once so their decorators run."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib
    import pkgutil
    from .. import ops as pkg
    for m in pkgutil.iter_modules(pkg.__path__):
        if m.name not in ("registry", "common"):
            importlib.import_module(f"{pkg.__name__}.{m.name}")
