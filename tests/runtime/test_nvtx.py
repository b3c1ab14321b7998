"""NVTX ranges per layer (runtime.nvtx): off by default and then never called; on, one balanced range per
launch named after its layer, outputs unchanged, the kernel attributes the runtime reads kept."""
import pytest
import torch

import tensorforge as tf
from tensorforge.runtime import nvtx
from tensorforge.testing import rand

from ..core.models import conv_net


@pytest.fixture
def events(monkeypatch):
    """NVTX calls, recorded: a name per push, None per pop (both torch's and the module's entry points)."""
    got = []
    push, pop = got.append, lambda: got.append(None)
    monkeypatch.setattr(nvtx, "api", lambda: (push, pop))
    monkeypatch.setattr(torch.cuda.nvtx, "range_push", push)
    monkeypatch.setattr(torch.cuda.nvtx, "range_pop", pop)
    return got


def _engine():
    return tf.Builder(tf.BuilderConfig(device="cpu")).build(conv_net())


def test_off_by_default_calls_no_nvtx_function(events):
    eng = _engine()
    ctx = eng.create_execution_context()
    ctx.infer({"x": rand((2, 3, 16, 16))})
    assert events == []
    kernels = {L.name: L.fn for L in ctx.exec_plan.launches}
    assert all(not hasattr(fn, "__wrapped__") for fn in kernels.values())  # the plain launch list


def test_on_one_range_per_launch_and_outputs_unchanged(events):
    eng = _engine()
    x = rand((2, 3, 16, 16), seed=3)
    ref = eng.create_execution_context().infer({"x": x})["y"]
    ctx = eng.create_execution_context(nvtx=True)
    for _ in range(2):
        torch.testing.assert_close(ctx.infer({"x": x})["y"], ref, rtol=0, atol=0)
    names = [L.name for L in ctx.exec_plan.launches]
    assert len(names) >= 3 and events == [e for n in names * 2 for e in (n, None)]


def test_wrapped_launches_pop_on_error_and_keep_capturable(events):
    def bad(args):
        raise ValueError("boom")
    bad.capturable = False
    ok = lambda args: args  # noqa: E731
    w_bad, w_ok = nvtx.nvtx_wrapped([bad, ok], ["bad layer", "ok layer"])
    with pytest.raises(ValueError, match="boom"):
        w_bad([1])
    assert w_ok([2]) == [2]
    assert events == ["bad layer", None, "ok layer", None]
    assert w_bad.capturable is False and w_ok.capturable is True and w_bad.__wrapped__ is bad
    with pytest.raises(ValueError):
        nvtx.nvtx_wrapped([ok], ["a", "b"])  # one name per launch


def test_without_nvtx_the_launches_are_unchanged(monkeypatch):
    monkeypatch.setattr(nvtx, "api", lambda: None)
    fns = [lambda a: a]
    assert nvtx.nvtx_wrapped(fns, ["x"]) == fns
