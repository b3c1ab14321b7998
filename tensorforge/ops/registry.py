"""The op registry: one OpDef per op type, filled by decorators in the op family modules.

Each op has:
  reference(*inputs, **attrs) -> Tensor | tuple[Tensor]   torch implementation (oracle + CPU path)
  infer(node) -> list[(dtype, shape)]                       dtype/shape rule over IR Values
  symval(node, *vals) -> list[np.ndarray(object)]           optional: symbolic value propagation
and flags: host_inputs (indices read on the host, e.g. Reshape's shape), view (output 0 is a view
of input 0), data_dependent (output shape depends on input values).

A rule is keyed by (domain, op, since): `since` is the first opset it applies to (default 1); a
model of opset N uses the rule with the largest since <= N (`OpDef.run`, `infer_at`, `symval_at`).
Register a new `since` where ONNX changed an op's semantics and a separate function is clearer;
small differences stay inside one function: they receive the attributes of the node and the inputs
actually present (e.g. Squeeze axes as attribute before opset 13, as an input after), and a function
that needs the opset takes a keyword `_opset`. A function whose inputs are all host inputs (Range,
ConstantOfShape) takes a keyword `_device`: the device its result lives on (None = CPU, e.g. when
constant folding), so it builds the result there without a host copy. Registering the same
(domain, op, since) twice for one kind of rule raises DuplicateOpError.
"""
from __future__ import annotations

import importlib
import inspect
import sys
from dataclasses import dataclass, field
from typing import Callable

from ..errors import TensorforgeError, UnsupportedOpError

# The modules whose decorators fill the registry, imported on first use (see _load_all).
MODULES = (
    "activation", "math", "arith", "logical", "conv", "pool", "matmul", "norm", "softmax", "reduce",
    "shape", "tensor", "indexing", "selection", "generator", "image", "resize", "signal", "detection",
    "rnn", "quant", "attention", "training", "ml", "control_flow", "scan", "sequence", "optional",
    "fused.epilogue", "fused.attention", "fused.norm", "fused.quant", "fused.se", "fused.concat",
    "contrib.activation", "contrib.norm", "contrib.conv", "contrib.qlinear", "contrib.dynquant",
    "contrib.attention", "contrib.nbits",
)


class DuplicateOpError(TensorforgeError):
    """A second rule of one kind registered for the same (domain, op, since)."""


@dataclass
class Reference:
    """One torch implementation and the keywords it asks for."""
    fn: Callable
    wants_opset: bool = False
    wants_n_outputs: bool = False
    wants_device: bool = False


def _at(rules: dict, opset: int | None):
    """The rule with the largest since <= opset (the newest when opset is None)."""
    if not rules:
        return None
    keys = [s for s in rules if opset is None or s <= opset]
    return rules[max(keys)] if keys else None


@dataclass
class OpDef:
    op: str
    domain: str = ""
    references: dict = field(default_factory=dict)  # since -> Reference
    infers: dict = field(default_factory=dict)      # since -> fn(node)
    symvals: dict = field(default_factory=dict)     # since -> fn(node, *vals)
    host_inputs: tuple = ()
    view: bool = False
    data_dependent: bool = False
    deterministic: bool = True
    symval_always: bool = False
    defined_in: set = field(default_factory=set)    # modules that registered its rules (one)
    extra: dict = field(default_factory=dict)

    @property
    def reference(self) -> Callable | None:
        """The newest reference function."""
        r = _at(self.references, None)
        return r.fn if r is not None else None

    @property
    def infer(self) -> Callable | None:
        """The newest inference rule (`infer_at(opset)` when rules differ by opset)."""
        return _at(self.infers, None)

    @property
    def symval(self) -> Callable | None:
        """The newest symbolic-value rule (`symval_at(opset)` when rules differ by opset)."""
        return _at(self.symvals, None)

    def infer_at(self, opset: int) -> Callable | None:
        return _at(self.infers, opset)

    def symval_at(self, opset: int) -> Callable | None:
        return _at(self.symvals, opset)

    def run(self, inputs, attrs, opset: int, n_outputs: int | None = None, device=None):
        """Call the reference for `opset` with attributes (and the opset / output count / device when
        it asks)."""
        ref = _at(self.references, opset)
        if ref is None:
            raise UnsupportedOpError(f"op '{self.op}' has no reference for opset {opset}")
        kw = dict(attrs)
        if ref.wants_opset:
            kw["_opset"] = opset
        if ref.wants_n_outputs and n_outputs is not None:
            kw["_n_outputs"] = n_outputs
        if ref.wants_device and device is not None:
            kw["_device"] = device
        out = ref.fn(*inputs, **kw)
        return out if isinstance(out, (tuple, list)) else (out,)


