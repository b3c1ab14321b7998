"""A user allocator on CUDA sees the device copies of host-computed values too (a shape value read as
data by a device kernel: execplan._device_input), and gets them back when the plan is evicted."""
import pytest
import torch
from onnx import TensorProto as T
from onnx import helper as h

import tensorforge as tf
from tensorforge.runtime.allocator import DefaultAllocator
from tensorforge.testing import rand


class Recording(DefaultAllocator):
    def __init__(self):
        self.live = {}

    def allocate(self, nbytes, device, stream=None):
        buf = super().allocate(nbytes, device, stream)
        self.live[buf.data_ptr()] = nbytes
        return buf

    def deallocate(self, buffer, device, stream=None):
        self.live.pop(buffer.data_ptr())


def _shape_value_model():
    """y = x + float(x.shape[0]): the added value is computed on the host per shape set."""
    nodes = [h.make_node("Shape", ["x"], ["s"]), h.make_node("Gather", ["s", "i"], ["g"], axis=0),
             h.make_node("Cast", ["g"], ["gf"], to=T.FLOAT), h.make_node("Add", ["x", "gf"], ["y"])]
    g = h.make_graph(nodes, "m", [h.make_tensor_value_info("x", T.FLOAT, ["n", 4])],
                     [h.make_tensor_value_info("y", T.FLOAT, ["n", 4])], [h.make_tensor("i", T.INT64, [], [0])])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 10
    return m


@pytest.mark.fast
def test_host_value_device_copies_use_the_user_allocator():
    p = tf.OptimizationProfile()
    p.set_shape("x", (1, 4), (2, 4), (8, 4))
    eng = tf.Builder(tf.BuilderConfig(device="cuda", profiles=[p])).build(_shape_value_model())
    rec = Recording()
    ctx = eng.create_execution_context(allocator=rec, graph_cache_size=1)
    for n in (2, 3):
        x = torch.from_numpy(rand((n, 4), seed=n)).cuda()
        torch.testing.assert_close(ctx.infer({"x": x})["y"], x + n)
        xp = ctx.exec_plan
        copies = [t for name, t in zip(xp.names, xp.initial) if name.endswith("@device")]
        assert copies, f"no device copy of a host value in {xp.names}"
        assert all(t.data_ptr() in rec.live for t in copies)
        assert len(copies) == len(ctx._mem._tagged[next(iter(ctx._plans))])
    assert len(ctx._mem._tagged) == 1  # the first shape set's plan was evicted: its copy given back
