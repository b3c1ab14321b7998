"""tensorforge compare on Q/DQ models: judged against ORT's fake-quant run by cosine and top-1."""
from __future__ import annotations

import onnx

from tensorforge import zoo
from tensorforge.cli.main import main
from tests.passes.test_quant_models import ort_qdq


def test_compare_passes_a_correct_int8_engine(tmp_path, capsys):
    src = tmp_path / "r.onnx"
    onnx.save(zoo.get_model("resnet50_small"), str(src))
    feeds = [zoo.random_inputs("resnet50_small", 1, seed=i) for i in range(2)]
    ort_qdq(str(src), str(tmp_path / "q.onnx"), feeds)
    rc = main(["compare", str(tmp_path / "q.onnx"), "--device", "cpu", "--shapes=input:2x3x64x64"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "quantized: cosine >= 0.999" in out and "top-1 agreement" in out
    rc = main(["compare", str(tmp_path / "q.onnx"), "--device", "cpu", "--shapes=input:2x3x64x64",
               "--atol", "0", "--rtol", "0"])  # explicit tolerances still apply element-wise
    assert "atol=0.0 rtol=0.0" in capsys.readouterr().out
    # the quantized bounds are the user's to set: an impossible cosine fails, a looser one passes
    args = ["compare", str(tmp_path / "q.onnx"), "--device", "cpu", "--shapes=input:2x3x64x64"]
    assert main(args + ["--min-cosine", "1.01"]) == 1
    assert "quantized: cosine >= 1.01" in capsys.readouterr().out
    assert main(args + ["--min-cosine", "0.99", "--min-top1", "0.5"]) == 0
    assert "quantized: cosine >= 0.99, top-1 agreement" in capsys.readouterr().out


def test_compare_judges_a_kept_fp16_form_against_that_model(tmp_path, capsys, monkeypatch):
    """When the builder keeps the FP16 engine without the Q/DQ (builder.fp16_form, forced here on the CPU), compare
    runs ONNX Runtime on that model, not on the fake-quant one, and says so."""
    from tensorforge.builder import builder, fp16_form
    monkeypatch.setattr(builder, "_checks_fp16_form", lambda *a: True)
    monkeypatch.setattr(fp16_form, "time_engine", lambda eng, dev, seconds=0.2: 1.0 if any(
        lay.type.startswith("fused.Q") for lay in eng.plan.layers) else 0.5)
    ran = []
    from tensorforge import testing
    orig = testing.run_ort
    monkeypatch.setattr(testing, "run_ort", lambda m, feed, basic=False: ran.append(m) or orig(m, feed, basic=basic))
    src = tmp_path / "r.onnx"
    onnx.save(zoo.get_model("resnet50_small"), str(src))
    ort_qdq(str(src), str(tmp_path / "q.onnx"), [zoo.random_inputs("resnet50_small", 1, seed=i) for i in range(2)])
    rc = main(["compare", str(tmp_path / "q.onnx"), "--device", "cpu", "--shapes=input:2x3x64x64"])
    out = capsys.readouterr().out
    assert rc == 0 and "kept the FP16 engine without the Q/DQ" in out, out
    assert ran and not [n for n in ran[-1].graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
