"""The report's numbers and page from fixed forgeexec exports and from a tiny profiled engine."""
from __future__ import annotations

import importlib.util
import re

import pytest

from tensorforge.report import cost, data, page, peaks
from tests.report import exports

# skipped, not left uncollected, without the report extra (tests/test_collection.py counts folders)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                reason="matplotlib not installed (pip install 'tensorforge[report]')")


def test_flops_and_bytes_from_shapes():
    conv, mm, gemm, attn, softmax = exports.LAYERS
    assert cost.layer_flops(conv) == 2 * (4 * 8 * 8) * (3 * 3 * 3)
    assert cost.layer_flops(mm) == 2 * (2 * 16 * 64) * 32
    assert cost.layer_flops(gemm) == 2 * (8 * 64) * 32  # transposed B: K from |A||B|/|Y|
    assert cost.layer_flops(attn) == 4 * (2 * 16 * 8) * 32  # QK^T and PV over Sk = 32
    assert cost.layer_flops(softmax) == 0
    assert cost.layer_bytes(conv) == (192 + 108 + 4 + 256) * 2
    assert cost.layer_bytes(softmax) == 4000 * 4 * 2


def test_attention_flops_through_the_k_view():
    q = {"Name": "q", "Dimensions": [1, 16, 16], "Format/Datatype": "Row major linear FP16"}
    k = {"Name": "k", "Dimensions": [1, 32, 16], "Format/Datatype": "Row major linear FP16"}  # [B, S, E]
    lay = {"LayerType": "fused.Attention", "Inputs": [q, k, dict(k, Name="v")], "Outputs": [dict(q, Name="o")],
           "attrs": {"k_view": [["reshape", [1, 32, 2, 8]], ["transpose", [0, 2, 1, 3]]]}}
    assert cost.layer_flops(lay) == 4 * 256 * 32  # K viewed as [B, H, Sk, D] = [1, 2, 32, 8]
    lay["attrs"]["k_view"].append(["transpose", [0, 1, 3, 2]])
    lay["attrs"]["k_transposed"] = 1
    assert cost.layer_flops(lay) == 4 * 256 * 32  # [B, H, D, Sk]


def test_unknown_shapes_give_no_floor():
    lay = dict(exports.LAYERS[1], Inputs=[{"Name": "a", "Dimensions": "N/A"}], Outputs=[])
    assert cost.layer_flops(lay) == 0 and cost.layer_bytes(lay) == 0
    assert page.floor_ms(data.LayerRow("x"), peaks.lookup("NVIDIA H200"), True) == (None, "n/a")


def test_peaks_table():
    h200 = peaks.lookup("NVIDIA H200")
    assert h200.bandwidth == 4.8e12 and h200.flops["FP16"] == 989e12
    assert peaks.lookup("NVIDIA H100 80GB HBM3").name == "H100"
    assert peaks.lookup("CPU") is None and peaks.lookup(None) is None
    assert peaks.compute_peak(h200, "FP32", tf32=True) == h200.flops["TF32"]
    assert peaks.compute_peak(h200, "FP32", tf32=False) == h200.flops["FP32"]


def test_from_exports(tmp_path):
    p = exports.write(tmp_path)
    d = data.from_exports(p["profile"], p["layer_info"], p["times"], "net", "NVIDIA H200")
    assert [r.name for r in d.layers] == [x["Name"] for x in exports.LAYERS]
    assert d.iterations == 10 and d.total_ms == pytest.approx(1.0)
    assert [r.precision for r in d.layers] == ["FP16"] * 4 + ["FP32"]
    assert [r.stream for r in d.layers] == [0, 0, 1, 1, 0]
    assert d.build["fused layers"] == 2 and d.build["ONNX nodes in layers"] == 7
    assert d.run["queries"] == 5 and d.run["throughput_qps"] == pytest.approx(5 / 9.2 * 1000)
    assert not d.has_times
    fl, bound = page.floor_ms(d.layers[4], peaks.lookup(d.device), True)
    assert bound == "memory" and fl == pytest.approx(32000 / 4.8e12 * 1e3)


def test_names_only_layer_info_and_missing_files(tmp_path):
    p = exports.write(tmp_path)
    (tmp_path / "names.json").write_text('{"Layers": ["a", "b"], "Bindings": []}')
    d = data.from_exports(None, str(tmp_path / "names.json"), None, "t")
    assert [r.type for r in d.layers] == ["n/a", "n/a"] and any("names only" in n for n in d.notes)
    with pytest.raises(data.TensorforgeError, match="not found"):
        data.from_exports(str(tmp_path / "nope.json"), None, None, "t")
    with pytest.raises(data.TensorforgeError, match="not a regular file"):  # was: read /dev/zero forever
        data.from_exports("/dev/zero", None, None, "t")
    with pytest.raises(data.TensorforgeError, match="exportProfile format"):
        data.from_exports(p["layer_info"], None, None, "t")


