"""forgeexec --refit/--stripWeights/--dumpRefit, `tensorforge refit`, and the flags that only warn."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from tensorforge.cli.main import main as tf_main

from .forgeexec_helpers import FAST


def test_noop_flags_warn_once(cli, tiny_onnx):
    rc, out, err = cli(f"--onnx={tiny_onnx}", "--shapes=x:1x3x8x8", "--useDLACore=0", "--sparsity=enable",
                     "--versionCompatible", *FAST)
    out += err
    assert rc == 0
    for flag in ("--useDLACore", "--sparsity", "--versionCompatible"):
        assert sum(f"[W] {flag} has no effect in tensorforge" in line for line in out.splitlines()) == 1


def test_plugin_flags_refused_not_ignored(cli, tiny_onnx):
    rc, out, err = cli(f"--onnx={tiny_onnx}", "--dynamicPlugins=p.so", *FAST)
    out += err
    assert rc != 0 and "[E] --dynamicPlugins: engines never store host code" in out


def test_strip_dump_and_refit_cli(cli, tiny_onnx, tmp_path, capsys):
    stripped, full = tmp_path / "s.engine", tmp_path / "f.engine"
    rc, out, err = cli(f"--onnx={tiny_onnx}", "--shapes=x:1x3x8x8", "--stripWeights", "--dumpRefit",
                     f"--saveEngine={stripped}", *FAST)
    out += err
    assert rc == 0 and "Refittable weights (2;" in out and "  w float 4x3x3x3" in out
    rc, out, err = cli(f"--loadEngine={stripped}", "--shapes=x:1x3x8x8", *FAST)
    out += err
    assert rc != 0 and "stripped weights: refit it" in out
    assert tf_main(["inspect", str(stripped)]) == 0
    assert "(weights stripped: refit before inference)" in capsys.readouterr().out
    m = onnx.load(str(tiny_onnx))
    m.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w"))
    other = tmp_path / "other.onnx"
    onnx.save(m, str(other))
    assert tf_main(["refit", str(stripped), str(other), "-o", str(full)]) == 0
    assert "refitted 2 weights" in capsys.readouterr().out
    rc, out, err = cli(f"--loadEngine={full}", "--shapes=x:1x3x8x8", *FAST)
    out += err
    assert rc == 0
    # a model with a different graph is refused, naming its weights
    assert tf_main(["refit", str(stripped), "zoo:mobilenetv2_small", "-o", str(full)]) == 2
    assert "not refittable weight(s) of this engine" in capsys.readouterr().err


def test_dump_refit_on_plain_engine_warns(cli, tiny_onnx):
    rc, out, err = cli(f"--onnx={tiny_onnx}", "--shapes=x:1x3x8x8", "--dumpRefit", *FAST)
    out += err
    assert rc == 0 and "[W] --dumpRefit: the engine is not refittable" in out


def test_static_plugins_flag(cli, tmp_path):
    """--staticPlugins loads the module before the build; the engine then needs it at load."""
    import os
    from onnx import TensorProto, helper
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    example = os.path.join(root, "examples", "hardswish_plugin.py")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])
    node = helper.make_node("HardSwish", ["x"], ["y"], name="hs", domain="example")
    m = helper.make_model(helper.make_graph([node], "g", [x], [y]),
                          opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("example", 1)])
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    rc, out, err = cli(f"--onnx={path}", f"--staticPlugins={example}", "--builderOptimizationLevel=0", *FAST)
    out += err
    assert rc == 0 and "Loading plugin module" in out
    rc, out, err = cli(f"--onnx={path}", "--staticPlugins=/nonexistent/p.py", *FAST)
    out += err
    assert rc != 0 and "plugin module not found: /nonexistent/p.py" in out


def test_tensorforge_commands_load_plugins(capsys, tmp_path):
    mod = tmp_path / "my_plugins.py"
    mod.write_text("from tensorforge import plugin\n"
                   "plugin.register('cmdtest::Op', infer=lambda i, a: [i[0]], reference=lambda x: x)\n")
    assert tf_main(["inspect", "--staticPlugins", str(mod), "zoo:mobilenetv2_small"]) == 0
    from tensorforge import plugin
    assert "cmdtest::Op" in plugin.registered()
    assert tf_main(["inspect", "--staticPlugins", str(tmp_path / "none.py"), "zoo:mobilenetv2_small"]) == 2
    assert "plugin module not found" in capsys.readouterr().err
