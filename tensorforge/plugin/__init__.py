"""Plugins: user-defined ops ("domain::OpName") with a shape/dtype rule, a torch reference and one or
more implementations, each a tactic of the one tactic registry (checked against the reference and
timed like any other). `load(path)` imports a plugin module chosen by the user: the only way user
code enters the process. See README "Writing a plugin" and examples/hardswish_plugin.py."""
from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass, field
from typing import Callable

from ..errors import TensorforgeError
from ..kernels import plugin_device as device
from ..ops import registry as ops
from . import family

SOURCE = "plugin"  # the tactic source of every plugin implementation
_PLUGINS: dict[str, "Plugin"] = {}
_LOADED: dict[str, str] = {}  # absolute path -> module name
_OVERRIDES: list = []  # (op_type or None, node name or None, plugin name)
_current_module: list = [None]


class PluginError(TensorforgeError):
    """A plugin that cannot be registered, loaded or used."""


@dataclass
class Impl:
    """One implementation: a torch function (host code) or a Triton kernel (device code)."""
    name: str
    kind: str  # "torch" | "triton" (host launch function) | "device" (Triton kernel launched from data)
    fn: Callable | dict  # the function, or the launch spec of a "device" implementation
    precisions: tuple
    formats: tuple = ("linear",)
    grid: Callable | None = None


@dataclass
class Plugin:
    """A registered plugin op; add implementations with `@plugin.torch_impl` / `plugin.triton_impl`."""
    name: str
    domain: str
    op: str
    module: str | None
    impls: dict = field(default_factory=dict)

    def torch_impl(self, name: str = "torch", precisions=("float32",), formats=("linear",)):
        """Decorator: fn(*inputs, **attrs) -> tensor(s), a host-side implementation."""
        def deco(fn):
            self._add(Impl(name, "torch", fn, tuple(precisions), tuple(formats)))
            return fn
        return deco

    def triton_impl(self, launch: Callable, name: str = "triton", precisions=("float32",), formats=("linear",)):
        """Add a Triton implementation: launch(*inputs, out, **attrs) runs the kernel over its grid."""
        self._add(Impl(name, "triton", launch, tuple(precisions), tuple(formats)))

    def triton_kernel(self, kernel, *, args: list, grid: list, outputs: list, meta: dict | None = None,
                      name: str = "triton", precisions=("float32",), formats=("linear",)):
        """Add a Triton kernel launched from data (device code: engines run it without this module).
        kernel: a @triton.jit function; args/grid/outputs/meta: the launch spec of
        tensorforge.kernels.plugin_device (e.g. args=["in0", "out0", "numel0"],
        grid=[["cdiv", "numel0", 1024]], outputs=[0], meta={"BLOCK": 1024})."""
        import hashlib
        src = "import triton\nimport triton.language as tl\n\n\n@triton.jit\n" + _def_source(kernel.fn)
        kname = kernel.fn.__name__
        key = f"{kname}-{hashlib.sha1(src.encode()).hexdigest()[:20]}"
        device.SOURCES[key] = (src, kname)
        spec = {"key": key, "kernel": kname, "args": list(args), "grid": [list(g) if isinstance(g, (list, tuple))
                else g for g in grid], "outputs": list(outputs), "meta": dict(meta or {})}
        self._add(Impl(name, "device", spec, tuple(precisions), tuple(formats)))

    def _add(self, impl: Impl) -> None:
        if impl.name in self.impls:
            raise PluginError(f"plugin '{self.name}': implementation '{impl.name}' registered twice")
        self.impls[impl.name] = impl
        family.refresh(self)

    def tactic_name(self, impl: str) -> str:
        """domain.OpName/impl (tactic keys use ':' as their separator)."""
        return f"{self.domain}.{self.op}/{impl}"

    def tactic(self, impl: str) -> dict:
        """The tactic dict of one implementation (its module is named for the error at load time)."""
        im = self.impls[impl]
        if im.kind == "device":  # launched from data by kernels.plugin_device
            return {"source": SOURCE, "name": "device_kernel",
                    "params": {**im.fn, "plugin": self.name, "impl": impl, "module": self.module or ""}}
        return {"source": SOURCE, "name": self.tactic_name(impl),
                "params": {"kind": im.kind, "module": self.module or ""}}


def _def_source(fn) -> str:
    """The `def` of a kernel function without its decorators (dedented)."""
    import inspect
    import textwrap
    lines = textwrap.dedent(inspect.getsource(fn)).splitlines(True)
    return "".join(lines[next(i for i, line in enumerate(lines) if line.startswith("def ")):])