_REGISTRY: dict[tuple[str, str], OpDef] = {}
_DOMAIN_ALIASES = {"ai.onnx": "", "com.microsoft": "com.microsoft"}


def _key(op: str, domain: str) -> tuple[str, str]:
    return (_DOMAIN_ALIASES.get(domain, domain), op)


def _get_or_create(op, domain="", module=None) -> OpDef:
    k = _key(op, domain)
    if k not in _REGISTRY:
        _REGISTRY[k] = OpDef(op=op, domain=k[0])
    if module is not None:
        _REGISTRY[k].defined_in.add(module)
    return _REGISTRY[k]


def _caller_module() -> str | None:
    """The module that called a decorator factory (frame 2 up: factory <- caller)."""
    return sys._getframe(2).f_globals.get("__name__")


def _put(d: OpDef, rules: dict, kind: str, since: int, value) -> None:
    """Add one rule; a second one for the same (domain, op, since) is a programming error."""
    if since in rules:
        old = rules[since]
        old = getattr(old, "fn", old)
        dom = f"{d.domain}::" if d.domain else ""
        raise DuplicateOpError(
            f"@{kind} for '{dom}{d.op}' (since opset {since}) registered twice: "
            f"{getattr(old, '__module__', '?')}.{getattr(old, '__qualname__', old)} and "
            f"{getattr(getattr(value, 'fn', value), '__module__', '?')}."
            f"{getattr(getattr(value, 'fn', value), '__qualname__', value)}")
    rules[since] = value


def reference(*ops: str, domain: str = "", since: int = 1, host_inputs=(), view=False,
              data_dependent=False, deterministic=True):
    """Register a torch reference implementation for one or more op types (from opset `since`)."""
    module = _caller_module()

    def deco(fn):
        try:
            params = inspect.signature(fn).parameters
        except (ValueError, TypeError):  # builtins (torch.add) have no signature
            params = {}
        ref = Reference(fn, "_opset" in params, "_n_outputs" in params, "_device" in params)
        for op in ops:
            d = _get_or_create(op, domain, module)
            _put(d, d.references, "reference", since, ref)
            d.host_inputs, d.view = tuple(host_inputs), view
            d.data_dependent, d.deterministic = data_dependent, deterministic
        return fn
    return deco


def infer(*ops: str, domain: str = "", since: int = 1):
    """Register a dtype/shape inference rule `fn(node) -> [(dtype, shape), ...]`."""
    module = _caller_module()

    def deco(fn):
        for op in ops:
            d = _get_or_create(op, domain, module)
            _put(d, d.infers, "infer", since, fn)
        return fn
    return deco


def symval(*ops: str, domain: str = "", since: int = 1, always: bool = False):
    """Register symbolic value propagation `fn(node, *vals) -> [object ndarray, ...]`.

    always=True: run even when the inputs' contents are unknown (Shape, Size read only shapes)."""
    module = _caller_module()

    def deco(fn):
        for op in ops:
            d = _get_or_create(op, domain, module)
            _put(d, d.symvals, "symval", since, fn)
            d.symval_always = always
        return fn
    return deco


def extra(op: str, key: str, domain: str = ""):
    """Register an op-specific hook in OpDef.extra[key] (e.g. `infer_subgraphs` of control flow)."""
    module = _caller_module()

    def deco(fn):
        _get_or_create(op, domain, module).extra[key] = fn
        return fn
    return deco


def get(op: str, domain: str = "", node_name: str | None = None) -> OpDef:
    """The OpDef of an op; a one-line UnsupportedOpError when it is not implemented."""
    _load_all()
    d = _REGISTRY.get(_key(op, domain))
    if d is None or not d.references or not d.infers:
        where = f" (node '{node_name}')" if node_name else ""
        dom = f"{domain}::" if domain not in ("", "ai.onnx") else ""
        raise UnsupportedOpError(
            f"unsupported op '{dom}{op}'{where}; `tensorforge ops` prints the supported list")
    return d


def has(op: str, domain: str = "") -> bool:
    _load_all()
    d = _REGISTRY.get(_key(op, domain))
    return d is not None and bool(d.references) and bool(d.infers)


def definitions() -> list[OpDef]:
    """Every OpDef (registered rules of any kind), in registration order."""
    _load_all()
    return list(_REGISTRY.values())


def supported_ops() -> list[str]:
    _load_all()
    return sorted((f"{d}::{o}" if d else o) for (d, o), v in _REGISTRY.items()
                  if v.references and v.infers)


_loaded = False


def _load_all():
    """Import every op family module once (on first use) so their decorators run."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for name in MODULES:
        importlib.import_module(f"{__package__}.{name}")
