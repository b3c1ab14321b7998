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
