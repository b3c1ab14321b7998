"""Diagnostics: `inspect` lists every unsupported node before any build, a failed build names all of
them at once, `tensorforge ops` counts ONNX ops only (internal fused ops apart)."""
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import tensorforge as tf
from tensorforge.cli.main import main
from tensorforge.cli.ops_cmd import split_ops
from tensorforge.errors import UnsupportedOpError
from tensorforge.ops import registry, supported_ops


def _bad_model():
    """Relu, two FooOp nodes (one unnamed), a com.acme::Bar, and an If whose branch holds a BazOp."""
    vi = lambda n: h.make_tensor_value_info(n, T.FLOAT, [2])  # noqa: E731
    then_g = h.make_graph([h.make_node("BazOp", ["r"], ["t"], name="inner")], "then", [], [vi("t")])
    else_g = h.make_graph([h.make_node("Identity", ["r"], ["e"])], "else", [], [vi("e")])
    nodes = [h.make_node("Relu", ["x"], ["r"], name="relu"),
             h.make_node("FooOp", ["r"], ["f1"], name="foo_a"), h.make_node("FooOp", ["f1"], ["f2"]),
             h.make_node("Bar", ["f2"], ["b"], name="bar", domain="com.acme"),
             h.make_node("ReduceMax", ["b"], ["c"], keepdims=0), h.make_node("Cast", ["c"], ["cb"], to=T.BOOL),
             h.make_node("If", ["cb"], ["y"], name="branch", then_branch=then_g, else_branch=else_g)]
    g = h.make_graph(nodes, "g", [vi("x")], [vi("y")])
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("com.acme", 1)])


def test_build_names_every_unsupported_node(tmp_path):
    with pytest.raises(UnsupportedOpError) as e:
        tf.Builder(tf.BuilderConfig(device="cpu")).build(_bad_model())
    msg = str(e.value)
    assert msg.startswith("unsupported op")
    assert "'FooOp' (2 nodes: 'foo_a', 'FooOp_2'), 'com.acme::Bar' (node 'bar')" in msg
    assert "Relu" not in msg and "BazOp" not in msg  # a body's nodes matter only if their branch runs
    assert ("'If' (node 'branch')" in msg) != registry.has("If")
    assert msg.endswith("`tensorforge ops` prints the supported list")


def test_single_unsupported_node_message_unchanged():
    g = h.make_graph([h.make_node("NoSuchOp", ["x"], ["y"], name="n1")], "g",
                     [h.make_tensor_value_info("x", T.FLOAT, [1])], [h.make_tensor_value_info("y", T.FLOAT, [1])])
    with pytest.raises(UnsupportedOpError, match=r"^unsupported op 'NoSuchOp' \(node 'n1'\); `tensorforge ops`"):
        tf.Builder(tf.BuilderConfig(device="cpu")).build(h.make_model(g))


def test_inspect_lists_unsupported_nodes(tmp_path, capsys):
    import onnx
    path = tmp_path / "bad.onnx"
    onnx.save(_bad_model(), str(path))
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    i = out.index(f"---- {4 - registry.has('If')} unsupported node(s), {3 - registry.has('If')} op type(s): "
                  "the build will fail ----")
    assert out[i + 1].split() == ["FooOp", "2:", "foo_a,", "FooOp_2"]  # first seen first, all nodes
    assert out[i + 2].split() == ["com.acme::Bar", "1:", "bar"]
    j = out.index("---- 1 unsupported node(s), 1 op type(s): inside If/Loop/Scan bodies ----")
    assert out[j + 1].split() == ["BazOp", "1:", "inner"]
    assert main(["inspect", "zoo:resnet50_small"]) == 0
    assert "Supported: every node's op has a tensorforge rule" in capsys.readouterr().out


def test_ops_counts_onnx_ops_only(capsys):
    assert main(["ops"]) == 0
    out = capsys.readouterr().out.splitlines()
    names = supported_ops()
    fused = [n for n in names if n.startswith("fused.")]
    assert fused, "the registry has internal fused ops"
    n_onnx = len(names) - len(fused)
    assert out[0].startswith(f"{n_onnx} supported ONNX ops (ai.onnx ")
    assert out[1] == "[ai.onnx]" and "Conv" in out and "fused.ConvAct" in out
    internal = out.index(f"internal fused ops (created by the optimizer, not ONNX ops): {len(fused)}")
    assert all(not ln.startswith("fused.") for ln in out[:internal])
    by_domain, f = split_ops(["Conv", "ai.onnx.ml::Binarizer", "fused.X", "com.microsoft::Gelu"])
    assert by_domain == {"ai.onnx": ["Conv"], "ai.onnx.ml": ["Binarizer"], "com.microsoft": ["Gelu"]} and f == ["fused.X"]


def test_forgeexec_runs_a_model_with_run_time_sized_outputs(cli, tmp_path):
    """Data-dependent outputs (NonZero) get an output allocator; their values are exported."""
    import json

    import numpy as np
    import onnx

    from tests.runtime.test_data_dependent import _nonzero
    from tensorforge.testing import run_ort

    from .forgeexec_helpers import FAST
    model, x = tmp_path / "nz.onnx", tmp_path / "x.bin"
    onnx.save(_nonzero(), str(model))
    data = np.random.default_rng(5).standard_normal((3, 4)).astype(np.float32)
    data.tofile(x)
    rc, out, err = cli(f"--onnx={model}", f"--loadInputs=x:{x}", f"--exportOutput={tmp_path}/o.json", *FAST)
    assert rc == 0, err
    got = {o["name"]: o for o in json.load(open(tmp_path / "o.json"))}
    ref = run_ort(_nonzero(), {"x": data})
    assert got["idx"]["dimensions"] == "x".join(map(str, ref["idx"].shape))
    np.testing.assert_array_equal(np.array(got["idx"]["values"]).reshape(ref["idx"].shape), ref["idx"])


def test_inspect_engine_names_data_dependent_layers(tmp_path, capsys):
    from tests.runtime.test_data_dependent import _nonzero
    eng = tf.Builder(tf.BuilderConfig(device="cpu", fusion=False)).build(_nonzero())
    path = tmp_path / "nz.engine"
    eng.save(path)
    assert main(["inspect", str(path)]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("Data-dependent sizes: "))
    names = line.split(": ", 2)[2].split(", ")
    assert names[0] == "NonZero_1" and "GatherND_3" in names and "Greater_0" not in names
