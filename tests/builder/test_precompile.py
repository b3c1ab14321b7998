"""builder.precompile: the build's Triton compiles started in parallel before tactic timing. The GPU
part (Triton's warm-up compiles under AsyncCompileMode) runs on the device; here: the launch switch,
which candidates are warmed (generated ones, untimed, once per signature), and that nothing is lost
when a candidate fails."""
from types import SimpleNamespace

import pytest

from tensorforge.builder import autotune as at
from tensorforge.builder import precompile
from tensorforge.kernels.triton import launch

pytest.importorskip("triton")


class FakeJit:
    def __init__(self):
        self.warmups, self.launches = [], []

    def warmup(self, *args, grid, **meta):
        self.warmups.append((args, grid, meta))

    def __getitem__(self, grid):
        return lambda *a, **m: self.launches.append((a, grid, m))


def test_warming_turns_launches_into_compiles(monkeypatch):
    k = launch.compile_source("def kern(x, N: tl.constexpr):\n    pass\n", "kern")
    fake = FakeJit()
    monkeypatch.setattr(launch.Kernel, "jit", property(lambda self: fake))
    with launch.warming() as n:
        k[(4,)](1.0, N=8)
        k[(2,)](2.0, N=8)
    assert n[0] == 2 and len(fake.warmups) == 2 and not fake.launches
    assert fake.warmups[0] == ((1.0,), (4,), {"N": 8})


@pytest.mark.parametrize("env,want", [("0", 0), ("1", 1), ("6", 6), ("", None), ("many", None)])
def test_threads(monkeypatch, env, want):
    monkeypatch.setenv("TF_COMPILE_THREADS", env)
    assert precompile.threads() == (want if want is not None else min(16, __import__("os").cpu_count() or 1))


def _selector(layers, device="cuda"):
    """A Selector stand-in: two layers share a signature; candidates triton (2), aten (1)."""
    cands = [{"source": "triton", "name": "a"}, {"source": "triton", "name": "boom"}, {"source": "aten", "name": "x"}]
    keys = {"L1": "sig1", "L2": "sig1", "L3": "sig3"}

    def untimed(lay):
        return {}, cands, keys[lay.name], {}, {}, list(cands)
    return SimpleNamespace(device=SimpleNamespace(type=device), level=3, plan=SimpleNamespace(opset=17),
                           weights={}, dev_weights={}, stats={}, untimed=untimed)


def test_each_generated_candidate_is_run_once_per_signature(monkeypatch):
    monkeypatch.setenv("TF_COMPILE_THREADS", "4")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # (the CPU suite's interpreter mode turns it off)
    ran = []

    class Bench:
        def __init__(self, *a):
            self.sets = [["x"]]

        def in_layout(self, cl):
            return self

    def layer_fn(lay, c, opset, device):
        def fn(ins):
            ran.append((lay.name, c["name"]))
            if c["name"] == "boom":
                raise RuntimeError("no kernel for this shape")
        return fn
    monkeypatch.setattr(at, "LayerBench", Bench)
    monkeypatch.setattr(at, "layer_fn", layer_fn)
    sel = _selector(None)
    precompile.warm_compile(sel, [SimpleNamespace(name=n) for n in ("L1", "L2", "L3")])
    assert ran == [("L1", "a"), ("L1", "boom"), ("L3", "a"), ("L3", "boom")]  # L2: L1's signature; aten: never
    assert sel.stats["compiled_ahead"] == 2 and sel.stats["compile_threads"] == 4


@pytest.mark.parametrize("device,env", [("cpu", "4"), ("cuda", "0"), ("cuda", "1")])
def test_off_on_the_cpu_or_when_asked(monkeypatch, device, env):
    monkeypatch.setenv("TF_COMPILE_THREADS", env)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(at, "LayerBench", lambda *a: pytest.fail("warmed"))
    sel = _selector(None, device)
    precompile.warm_compile(sel, [SimpleNamespace(name="L1")])
    assert "compiled_ahead" not in sel.stats


def test_a_layer_without_inputs_is_skipped(monkeypatch):
    """A layer whose benchmark inputs cannot be made (out of memory, say) loses only its head start."""
    monkeypatch.setenv("TF_COMPILE_THREADS", "2")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    ran = []

    class Bench:
        def __init__(self, plan, lay, *a):
            if lay.name == "L1":
                raise MemoryError("no room")
            self.sets = [["x"]]

        def in_layout(self, cl):
            return self
    monkeypatch.setattr(at, "LayerBench", Bench)
    monkeypatch.setattr(at, "layer_fn", lambda lay, c, opset, device: lambda ins: ran.append((lay.name, c["name"])))
    sel = _selector(None)
    precompile.warm_compile(sel, [SimpleNamespace(name=n) for n in ("L1", "L3")])
    assert ran == [("L3", "a"), ("L3", "boom")] and sel.stats["compiled_ahead"] == 2
