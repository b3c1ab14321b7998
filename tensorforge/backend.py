"""onnx.backend.base.Backend for tensorforge: lets `onnx.backend.test` run models through engines."""
from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx.backend.base import Backend, BackendRep, Device, DeviceType

from . import dtypes
from .errors import TensorforgeError, UnsupportedOpError

_ML_NAMES = dtypes.ML_NAMES  # ml_dtypes names of the types numpy lacks (ONNX reference outputs use them)


def _torch_device(device: str) -> str:
    return "cuda" if Device(device).type == DeviceType.CUDA else "cpu"


def to_torch(x, dtype_name: str | None = None) -> torch.Tensor:
    """A numpy array (ml_dtypes included) or scalar as a torch tensor (bit-exact for float8/bf16)."""
    if isinstance(x, torch.Tensor):
        return x
    arr = np.asarray(x)
    if arr.dtype.kind == "V" or arr.dtype.name in _ML_NAMES.values():
        return dtypes.ml_to_torch(arr, next(k for k, v in _ML_NAMES.items() if v == arr.dtype.name))
    if arr.dtype.kind in "OSU":
        raise TensorforgeError(f"input of dtype {arr.dtype} is not supported (string tensors)")
    if arr.dtype in (np.uint16, np.uint32, np.uint64):
        return torch.from_numpy(arr.astype(np.int64)).to(dtypes.to_torch(dtypes.from_numpy(arr.dtype)))
    return torch.from_numpy(np.array(arr, order="C", copy=True))


def to_numpy(t: torch.Tensor, name: str | None = None) -> np.ndarray:
    """A torch tensor (of ONNX type `name`, default: its own) as a numpy array of the matching ONNX
    numpy dtype (ml_dtypes for bf16/float8/sub-byte types)."""
    t = t.detach().cpu()
    name = name if name in dtypes.STORAGE_ONLY else dtypes.from_torch(t.dtype)
    if name in _ML_NAMES:
        return dtypes.torch_to_ml(t, name)
    if name in ("uint16", "uint32", "uint64"):
        return t.to(torch.int64).numpy().astype(dtypes.to_numpy(name)) if name != "uint64" \
            else np.array(t.tolist(), dtype=np.uint64).reshape(tuple(t.shape))
    return t.numpy()


def shape_inputs(model: onnx.ModelProto) -> list[str]:
    """Graph inputs whose values reach a host-read parameter (Reshape's shape, axes, pads, ...).

    Walks producers backwards from every host-input slot; Shape/Size cut the walk (they read
    only their input's shape)."""
    from .ops import registry
    g = model.graph
    inits = {i.name for i in g.initializer}
    ins = {i.name for i in g.input if i.name not in inits}
    prod = {o: n for n in g.node for o in n.output}
    reads = {id(n): list(n.input) + _outer_names(n) for n in g.node}  # control flow reads outer names too
    todo = []
    for n in g.node:
        if registry.has(n.op_type, n.domain):
            d = registry.get(n.op_type, n.domain)
            todo += [n.input[i] for i in d.host_inputs if i < len(n.input) and n.input[i]]
    found, seen = [], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in ins:
            found.append(name)
        elif name in prod and prod[name].op_type not in ("Shape", "Size"):
            todo += [x for x in reads[id(prod[name])] if x]
    return [i.name for i in g.input if i.name in found]


def _outer_names(node) -> list:
    """Every name the graph attributes of a node read (nested bodies included)."""
    out = []
    for a in node.attribute:
        for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
            for n in sub.node:
                out += list(n.input) + _outer_names(n)
    return out


def bake_inputs(model: onnx.ModelProto, values: dict) -> onnx.ModelProto:
    """A copy of the model where the given inputs are initializers with these values."""
    from onnx import numpy_helper
    m = onnx.ModelProto()
    m.CopyFrom(model)
    keep = [i for i in m.graph.input if i.name not in values]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    for name, v in values.items():
        m.graph.initializer.append(numpy_helper.from_array(np.asarray(v), name))
    return m


def _feed_value(x, dtype: str):
    """A backend input as the engine takes it: tensors; sequences as TensorSeq, empty optionals None."""
    if dtype.startswith("opt("):
        return None if x is None else _feed_value(x, dtype[4:-1])
    if dtype.startswith("seq("):
        from .ops.sequence import TensorSeq
        return TensorSeq([to_torch(t) for t in x])
    return to_torch(x).to(dtypes.to_torch(dtype.split(":")[0]))


