"""debug precision: the bisection on fake oracles, and on a model with one planted FP16-sensitive layer."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tensorforge import BuilderConfig
from tensorforge.debug.precision import PrecisionSearch, layer_precisions_spec, meets, minimal_set
from tensorforge.errors import TensorforgeError
from tensorforge.testing import make_model, run_ort


def _oracle(needed: set, calls: list):
    def passes(kept):
        calls.append(list(kept))
        return needed <= set(kept)
    return passes


@pytest.mark.parametrize("needed", [set(), {"l7"}, {"l0"}, {"l31"}, {"l3", "l20"}, {"l5", "l6", "l30"}])
def test_minimal_set_finds_exactly_the_needed_layers(needed):
    cands, calls = [f"l{i}" for i in range(32)], []
    assert minimal_set(cands, _oracle(needed, calls)) == sorted(needed, key=lambda n: int(n[1:]))
    assert len(calls) <= 2 + len(needed) * 6  # log2(32) + 1 per needed layer, not 32 builds


def test_minimal_set_when_nothing_helps():
    with pytest.raises(TensorforgeError, match="even with all 3 candidate layers"):
        minimal_set(["a", "b", "c"], lambda kept: False)


def test_meets_uses_atol_and_rtol_and_flags_non_finite():
    ref = {"y": np.array([1.0, 100.0], np.float32)}
    assert meets({"y": np.array([1.005, 100.5], np.float32)}, ref, 1e-2, 1e-2)[0]
    assert not meets({"y": np.array([1.5, 100.0], np.float32)}, ref, 1e-2, 1e-2)[0]
    ok, worst = meets({"y": np.array([np.inf, 100.0], np.float32)}, ref, 1e-2, 1e-2)
    assert not ok and worst == float("inf")


def planted(seed=0):
    """x -> MatMul+Relu -> MatMul+Tanh -> (+2048 -2048) -> MatMul. The shift loses ~1 unit in FP16
    (its spacing at 2048 is 2): that fused layer ('mm2 + tanh2 + shift + unshift') must stay FP32;
    the others are fine in FP16 at 1e-2."""
    rng = np.random.default_rng(seed)

    def c(name, arr):
        t = numpy_helper.from_array(np.asarray(arr, np.float32))
        t.name = name
        return t
    inits = [c("w1", rng.standard_normal((16, 32)) * 0.25), c("w2", rng.standard_normal((32, 32)) * 0.25),
             c("w3", rng.standard_normal((32, 8)) * 0.25), c("big", [2048.0])]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h1"], name="mm1"),
             helper.make_node("Relu", ["h1"], ["r1"], name="relu1"),
             helper.make_node("MatMul", ["r1", "w2"], ["h2"], name="mm2"),
             helper.make_node("Tanh", ["h2"], ["t2"], name="tanh2"),
             helper.make_node("Add", ["t2", "big"], ["a"], name="shift"),
             helper.make_node("Sub", ["a", "big"], ["s"], name="unshift"),
             helper.make_node("MatMul", ["s", "w3"], ["y"], name="mm3")]
    return make_model(nodes, [("x", TensorProto.FLOAT, [4, 16])], [("y", TensorProto.FLOAT, [4, 8])], inits)


def test_bisection_finds_the_planted_layer():
    model = planted()
    feed = {"x": np.random.default_rng(1).uniform(-1, 1, (4, 16)).astype(np.float32)}
    search = PrecisionSearch(model, BuilderConfig(fp16=True, device="cpu"), feed, run_ort(model, feed), 1e-2, 1e-2)
    kept, names, n = search.run()
    assert n == 3 and kept == ["mm2"] and names["mm2"] == "mm2 + tanh2 + shift + unshift"
    assert [ok for _, ok, _ in search.trials][:2] == [False, True]  # FP16 as built fails; all-FP32 passes
    assert layer_precisions_spec(kept, "fp32") == "--precisionConstraints=obey --layerPrecisions=mm2:fp32"


def test_cli_prints_the_spec(tmp_path, capsys):
    from tensorforge.cli.main import main
    path = tmp_path / "planted.onnx"
    onnx.save(planted(), str(path))
    assert main(["debug", "precision", str(path), "--atol=1e-2", "--rtol=1e-2"]) == 0
    out = capsys.readouterr().out
    assert "1 of 3 layer(s) must stay in fp32:" in out and "mm2 + tanh2 + shift + unshift" in out
    assert out.rstrip().endswith("--precisionConstraints=obey --layerPrecisions=mm2:fp32")
    assert main(["debug", "precision", str(path), "--atol=10", "--rtol=10"]) == 0  # FP16 as built passes
    assert "no layer needs fp32" in capsys.readouterr().out
