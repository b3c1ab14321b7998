"""A small DSL that builds ONNX graphs the way torch exporters lay them out (names, op patterns)."""
from __future__ import annotations

import contextlib
import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .layers_cnn import ConvLayers

OPSET = 17
IR_VERSION = 8
BATCH = "N"

DTYPES = {
    "float32": TensorProto.FLOAT,
    "int64": TensorProto.INT64,
    "int32": TensorProto.INT32,
    "bool": TensorProto.BOOL,
}


class GraphBuilder(ConvLayers):
    """Appends nodes and initializers; every op method returns the name of its output value(s).

    Node names are module paths ("layer1.0.conv1"); a node's (first) output value has the same
    name. With const_nodes=True, literal scalars/shapes become Constant nodes (legacy torch.onnx
    style) instead of shared initializers.
    """

    def __init__(self, name: str, seed: int, const_nodes: bool = False):
        self.name, self.seed = name, seed
        self.rng = np.random.default_rng(seed)
        self.const_nodes = const_nodes
        self.model = onnx.ModelProto()  # initializers are written straight into it: no copies
        self.nodes: list[onnx.NodeProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.ch: dict[str, int] = {}  # channel count of NCHW values, for conv chains
        self.val: dict[str, np.ndarray] = {}  # eager float64 values for BN calibration
        self.calib_wrap = False
        self._used: set[str] = set()
        self._prefix: list[str] = []
        self._const_cache: dict[tuple, str] = {}

    # ---- naming -------------------------------------------------------------------------
    @contextlib.contextmanager
    def scope(self, name: str):
        """Prefix every name created inside with `name.`."""
        self._prefix.append(name)
        try:
            yield
        finally:
            self._prefix.pop()

    @contextlib.contextmanager
    def module(self, local: str):
        """Open a uniquely named module scope and yield its qualified name."""
        mod = self.fresh(local)
        saved, self._prefix = self._prefix, [mod]
        try:
            yield mod
        finally:
            self._prefix = saved

    def fresh(self, local: str) -> str:
        """Reserve and return a unique qualified name (suffix _1, _2 ... on clashes)."""
        base = ".".join(self._prefix + [local]) if local else ".".join(self._prefix)
        name, i = base, 0
        while name in self._used:
            i += 1
            name = f"{base}_{i}"
        self._used.add(name)
        return name

    # ---- graph I/O and values ---------------------------------------------------------------
    def input(self, name: str, dtype: str, shape: list) -> str:
        self._used.add(name)
        self.inputs.append(helper.make_tensor_value_info(name, DTYPES[dtype], shape))
        if len(shape) == 4:
            self.ch[name] = shape[1]
        return name

    def output(self, value: str, name: str, dtype: str, shape: list) -> str:
        """Declare `value` as a graph output, renaming it to `name`."""
        for node in self.nodes:
            for i, v in enumerate(node.output):
                if v == value:
                    node.output[i] = name
            for i, v in enumerate(node.input):
                if v == value:
                    node.input[i] = name
        self._used.add(name)
        self.outputs.append(helper.make_tensor_value_info(name, DTYPES[dtype], shape))
        return name

    def param(self, local: str, array: np.ndarray) -> str:
        """Add a named initializer (a model parameter or buffer)."""
        name = self.fresh(local)
        self._add_init(name, array)
        return name

    def _add_init(self, name: str, array: np.ndarray):
        array = np.asarray(array)  # (not ascontiguousarray: it turns 0-d into 1-d)
        t = self.model.graph.initializer.add()
        t.name = name
        t.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
        t.dims.extend(array.shape)
        t.raw_data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()

    def init(self, shape, std: float, mean: float = 0.0) -> np.ndarray:
        """Random float32 weights with the given mean and std.

        Uniform, as torch's kaiming_uniform_ default init (and ~4x faster to draw than normal).
        """
        a = self.rng.random(shape, dtype=np.float32)
        a -= np.float32(0.5)
        a *= np.float32(std * math.sqrt(12.0))
        if mean:
            a += np.float32(mean)
        return a

    def uniform(self, shape, lo: float, hi: float) -> np.ndarray:
        a = self.rng.random(shape, dtype=np.float32)
        a *= np.float32(hi - lo)
        a += np.float32(lo)
        return a

    def const(self, value, dtype: str = "float32") -> str:
        """A literal: a Constant node (legacy style) or a shared initializer."""
        arr = np.asarray(value, dtype=dtype)
        if self.const_nodes:
            return self.node("Constant", [], value=numpy_helper.from_array(arr))
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._const_cache:
            name = f"const_{len(self._const_cache)}"
            while name in self._used:
                name += "_"
            self._used.add(name)
            self._add_init(name, arr)
            self._const_cache[key] = name
        return self._const_cache[key]

    def node(self, op: str, inputs: list[str], local: str | None = None, n_out: int = 1,
             exact: str | None = None, **attrs):
        """Append one node; returns its output name (or list of names when n_out > 1).

        `exact` is a name already reserved by module() (the node *is* that module).
        """
        name = exact or self.fresh(local or op)
        outs = [name] if n_out == 1 else [f"{name}.{i}" for i in range(n_out)]
        self._used.update(outs)
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    def build(self, doc: str = "") -> onnx.ModelProto:
        """Finish the model (IR 8, opset 17); the builder must not be used afterwards."""
        model = self.model
        model.ir_version = IR_VERSION
        model.producer_name = "tensorforge.zoo"
        model.producer_version = "1"
        model.doc_string = doc
        model.opset_import.append(helper.make_opsetid("", OPSET))
        g = model.graph
        g.name = self.name
        g.node.extend(self.nodes)
        g.input.extend(self.inputs)
        g.output.extend(self.outputs)
        # exporters list initializers in first-use order; ours are in creation order already
        return model

    # ---- dense layers -------------------------------------------------------------------------
    def gemm(self, x, cin, cout, local="fc", std=None, bias_std=0.01):
        """nn.Linear on a 2-D input as Gemm(transB=1) with a [cout, cin] weight."""
        std = 1.0 / math.sqrt(3 * cin) if std is None else std
        with self.module(local) as mod:
            w = self.param("weight", self.init((cout, cin), std))
            b = self.param("bias", self.init((cout,), bias_std))
        return self.node("Gemm", [x, w, b], exact=mod, alpha=1.0, beta=1.0, transB=1)

    def linear(self, x, cin, cout, local, std=0.02, bias_std=0.02):
        """nn.Linear on an N-D input as MatMul with a [cin, cout] weight, then Add bias."""
        with self.module(local):
            w = self.param("weight", self.init((cin, cout), std))
            b = self.param("bias", self.init((cout,), bias_std))
            return self.node("Add", [self.node("MatMul", [x, w]), b])

    def add(self, a, b, local="Add"):
        y = self._keep_ch(a, self.node("Add", [a, b], local))
        return self._eval(y, np.add, a, b)

    def mul(self, a, b, local="Mul"):
        return self.node("Mul", [a, b], local)

    def sub(self, a, b, local="Sub"):
        return self.node("Sub", [a, b], local)

    def div(self, a, b, local="Div"):
        return self.node("Div", [a, b], local)

    def matmul(self, a, b, local="MatMul"):
        return self.node("MatMul", [a, b], local)

    def softmax(self, x, axis=-1, local="Softmax"):
        return self.node("Softmax", [x], local, axis=axis)

    def transpose(self, x, perm, local="Transpose"):
        return self.node("Transpose", [x], local, perm=list(perm))

    def reshape(self, x, shape, local="Reshape"):
        """Reshape to a literal shape (list) or a computed shape tensor (str)."""
        s = shape if isinstance(shape, str) else self.const(shape, "int64")
        return self.node("Reshape", [x, s], local)

    def gather(self, x, index, axis=0, local="Gather"):
        """Gather a literal scalar index (int) or by an index tensor (str)."""
        idx = index if isinstance(index, str) else self.const(index, "int64")
        return self.node("Gather", [x, idx], local, axis=axis)

    def unsqueeze(self, x, axes, local="Unsqueeze"):
        return self.node("Unsqueeze", [x, self.const(axes, "int64")], local)

    # ---- symbolic shapes (legacy torch.onnx style) ----------------------------------------------
    def dim(self, x, i) -> str:
        """x.size(i) as a 0-d int64 tensor: Shape -> Gather."""
        return self.gather(self.node("Shape", [x]), i)

    def shape_of(self, parts) -> str:
        """A 1-D shape tensor from parts: ints (literals) or 0-d tensors (unsqueezed)."""
        vecs = [self.const([p], "int64") if isinstance(p, int) else self.unsqueeze(p, [0])
                for p in parts]
        return self.node("Concat", vecs, axis=0)

    # ---- normalization and activations ----------------------------------------------------------
    def _ln_params(self, dim):
        g = self.param("weight", self.init((dim,), 0.05, mean=1.0))
        b = self.param("bias", self.init((dim,), 0.02))
        return g, b

    def layernorm(self, x, dim, local="LayerNorm", eps=1e-6):
        """LayerNormalization op (opset 17) over the last axis."""
        with self.module(local) as mod:
            ins = [x, *self._ln_params(dim)]
        return self.node("LayerNormalization", ins, exact=mod, axis=-1, epsilon=eps)

    def layernorm_decomposed(self, x, dim, local="LayerNorm", eps=1e-5):
        """LayerNorm as ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add."""
        with self.module(local):
            g, b = self._ln_params(dim)
            mean = self.node("ReduceMean", [x], axes=[-1], keepdims=1)
            d = self.sub(x, mean)
            var = self.node("ReduceMean", [self.node("Pow", [d, self.const(2.0)])],
                            axes=[-1], keepdims=1)
            std = self.node("Sqrt", [self.add(var, self.const(eps))])
            return self.add(self.mul(self.div(d, std), g), b)

    def gelu_erf(self, x, local="gelu"):
        """0.5 * x * (1 + erf(x / sqrt(2)))."""
        with self.module(local):
            e = self.node("Erf", [self.div(x, self.const(math.sqrt(2.0)))])
            y = self.mul(x, self.add(e, self.const(1.0)))
            return self.mul(y, self.const(0.5))

    def gelu_tanh(self, x, local="act"):
        """0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))), as HF gelu_new exports."""
        with self.module(local):
            half = self.mul(x, self.const(0.5))
            cube = self.node("Pow", [x, self.const(3.0)])
            inner = self.add(x, self.mul(cube, self.const(0.044715)))
            t = self.node("Tanh", [self.mul(inner, self.const(math.sqrt(2.0 / math.pi)))])
            return self.mul(half, self.add(t, self.const(1.0)))