def _split(name: str) -> tuple[str, str]:
    if name.count("::") != 1 or not all(name.split("::")):
        raise PluginError(f"plugin name '{name}' must be 'domain::OpName'")
    return tuple(name.split("::"))


def register(name: str, infer: Callable, reference: Callable) -> Plugin:
    """Register op `domain::OpName`: infer([(dtype, shape)], attrs) -> [(dtype, shape)] per output,
    reference(*inputs, **attrs) -> tensor(s) (the oracle every implementation is checked against)."""
    domain, op = _split(name)
    if name in _PLUGINS:
        raise PluginError(f"plugin '{name}' is registered twice")
    if ops.has(op, domain):
        raise PluginError(f"plugin '{name}': op '{op}' of domain '{domain}' is already defined")

    def infer_rule(node):
        return [(dt, tuple(s)) for dt, s in infer([(None if v is None else (v.dtype, v.shape)) for v in
                                                    node.inputs], dict(node.attrs))]
    ops.infer(op, domain=domain)(infer_rule)
    ops.reference(op, domain=domain)(reference)
    p = _PLUGINS[name] = Plugin(name, domain, op, _current_module[0])
    return p


def get(name: str) -> Plugin:
    if name not in _PLUGINS:
        raise PluginError(f"no plugin '{name}' is registered (load its module: tensorforge.plugin.load)")
    return _PLUGINS[name]


def registered() -> list[str]:
    return sorted(_PLUGINS)


class _Override:
    """An active override; as a context manager it ends with the block (one model's build)."""

    def __init__(self, entry):
        self.entry = entry

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.entry in _OVERRIDES:
            _OVERRIDES.remove(self.entry)


def override(plugin: str, op_type: str | None = None, node: str | None = None) -> _Override:
    """Run `plugin` instead of a built-in op: every node of `op_type`, or the node named `node`; for
    the builds until clear_overrides(), or within `with plugin.override(...):` only."""
    get(plugin)
    if (op_type is None) == (node is None):
        raise PluginError("override: give exactly one of op_type= or node=")
    entry = (op_type, node, plugin)
    _OVERRIDES.append(entry)
    return _Override(entry)


def clear_overrides() -> None:
    """Forget every override (built-in ops run as built-ins again)."""
    _OVERRIDES.clear()


def apply_overrides(g) -> dict:
    """Retarget overridden nodes of a graph to their plugin op (before the passes run); returns
    {node name: [op, domain]} of the retargeted nodes (a refit replays them)."""
    done = {}
    for n in g.nodes:
        for op_type, name, plugin in _OVERRIDES:
            if (op_type is not None and n.op == op_type and n.domain in ("", "ai.onnx")) or n.name == name:
                p = _PLUGINS[plugin]
                n.op, n.domain = p.op, p.domain
                done[n.name] = [p.op, p.domain]
    return done


def used_by(plan) -> dict:
    """{plugin name: {"module": path, "impl": chosen implementation per layer}} of a built plan."""
    out = {}
    for lay in plan.layers:
        p = next((q for q in _PLUGINS.values() if (q.op, q.domain) == (lay.type, lay.domain)), None)
        if p is not None and lay.tactic.get("name") != "device_kernel":  # device code needs no module
            e = out.setdefault(p.name, {"module": p.module or "", "layers": {}})
            e["layers"][lay.name] = lay.tactic.get("name", "")
    return out


def load(path: str) -> str:
    """Import a plugin module from a file (once per path); returns its module name."""
    full = os.path.abspath(os.path.expanduser(str(path)))
    if full in _LOADED:
        return _LOADED[full]
    if not os.path.isfile(full):
        raise PluginError(f"plugin module not found: {path}")
    name = "tensorforge_plugin_" + os.path.splitext(os.path.basename(full))[0]
    spec = importlib.util.spec_from_file_location(name, full)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    _current_module[0] = full
    try:
        spec.loader.exec_module(mod)
    except TensorforgeError:
        raise
    except Exception as e:  # the user's module: one line naming it
        sys.modules.pop(name, None)
        raise PluginError(f"plugin module {path} failed to load: {type(e).__name__}: {e}") from None
    finally:
        _current_module[0] = None
    _LOADED[full] = name
    return name



__all__ = ["register", "get", "load", "override", "clear_overrides", "registered", "used_by", "Plugin", "PluginError", "SOURCE"]
