"""forgeexec --int8 / --fp8 / --calib and Q/DQ models: strongly typed builds (weakly typed with --fp16),
placeholder-scale warning."""
from __future__ import annotations

import onnx

from tensorforge import zoo
from tensorforge.quant import write_cache
from tests.cli.forgeexec_helpers import FAST


def _model(tmp_path):
    p = tmp_path / "r.onnx"
    onnx.save(zoo.get_model("resnet50_small"), str(p))
    return str(p)


def test_int8_without_qdq_quantizes_with_placeholder_scales(cli, tmp_path):
    rc, out, err = cli(f"--onnx={_model(tmp_path)}", "--int8", "--shapes=input:1x3x64x64", *FAST)
    assert rc == 0, out + err
    assert "placeholder scales" in out + err


def test_calib_cache_scales_are_used(cli, tmp_path):
    path = _model(tmp_path)
    m = onnx.load(path)
    convs = [n.input[0] for n in m.graph.node if n.op_type == "Conv"]
    cache = tmp_path / "c.cache"
    write_cache(str(cache), {t: 0.05 for t in convs})
    rc, out, err = cli(f"--onnx={path}", "--fp8", f"--calib={cache}", "--shapes=input:1x3x64x64", *FAST)
    assert rc == 0, out + err
    assert f"calibration cache {cache}" in out + err and "placeholder" not in out + err


def test_qdq_model_builds_strongly_typed_and_ignores_flags(cli, tmp_path):
    from tensorforge.quant import quantize
    q = quantize(zoo.get_model("resnet50_small"), "int8", [zoo.random_inputs("resnet50_small", 1, seed=0)], "max")
    p = tmp_path / "q.onnx"
    onnx.save(q, str(p))
    rc, out, err = cli(f"--onnx={p}", "--int8", "--shapes=input:1x3x64x64", *FAST)
    assert rc == 0, out + err
    assert "strongly typed" in out + err
    rc, out, err = cli(f"--onnx={p}", "--fp16", "--shapes=input:1x3x64x64", *FAST)  # weakly typed with Q/DQ
    assert rc == 0, out + err
    assert "non-Q/DQ part follows --fp16" in out + err and "strongly typed" not in out + err


def test_quant_report_lists_unfused_qdq_and_layers(cli, tmp_path):
    import json

    from tensorforge.quant import quantize
    from tensorforge.testing import rand
    from tests.kernels.test_triton_qconv import resnet_block
    # FP32 rest: the input's Q reads the graph input itself (in an FP16 model it fuses with the input's Cast);
    # a 32-channel input: its first conv is quantized (a 3-channel stem stays in high precision)
    q = quantize(resnet_block(), "int8", [{"x": rand((2, 32, 7, 9), seed=0)}], "max", high_precision="fp32")
    p = tmp_path / "q.onnx"
    onnx.save(q, str(p))
    rep = tmp_path / "quant.json"
    rc, out, err = cli(f"--onnx={p}", f"--quantReport={rep}", "--shapes=x:2x32x7x9", *FAST)
    assert rc == 0, out + err
    r = json.loads(rep.read_text())
    assert any("graph input" in u["reason"] for u in r["unfused"])  # the input's Q has nothing before it
    convs = [lay for lay in r["layers"] if lay["type"] == "fused.QConv"]
    assert len(convs) == 3 and all(lay["precision"] in ("int8", "fp16") and lay["tactic"] for lay in convs)
    assert all(lay["ms"] is not None and lay["fp16_ms"] is not None for lay in convs)


def test_inspect_shows_the_quantization_report(cli, tmp_path, capsys):
    from tensorforge.cli.main import main
    from tensorforge.quant import quantize
    q = quantize(zoo.get_model("resnet50_small"), "int8", [zoo.random_inputs("resnet50_small", 1, seed=0)], "max")
    p, eng = tmp_path / "q.onnx", tmp_path / "q.engine"
    onnx.save(q, str(p))
    rc, out, err = cli(f"--onnx={p}", f"--saveEngine={eng}", "--shapes=input:1x3x64x64", *FAST)
    assert rc == 0, out + err
    assert main(["inspect", str(eng)]) == 0
    text = capsys.readouterr().out
    assert "---- Quantization: " in text and "unfused" in text and "FP16 form" in text


def test_fp8_placeholder_scales_for_integer_inputs(cli, tmp_path):
    """BERT's int64 ids and mask get integer random calibration data (was float32: ORT refused it)."""
    p = tmp_path / "b.onnx"
    onnx.save(zoo.get_model("bert_base_small"), str(p))
    rc, out, err = cli(f"--onnx={p}", "--fp8", "--shapes=input_ids:1x16,attention_mask:1x16", *FAST)
    assert rc == 0 and "placeholder scales" in out + err, out + err


def test_quant_report_and_calib_never_overwrite_inputs(cli, tmp_path):
    path = _model(tmp_path)
    before = open(path, "rb").read()
    rc, out, err = cli(f"--onnx={path}", "--int8", f"--quantReport={path}", *FAST)
    assert rc != 0 and "refusing to overwrite" in out + err
    cache = tmp_path / "c.cache"
    write_cache(str(cache), {"x": 0.05})
    rc, out, err = cli(f"--onnx={path}", "--int8", f"--calib={cache}", f"--saveEngine={cache}", *FAST)
    assert rc != 0 and "is the input file of --calib" in out + err
    assert open(path, "rb").read() == before and open(cache).read().startswith("TRT-")
