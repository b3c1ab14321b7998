"""Tests for the built-in model zoo (tensorforge.zoo).

Small variants: checker, ORT at batch 1 and 3, shapes, finiteness, sane activations, determinism.
Full models: checker, determinism, graph constructs; one ORT run at batch 1 each (marked
`full_ort`; set TENSORFORGE_SKIP_FULL_ORT=1 to skip those on slow machines).
"""
from __future__ import annotations

import collections
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # plain `pytest` (rootdir mode) does not put the repo root on sys.path
    sys.path.insert(0, _ROOT)

from tensorforge.errors import TensorforgeError  # noqa: E402
from tensorforge import zoo  # noqa: E402

ort = pytest.importorskip("onnxruntime")

_NAMES = zoo.list_models()
SMALL = [n for n in _NAMES if n.endswith("_small") and n[: -len("_small")] in _NAMES]
FULL = [n for n in _NAMES if n not in SMALL]  # (gpt2_small is a full-size model)
STD_RANGE = (1e-2, 1e2)  # output std: activations neither vanish nor explode
full_ort = pytest.mark.skipif(os.environ.get("TENSORFORGE_SKIP_FULL_ORT") == "1",
                              reason="TENSORFORGE_SKIP_FULL_ORT=1: full-size ORT runs skipped")

_NP = {"float32": np.float32, "int64": np.int64}
_ONNX = {"float32": onnx.TensorProto.FLOAT, "int64": onnx.TensorProto.INT64}


def _session(model_bytes: bytes):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def _check_outputs(name, outs: dict, batch: int):
    for out, (dtype, shape) in zoo.output_specs(name).items():
        v = outs[out]
        assert v.dtype == _NP[dtype], (out, v.dtype)
        assert list(v.shape) == [batch if d == "N" else d for d in shape], (out, v.shape)
        assert np.isfinite(v).all(), f"{name}:{out} has NaN/Inf"
        std = float(v.std())
        assert STD_RANGE[0] <= std <= STD_RANGE[1], f"{name}:{out} std {std}"


def _run(name, model_bytes, batch, seed=0):
    sess = _session(model_bytes)
    feeds = zoo.random_inputs(name, batch, seed)
    assert {i.name for i in sess.get_inputs()} == set(feeds)
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def _model(name):
    """The cached model itself (read-only here): copying the big ones costs seconds."""
    return zoo.get_model(name, copy=False)


def _ops(model) -> collections.Counter:
    return collections.Counter(n.op_type for n in model.graph.node)


# ---- API ------------------------------------------------------------------------------------
def test_catalogue():
    assert FULL == ["resnet50", "mobilenetv2", "vit_b16", "bert_base", "gpt2_small", "yolo_det"]
    assert len(SMALL) == 6 and all(s[: -len("_small")] in FULL for s in SMALL)


def test_is_zoo_and_load():
    assert zoo.is_zoo("zoo:resnet50") and not zoo.is_zoo("resnet50.onnx")
    assert not zoo.is_zoo(None)
    m = zoo.load("zoo:bert_base_small")
    assert m.graph.name == "bert_base_small"
    with pytest.raises(TensorforgeError) as e:
        zoo.load("zoo:resnet51")
    msg = str(e.value)
    assert "\n" not in msg and "resnet51" in msg and all(n in msg for n in zoo.list_models())
    with pytest.raises(TensorforgeError):
        zoo.input_specs("nope")


def test_cache_returns_private_copies():
    a = zoo.get_model("vit_b16_small")
    del a.graph.node[:]
    b = zoo.get_model("vit_b16_small")
    assert len(b.graph.node) > 0 and b == zoo.get_model("zoo:vit_b16_small")
    assert zoo.get_model("vit_b16_small", copy=False) is zoo.get_model("vit_b16_small", copy=False)


