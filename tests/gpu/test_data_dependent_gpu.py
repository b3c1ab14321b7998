"""Data-dependent shapes on the GPU: with use_cuda_graph the static prefix of the plan is one CUDA
graph and the dynamic tail (NonZero, Range with run-time bounds, ... and what reads them) runs
eagerly after each replay; eager and graph runs agree with ONNX Runtime at several input values."""
import numpy as np
import pytest
import torch

import tensorforge as tf
from tensorforge.testing import run_ort

from ..runtime.test_data_dependent import CASES, _feeds

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.fast(name="nonzero", graph=True)
@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize("name", ["nonzero", "range", "topk", "expand_reshape"])
def test_data_dependent_region_with_graph_prefix(name, graph):
    # nonzero: the tail computes Gather(Shape(nz)) on the host and a Triton kernel reads it (H200,
    # 2026-12-03: "Pointer argument (at 0) cannot be accessed from Triton"); runtime.dynamic.tail_kernels
    # moves such inputs to the device
    m = CASES[name]()
    eng = tf.Builder(tf.BuilderConfig(device="cuda")).build(m)
    ctx = eng.create_execution_context(use_cuda_graph=graph)
    for _ in range(2):  # the second pass replays the captured prefix
        for feed in _feeds(name, np.random.default_rng(0)):
            got, ref = ctx.infer(feed), run_ort(m, feed)
            for k, r in ref.items():
                assert tuple(got[k].shape) == r.shape, k
                np.testing.assert_allclose(got[k].cpu().numpy(), r, rtol=1e-4, atol=1e-5, err_msg=k)
                assert got[k].device.type == "cuda", k
