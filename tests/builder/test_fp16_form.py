"""The whole-engine no-regression rule of Q/DQ models (builder.fp16_form): the FP16 form of a Q/DQ model, the
choice between the two engines, and where the choice is reported."""
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import tensorforge as tf
from tensorforge.builder import fp16_form as ff
from tensorforge.builder.quant_report import quant_report
from tensorforge.testing import make_model, rand, run_ort
from tests.kernels.test_triton_qconv import stem_block

SHAPE = (2, 3, 15, 13)


def _cos(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _quantized(mode):
    from tensorforge.quant import quantize
    return quantize(stem_block(), mode, [{"x": rand(SHAPE, seed=s)} for s in range(2)], "max")


def _ort_qdq(tmp_path):
    """ONNX Runtime's quantizer: uint8 activations with zero points, per-channel int8 weights behind a DQ."""
    from tests.passes.test_quant_models import ort_qdq
    src = tmp_path / "f.onnx"
    onnx.save(stem_block(), str(src))
    return ort_qdq(str(src), str(tmp_path / "q.onnx"), [{"x": rand(SHAPE, seed=s)} for s in range(2)])


@pytest.mark.parametrize("maker", ["int8", "fp8", "ort"])
def test_fp16_form_takes_every_qdq_out_and_keeps_the_weights_quantization(maker, tmp_path):
    """No Q/DQ left; ONNX Runtime on the form agrees with it on the Q/DQ model (only the activations' rounding
    differs) and with the float model; the form's weights are the dequantized 8-bit ones, not the originals."""
    m = _ort_qdq(tmp_path) if maker == "ort" else _quantized(maker)
    form = ff.fp16_form(m)
    onnx.checker.check_model(form)
    assert not [n for n in form.graph.node if n.op_type in (ff.Q, ff.DQ)]
    feed = {"x": rand(SHAPE, seed=5)}
    got = run_ort(form, feed)["y"]
    assert _cos(got, run_ort(m, feed)["y"]) > 0.995
    assert _cos(got, run_ort(stem_block(), feed)["y"]) > 0.995
    w = {t.name: numpy_helper.to_array(t) for t in form.graph.initializer}
    orig = numpy_helper.to_array(next(t for t in stem_block().graph.initializer if t.name == "w2"))
    w2 = next(v for v in w.values() if v.shape == orig.shape)
    assert not np.array_equal(w2.astype(np.float32), orig)
    assert np.abs(w2.astype(np.float32) - orig).max() < 0.05 * np.abs(orig).max()


def test_no_fp16_form_where_a_qdq_cannot_go():
    """A DQ of an 8-bit graph input, and a Q whose 8-bit output is a graph output: no FP16 form."""
    sc = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    m1 = make_model([helper.make_node("DequantizeLinear", ["x", "s"], ["y"])],
                    [("x", TensorProto.INT8, [4])], [("y", TensorProto.FLOAT, [4])], [sc])
    m2 = make_model([helper.make_node("QuantizeLinear", ["x", "s"], ["y"])],
                    [("x", TensorProto.FLOAT, [4])], [("y", TensorProto.UINT8, [4])], [sc])
    assert ff.fp16_form(m1) is None and ff.fp16_form(m2) is None
    assert ff.fp16_form(stem_block()) is None  # nothing to take out
    from tensorforge.quant import quantize  # bfloat16 weights: numpy cannot store them, no FP16 form (no error)
    bf = quantize(stem_block(), "int8", [{"x": rand(SHAPE, seed=s)} for s in range(2)], "max", high_precision="bf16")
    assert ff.fp16_form(bf) is None


@pytest.mark.parametrize("fp16_faster", [True, False])
def test_the_faster_engine_is_kept_and_the_choice_reported(fp16_faster, monkeypatch):
    """Timed whole (time_engine stubbed here: CPU timings of a 4-layer engine decide nothing), the faster engine
    is returned; plan.meta, the quantization report and inspect's lines say which and why, with both times."""
    def timed(engine, device, seconds=0.2):
        quant = any(lay.type.startswith("fused.Q") for lay in engine.plan.layers)
        return 1.0 if quant else (0.5 if fp16_faster else 0.99)
    monkeypatch.setattr(ff, "time_engine", timed)
    m = _quantized("int8")
    eng = tf.Builder(tf.BuilderConfig(device="cpu", opt_level=1, fp16_engine_check="always")).build(m)
    choice = eng.plan.meta["engine_choice"]
    assert (choice["quantized_ms"], choice["fp16_form_ms"]) == (1.0, 0.5 if fp16_faster else 0.99)
    quant = [lay for lay in eng.plan.layers if lay.type.startswith("fused.Q")]
    if fp16_faster:  # the FP16 form, with the quantized engine's layers in the report
        assert choice["chosen"] == "fp16_form" and not quant
        assert choice["quantized_report"]["layers"], choice
    else:  # within the 2 % margin: the quantized engine stays
        assert choice["chosen"] == "quantized" and quant
    rep = quant_report(eng)
    assert rep["engine"] == choice
    from tensorforge.cli.quant_lines import quant_lines
    assert any(line.strip().startswith("engine: the FP16 engine" if fp16_faster else "engine: the quantized")
               for line in quant_lines(eng))
    feed = {"x": rand(SHAPE, seed=5)}
    got = eng.create_execution_context().infer(feed)["y"].float().numpy()
    assert _cos(got, run_ort(m, feed)["y"]) > 0.995
    # the engine file keeps the choice
    back = tf.Engine.deserialize(eng.serialize())
    assert json.loads(json.dumps(back.plan.meta["engine_choice"])) == json.loads(json.dumps(choice))


@pytest.mark.parametrize("cfg", [dict(fp16_engine_check="always", precision_constraints="obey"),
                                 dict(fp16_engine_check="never"), dict()])
def test_no_check_when_obeyed_off_or_on_the_cpu_by_default(cfg, monkeypatch):
    monkeypatch.setattr(ff, "choose", lambda *a, **k: pytest.fail("checked"))
    eng = tf.Builder(tf.BuilderConfig(device="cpu", opt_level=1, **cfg)).build(_quantized("int8"))
    assert "engine_choice" not in eng.plan.meta


def test_bad_check_value_is_one_line_error():
    with pytest.raises(tf.TensorforgeError, match="fp16_engine_check must be auto"):
        tf.BuilderConfig(fp16_engine_check="sometimes").validate()


def test_a_failing_comparison_keeps_the_quantized_engine(monkeypatch):
    """The FP16 form failing to build or time (here: out of memory while timing) is logged and recorded; the
    quantized engine is returned, the build does not fail."""
    def boom(engine, device, seconds=0.2):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore text")
    monkeypatch.setattr(ff, "time_engine", boom)
    eng = tf.Builder(tf.BuilderConfig(device="cpu", opt_level=1, fp16_engine_check="always")).build(_quantized("int8"))
    c = eng.plan.meta["engine_choice"]
    assert c["chosen"] == "quantized" and "RuntimeError: CUDA out of memory" in c["why"] and "more text" not in c["why"]
    assert any(lay.type.startswith("fused.Q") for lay in eng.plan.layers)