def test_random_inputs():
    specs = zoo.input_specs("bert_base")
    assert specs["input_ids"] == ("int64", ["N", 128], (0, 30522))
    assert specs["attention_mask"] == ("int64", ["N", 128], (0, 2))
    assert zoo.input_specs("resnet50") == {"input": ("float32", ["N", 3, 224, 224], (-1.0, 1.0))}
    for name in ["bert_base", "gpt2_small", "gpt2_small_small"]:
        vocab = zoo.input_specs(name)["input_ids"][2][1]
        f = zoo.random_inputs(f"zoo:{name}", batch=5, seed=3)
        ids, mask = f["input_ids"], f["attention_mask"]
        assert ids.dtype == mask.dtype == np.int64 and ids.shape == mask.shape
        assert ids.shape[0] == 5 and 0 <= ids.min() and ids.max() < vocab and ids.any()
        assert set(np.unique(mask)) == {0, 1} and (mask.sum(1) > 0).all()
        assert (mask[:, 0] == 1).all() and (np.diff(mask, axis=1) <= 0).all()  # trailing zeros
        np.testing.assert_array_equal(ids, zoo.random_inputs(name, 5, 3)["input_ids"])
    x = zoo.random_inputs("yolo_det", 2, 0)["images"]
    assert x.dtype == np.float32 and x.shape == (2, 3, 640, 640) and x.std() > 0.1


# ---- small variants ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", SMALL)
def test_small_checker_and_determinism(name):
    data = _model(name).SerializeToString()
    onnx.checker.check_model(data, full_check=True)
    assert zoo.generate(name, seed=0).SerializeToString() == data
    assert zoo.generate(name, seed=1).SerializeToString() != data


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name", SMALL)
def test_small_runs(name, batch):
    outs = _run(name, _model(name).SerializeToString(), batch, seed=batch)
    _check_outputs(name, outs, batch)


def _masked_values(model) -> set[str]:
    """Values on the attention-mask path up to Softmax: they hold -1e4 / finfo.min on purpose."""
    tainted = {"attention_mask"}
    for n in model.graph.node:
        if n.op_type == "Where" or (n.op_type != "Softmax" and tainted & set(n.input)):
            tainted.update(n.output)
    return tainted


@pytest.mark.parametrize("name", SMALL)
def test_small_intermediates_sane(name):
    """Every float intermediate is finite and bounded (no explosion hidden by the head)."""
    m = onnx.shape_inference.infer_shapes(_model(name))
    skip = {o.name for o in m.graph.output} | _masked_values(m)
    skip |= {o for n in m.graph.node if n.op_type == "Constant" for o in n.output}
    for vi in m.graph.value_info:
        if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT and vi.name not in skip:
            m.graph.output.append(vi)
    res = _run(name, m.SerializeToString(), batch=2)
    assert len(res) > 20
    for k, v in res.items():
        assert np.isfinite(v).all(), k
        assert v.size == 0 or np.abs(v).max() < 1e3, (k, float(np.abs(v).max()))


@pytest.mark.parametrize("name", SMALL + FULL)
def test_signature(name):
    m = _model(name)
    assert m.ir_version == 8 and [(o.domain, o.version) for o in m.opset_import] == [("", 17)]
    for vis, specs in [(m.graph.input, zoo.input_specs(name)),
                       (m.graph.output, zoo.output_specs(name))]:
        assert [v.name for v in vis] == list(specs)
        for v in vis:
            dtype, shape = specs[v.name][:2]
            t = v.type.tensor_type
            assert t.elem_type == _ONNX[dtype]
            dims = [d.dim_param or d.dim_value for d in t.shape.dim]
            assert dims == shape and dims[0] == "N"
    names = [n.name for n in m.graph.node]
    assert all(names) and len(set(names)) == len(names)
    inits = [t.name for t in m.graph.initializer]
    assert len(set(inits)) == len(inits)
    assert all(t.data_type != onnx.TensorProto.DOUBLE for t in m.graph.initializer)


# ---- graph constructs -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["resnet50", "resnet50_small"])
def test_resnet_constructs(name):
    m = _model(name)
    ops, names = _ops(m), {n.name for n in m.graph.node}
    blocks = 16 if name == "resnet50" else 4
    assert ops["Conv"] == 3 * blocks + 4 + 1 and ops["BatchNormalization"] == ops["Conv"]
    assert ops["Add"] == blocks and ops["MaxPool"] == 1 and ops["Gemm"] == 1
    assert {"conv1", "bn1", "relu", "maxpool", "layer1.0.conv1", "layer1.0.bn1",
            "layer1.0.downsample.0", "layer4.0.conv2", "avgpool", "fc"} <= names
    convs = {n.name: n for n in m.graph.node if n.op_type == "Conv"}
    assert all(len(n.input) == 2 for n in convs.values())  # no bias: BN not folded
    stride = {a.name: list(a.ints) for a in convs["layer2.0.conv2"].attribute}["strides"]
    assert stride == [2, 2]  # v1.5: stride on the 3x3


