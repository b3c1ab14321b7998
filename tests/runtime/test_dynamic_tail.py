"""The dynamic tail reads host-computed values on the device: a tail layer may compute on the host
what the next one reads as device data (NonZero -> Shape -> Gather on the host -> a fused pointwise
Triton kernel on the GPU, which takes device pointers only); `tail_kernels` moves such inputs to the
engine's device. Checked on the CPU with torch's `meta` device standing in for the GPU."""
import numpy as np
import torch

import tensorforge as tf
from tensorforge.runtime.dynamic import device_reads, dynamic_layers, graph_prefix, tail_kernels

from .test_data_dependent import CASES

META = torch.device("meta")


def test_device_reads_moves_host_inputs_read_on_the_device():
    seen = []

    def fn(inputs, outs=None):
        seen.append((inputs, outs))
        return inputs
    fn.takes_out, fn.capturable = True, False
    w = device_reads(fn, (1,), META)
    assert w.takes_out is True and w.capturable is False and not hasattr(w, "bind")
    a, b, m = torch.ones(2), torch.zeros(()), torch.empty(3, device=META)
    out = w([a, b, None, m, "seq"], ["planned"])
    assert out[0].device == META and out[1] is b and out[2] is None and out[3] is m and out[4] == "seq"
    assert seen[-1][1] == ["planned"]  # output buffers are passed through
    w([a, b])
    assert seen[-1][1] is None


def test_tail_kernels_wrap_exactly_the_dynamic_layers():
    """NonZero's plan: the fused Cast+Add reads Gather(Shape(nz)) (host-computed) and is wrapped;
    the static prefix (what a CUDA graph captures) is left as it is; on the CPU nothing is wrapped."""
    eng = tf.Builder(tf.BuilderConfig(device="cpu")).build(CASES["nonzero"]())
    p = eng.plan
    ctx = eng.create_execution_context()
    kernels = ctx._kernels
    assert tail_kernels(p, kernels, torch.device("cpu")) == kernels
    wrapped = tail_kernels(p, kernels, META)
    dyn = dict(zip([lay.name for lay in p.layers], dynamic_layers(p.layers, p.tensors)))
    assert {n for n, f in wrapped.items() if getattr(f, "device_reads", False)} == {n for n, d in dyn.items() if d}
    assert all(wrapped[n] is kernels[n] for n, d in dyn.items() if not d)
    pw = next(lay for lay in p.layers if lay.type == "fused.Pointwise")
    shape = next(lay for lay in p.layers if lay.type == "Shape")
    assert dyn[pw.name] and dyn[shape.name]
    # every launch from the first wrapped one on runs after the captured prefix
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    ctx.infer({"x": x})
    xp = ctx.exec_plan
    n = graph_prefix(p, xp)
    assert all(getattr(wrapped[L.name], "device_reads", False) for L in xp.launches[n:])
    assert not any(getattr(wrapped[L.name], "device_reads", False) for L in xp.launches[:n])


def test_wrapped_tail_on_the_cpu_equals_the_plain_run():
    """With the wrapped kernels (no move on the CPU) the plan computes what it did before."""
    m = CASES["nonzero"]()
    eng = tf.Builder(tf.BuilderConfig(device="cpu")).build(m)
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    a = eng.create_execution_context()
    ref = {k: v.clone() for k, v in a.infer({"x": x}).items()}
    b = eng.create_execution_context()
    dyn = dynamic_layers(eng.plan.layers, eng.plan.tensors)
    for lay, d in zip(eng.plan.layers, dyn):  # host_inputs=all: on the CPU a move would be a no-op anyway
        if d:
            b._kernels[lay.name] = device_reads(b._kernels[lay.name], lay.host_inputs, torch.device("cpu"))
    got = b.infer({"x": x})
    for k, v in ref.items():
        torch.testing.assert_close(got[k], v)


def test_host_computing_layers_only_in_the_dynamic_tail():
    """Shape / Size return host tensors at run time (a static Shape is folded into a plan-time slot, which
    execplan copies to the device): every one left in a plan reads a data-dependent tensor, so it and
    everything computed from it runs in the tail, whose kernels tail_kernels wraps on CUDA."""
    from tensorforge import zoo
    models = {k: f() for k, f in CASES.items() if k != "nms"}
    models["mobilenetv2_small"] = zoo.get_model("mobilenetv2_small")  # dynamic batch: Shape of an input dim
    seen = 0
    for name, m in models.items():
        p = tf.Builder(tf.BuilderConfig(device="cpu", opt_level=0)).build(m).plan
        dyn = dict(zip([lay.name for lay in p.layers], dynamic_layers(p.layers, p.tensors)))
        host = [lay.name for lay in p.layers if lay.type in ("Shape", "Size")]
        seen += len(host)
        assert all(dyn[n] for n in host), (name, [n for n in host if not dyn[n]])
    assert seen >= 1  # nonzero's Shape(nz)