def _result(v, dtype=None):
    """An engine output as numpy (a sequence as a list of arrays, an empty optional as None)."""
    if v is None:
        return None
    if isinstance(v, torch.Tensor):
        return to_numpy(v, dtype)
    return [to_numpy(t) for t in v]


class TensorforgeRep(BackendRep):
    """A built engine plus the model's input order; `run(inputs)` returns outputs in graph order.

    When the model's shape parameters come from graph inputs (a Reshape whose target shape is
    an input), the engine is built at run time with those inputs baked in as constants (like
    TensorRT shape tensors), once per distinct set of values."""

    def __init__(self, engine, input_names: list[str], output_names: list[str], model=None,
                 baked: list[str] = (), device="cpu"):
        self.engine = engine
        self.context = engine.create_execution_context() if engine is not None else None
        self.input_names = input_names
        self.output_names = output_names
        self.model, self.baked, self.device = model, list(baked), device
        self._engines = {}

    def _specialize(self, feed_all):
        from .builder import Builder, BuilderConfig
        vals = {n: np.asarray(feed_all[n]) for n in self.baked}
        key = tuple((n, v.dtype.str, v.shape, v.tobytes()) for n, v in vals.items())
        if key not in self._engines:
            eng = Builder(BuilderConfig(device=self.device)).build(bake_inputs(self.model, vals))
            self._engines[key] = (eng, eng.create_execution_context())
        self.engine, self.context = self._engines[key]

    def run(self, inputs, **kwargs):
        if isinstance(inputs, dict):
            feed_all = dict(inputs)
        else:
            if not isinstance(inputs, (list, tuple)):
                inputs = [inputs]
            if len(inputs) != len(self.input_names):
                raise TensorforgeError(f"model takes {len(self.input_names)} inputs, {len(inputs)} given")
            feed_all = dict(zip(self.input_names, inputs))
        if self.baked:
            self._specialize(feed_all)
        plan = self.engine.plan
        feed = {}
        for n in plan.inputs:  # inputs the engine dropped (unused) are not fed
            if n not in feed_all:
                raise TensorforgeError(f"missing input '{n}'")
            feed[n] = _feed_value(feed_all[n], plan.tensors[n].dtype)
        out = self.context.infer(feed)
        return tuple(_result(out[n], getattr(plan.tensors.get(n), "dtype", None)) for n in self.output_names)


class TensorforgeBackend(Backend):
    """Builds a tensorforge engine for a ModelProto (CPU by default)."""

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs) -> TensorforgeRep:
        from .builder import Builder, BuilderConfig
        if not cls.supports_device(device):
            raise TensorforgeError(f"device '{device}' is not available")
        inits = {i.name for i in model.graph.initializer}
        ins = [i.name for i in model.graph.input if i.name not in inits]
        outs = [o.name for o in model.graph.output]
        dev = _torch_device(device)
        try:
            engine = Builder(BuilderConfig(device=dev)).build(model)
        except UnsupportedOpError:
            raise
        except TensorforgeError:
            baked = shape_inputs(model)
            if not baked:
                raise
            return TensorforgeRep(None, ins, outs, model, baked, dev)
        return TensorforgeRep(engine, ins, outs)

    @classmethod
    def run_model(cls, model, inputs, device="CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device="CPU", outputs_info=None, **kwargs):
        """Run one NodeProto on numpy inputs (wrapped in a one-node model)."""
        from onnx import helper
        ins = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.asarray(x).dtype),
                                             np.shape(x)) for n, x in zip(node.input, inputs) if n]
        outs = [helper.make_empty_tensor_value_info(n) for n in node.output if n]
        opset = kwargs.get("opset_version", onnx.defs.onnx_opset_version())
        model = helper.make_model(helper.make_graph([node], "node", ins, outs),
                                  opset_imports=[helper.make_opsetid("", opset)])
        return cls.prepare(model, device).run([x for n, x in zip(node.input, inputs) if n])

    @classmethod
    def supports_device(cls, device: str) -> bool:
        try:
            d = Device(device)
        except (AttributeError, ValueError):
            return False
        return d.type == DeviceType.CPU or (d.type == DeviceType.CUDA and torch.cuda.is_available())


prepare = TensorforgeBackend.prepare
run_model = TensorforgeBackend.run_model
run_node = TensorforgeBackend.run_node
supports_device = TensorforgeBackend.supports_device