@pytest.mark.parametrize("name", ["mobilenetv2", "mobilenetv2_small"])
def test_mobilenet_constructs(name):
    m = _model(name)
    ops = _ops(m)
    assert ops["Clip"] > 0 and ops["Relu"] == 0 and ops["Dropout"] == 1 and ops["Gemm"] == 1
    assert all(len(n.input) == 3 for n in m.graph.node if n.op_type == "Clip")
    groups = [a.i for n in m.graph.node if n.op_type == "Conv" for a in n.attribute
              if a.name == "group"]
    assert sum(g > 1 for g in groups) >= 4  # depthwise convs
    assert ops["Add"] >= 1  # inverted residuals
    if name == "mobilenetv2":
        assert ops["Conv"] == 52 and ops["Add"] == 10


@pytest.mark.parametrize("name", ["vit_b16", "vit_b16_small"])
def test_vit_constructs(name):
    ops = _ops(_model(name))
    layers = 12 if name == "vit_b16" else 2
    assert ops["LayerNormalization"] == 2 * layers + 1 and ops["Erf"] == layers
    assert ops["Softmax"] == layers and ops["Expand"] == 1 and ops["Shape"] >= 1
    assert ops["ReduceMean"] == 0


@pytest.mark.parametrize("name", ["bert_base", "bert_base_small"])
def test_bert_constructs(name):
    m = _model(name)
    ops = _ops(m)
    layers = 12 if name == "bert_base" else 2
    assert ops["LayerNormalization"] == 0 and ops["ReduceMean"] == 2 * (2 * layers + 1)
    assert ops["Erf"] == layers and ops["Softmax"] == layers and ops["Tanh"] == 1
    assert ops["Constant"] > 0 and ops["Shape"] > 0 and ops["Unsqueeze"] > 0
    producer = {o: n for n in m.graph.node for o in n.output}
    reshapes = [n for n in m.graph.node if n.op_type == "Reshape"]
    assert reshapes and all(producer[r.input[1]].op_type == "Concat" for r in reshapes)


@pytest.mark.parametrize("name", ["gpt2_small", "gpt2_small_small"])
def test_gpt2_constructs(name):
    m = _model(name)
    ops = _ops(m)
    layers = 12 if name == "gpt2_small" else 2
    assert ops["Where"] == layers and ops["Split"] == layers and ops["Tanh"] == layers
    assert ops["LayerNormalization"] == 0 and ops["Range"] == 1
    wte = "transformer.wte.weight"
    assert sum(wte in n.input for n in m.graph.node) == 2  # Gather and the tied lm_head
    bias = next(t for t in m.graph.initializer if t.name.endswith("attn.bias"))
    assert bias.data_type == onnx.TensorProto.BOOL


@pytest.mark.parametrize("name", ["yolo_det", "yolo_det_small"])
def test_yolo_constructs(name):
    m = _model(name)
    ops = _ops(m)
    assert ops["Sigmoid"] == ops["Mul"] + 1  # SiLU = Sigmoid * x, plus the class Sigmoid
    assert ops["Conv"] == ops["BatchNormalization"] + 6  # 6 head convs with bias, no BN
    assert ops["MaxPool"] == 3 and ops["Resize"] == 2 and ops["Relu"] == 0
    for n in m.graph.node:
        if n.op_type == "Resize":
            assert len(n.input) == 3 and n.input[1] and n.input[2]  # roi (empty) + scales
    roi = next(t for t in m.graph.initializer
               if t.name == [n for n in m.graph.node if n.op_type == "Resize"][0].input[1])
    assert list(roi.dims) == [0]


# ---- full-size models -------------------------------------------------------------------------
_BYTES: dict[str, bytes] = {}


def _serialized(name: str) -> bytes:
    """Serialize once per model for its consecutive tests (keeps one model's bytes alive)."""
    if name not in _BYTES:
        _BYTES.clear()
        _BYTES[name] = _model(name).SerializeToString()
    return _BYTES[name]


_FULL_CASES = [pytest.param(n, p, id=f"{n}-{p}", marks=[full_ort] if p == "ort" else [])
               for n in FULL for p in ("check", "ort")]


@pytest.mark.parametrize("name,part", _FULL_CASES)
def test_full_model(name, part):
    if part == "check":
        onnx.checker.check_model(_serialized(name), full_check=True)
        # proto equality: same fields, hence the same bytes, without a second serialization
        # (seeds giving different weights is tested on the small variants: same code paths)
        assert zoo.generate(name, seed=0) == _model(name)
    else:
        _check_outputs(name, _run(name, _serialized(name), batch=1), batch=1)
