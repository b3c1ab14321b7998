"""`tensorforge inspect`: ONNX model and engine summaries (fused layer names, memory, tactic stats)."""
import pytest

import tensorforge as tf
from tensorforge.cli.inspect_cmd import _activation_line
from tensorforge.cli.main import main

from .models import conv_net


def _inspect(capsys, path):
    rc = main(["inspect", str(path)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out


def _saved(tmp_path, model, name, **cfg):
    eng = tf.Builder(tf.BuilderConfig(device="cpu", **cfg)).build(model)
    path = tmp_path / f"{name}.engine"
    eng.save(path)
    return path, eng


@pytest.mark.parametrize("mode", ["direct", "arena"])
def test_small_engine(capsys, tmp_path, mode):
    path, eng = _saved(tmp_path, conv_net(), f"small_{mode}", activation_memory=mode)
    out = _inspect(capsys, path)
    lines = out.splitlines()
    assert lines[0] == f"==== tensorforge Engine: {path} ===="
    act = next(ln for ln in lines if ln.startswith("Activation memory: "))
    kb = eng.plan.meta["kernel_allocated_bytes"] / 2**20
    assert act.endswith(f" + {kb:.2f} MiB allocated by kernels (activation_memory={mode})"), act
    stats = eng.plan.meta["tactic_selection"]
    tac = next(ln for ln in lines if ln.startswith("Tactic selection: "))
    assert tac.startswith(f"Tactic selection: level {stats['opt_level']}, {stats['layers']} layers, ")
    assert f"{stats['cache_hits']} timing-cache hits" in tac and f"{stats['time_s']} s" in tac
    assert any(" conv1 + relu1 | fused.ConvAct | " in ln for ln in lines), out
    assert f"---- {len(eng.plan.layers)} Layer(s) ----" in lines
    assert "  x: float32 [N, 3, 16, 16]" in lines


def test_zoo_model_and_its_engine(capsys, tmp_path):
    out = _inspect(capsys, "zoo:resnet50_small")
    assert out.startswith("==== ONNX Model: zoo:resnet50_small ====")
    assert "---- 1 Input(s) ----" in out and "Parameters: " in out and "Conv" in out
    path, eng = _saved(tmp_path, "zoo:resnet50_small", "resnet50_small")
    out = _inspect(capsys, path)
    layers = [ln for ln in out.splitlines() if ln.startswith("  [")]
    assert len(layers) == len(eng.plan.layers) < eng.build_info["onnx_nodes"]
    assert layers[0].startswith("  [0] conv1 + bn1 + relu | fused.ConvAct | float32 | ")
    assert any(" + layer1.0.add + layer1.0.relu_2 | " in ln for ln in layers), out
    assert "allocated by kernels (activation_memory=direct)" in out and "Tactic selection: level 3" in out


def test_engines_without_the_new_meta_keep_the_old_lines(tmp_path):
    path, eng = _saved(tmp_path, conv_net(), "old")
    p = eng.plan
    del p.meta["kernel_allocated_bytes"]
    assert "allocated by kernels" not in _activation_line(p)
    assert _activation_line(p).startswith("Activation memory: ") and "(without reuse: " in _activation_line(p)