def test_page_is_self_contained(tmp_path):
    p = exports.write(tmp_path)
    d = data.from_exports(p["profile"], p["layer_info"], p["times"], "net", "NVIDIA H200")
    html = page.render(d)
    assert html.count("<svg") == 5
    for plot in ("share", "types", "roofline", "timeline", "precision"):
        assert f'id="plot-{plot}"' in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing fetched
    assert "<link" not in html and "@import" not in html
    assert html.count("<tr><td class=\"num\"") == 5  # one table row per layer
    assert "60.0%" in html  # conv/GEMM/attention share of the fixed profile
    assert "no per-layer start/end times" in html
    timed = data.from_exports(exports.write(tmp_path, with_start_end=True)["profile"], p["layer_info"], None, "t")
    assert timed.has_times and "Per-layer start/end times measured" in page.render(timed)


def test_cli_from_exports(tmp_path, capsys):
    from tensorforge.cli.main import main
    p = exports.write(tmp_path)
    out = tmp_path / "r.html"
    assert main(["report", "--profile", p["profile"], "--layer-info", p["layer_info"], "--times", p["times"],
                 "--gpu", "H200", "-o", str(out)]) == 0
    assert "Wrote" in capsys.readouterr().out and out.read_text().startswith("<!DOCTYPE html>")
    assert main(["report", "-o", str(out)]) == 2  # neither an engine nor exports


def test_cli_profiles_an_onnx_model(tmp_path, capsys):
    import onnx

    from tensorforge.cli.main import main
    from tests.core.models import conv_net
    model = tmp_path / "m.onnx"
    onnx.save(conv_net(), str(model))
    out = tmp_path / "r.html"
    assert main(["report", str(model), "--shapes=x:2x3x16x16", "--iterations", "2", "--device", "cpu",
                 "-o", str(out)]) == 0
    html = out.read_text()
    assert "Profiled on CPU: 2 inferences at input shapes x=2x3x16x16 with 1 torch thread(s)" in html
    assert "No peak numbers for device &#x27;CPU&#x27;" in html and html.count("<svg") == 5


def test_report_from_real_forgeexec_exports(tmp_path, capsys):
    from tensorforge.cli.forgeexec.main import main as forgeexec
    from tensorforge.cli.main import main
    from tests.cli.forgeexec_helpers import FAST, make_tiny_onnx
    model = make_tiny_onnx(tmp_path / "t.onnx")
    f = {k: str(tmp_path / f"{k}.json") for k in ("profile", "layers", "times")}
    assert forgeexec([f"--onnx={model}", "--shapes=x:2x3x8x8", "--profilingVerbosity=detailed", "--dumpProfile",
                      "--separateProfileRun", f"--exportProfile={f['profile']}", f"--exportLayerInfo={f['layers']}",
                      f"--exportTimes={f['times']}", *FAST]) == 0
    capsys.readouterr()
    d = data.from_exports(f["profile"], f["layers"], f["times"], "tiny")
    conv = next(r for r in d.layers if "conv1" in r.name)
    assert conv.flops == 2 * (2 * 4 * 8 * 8) * (3 * 3 * 3) and conv.precision == "FP32" and conv.time_ms > 0
    assert d.iterations > 0 and d.run["queries"] >= 3
    out = tmp_path / "r.html"
    assert main(["report", "--profile", f["profile"], "--layer-info", f["layers"], "--times", f["times"],
                 "-o", str(out)]) == 0
    assert out.read_text().count("<svg") == 5


def test_cli_profiles_an_engine_file(tmp_path, capsys):
    from tensorforge import Builder, BuilderConfig, OptimizationProfile
    from tensorforge.cli.main import main
    from tests.core.models import conv_net
    prof = OptimizationProfile()
    prof.set_shape("x", (1, 3, 16, 16), (3, 3, 16, 16), (4, 3, 16, 16))
    engine = tmp_path / "m.engine"
    Builder(BuilderConfig(device="cpu", profiles=[prof])).build(conv_net()).save(str(engine))
    out = tmp_path / "r.html"
    assert main(["report", str(engine), "--iterations", "2", "-o", str(out)]) == 0
    html = out.read_text()
    assert "at input shapes x=3x3x16x16" in html  # profile 0's opt shape
    assert "conv1 + relu1" in html and "build time (s)" in html
