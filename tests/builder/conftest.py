import pytest

from tensorforge.builder import tactics

ANCHORS = ("Conv", "fused.ConvAct", "Gemm", "fused.GemmAct", "MatMul", "fused.MatMulAct")
FAKE_TACTICS = ("f1", "f2", "f3", "x4", "x5", "wrong", "boom")  # the names tests offer


class FakeTimer:
    """Deterministic tactic times: ms from a table by tactic name (default 1.0); counts calls."""

    def __init__(self, table=None, default=1.0):
        self.table, self.default, self.calls = dict(table or {}), default, []

    def __call__(self, layer, tactic, bench):
        self.calls.append((layer.name, tactic["name"]))
        t = self.table.get(tactic["name"], self.default)
        return t(layer, tactic) if callable(t) else t


@pytest.fixture
def fake_timer(monkeypatch):
    """Install a FakeTimer as the tactic timer (tests set .table)."""
    t = FakeTimer()
    monkeypatch.setattr(tactics, "TIMER", t)
    return t


@pytest.fixture
def fake_source():
    """Register an extra tactic source 'fake' whose tactics run the reference (or a wrong result)."""
    from tensorforge import kernels
    from tensorforge.kernels import registry
    offered = []

    def factory(layer, attrs, opset, device, params):
        from tensorforge.builder.autotune import layer_fn
        ref = layer_fn(layer, kernels.reference(), opset, device)
        if params.get("wrong"):
            return lambda ins: [o + 1.0 for o in ref(ins)]
        if params.get("raises"):
            def boom(ins):
                raise RuntimeError("no kernel for this shape")
            return boom
        return ref

    @kernels.tactic_family("fake", {n: factory for n in FAKE_TACTICS}, library="FAKE", needs_shapes=False)
    def fake_candidates(layer, shapes, device):
        return [dict(t) for t in offered] if layer.type in ANCHORS else []
    yield offered
    registry.unregister(kernels.family_of({"source": "fake", "name": FAKE_TACTICS[0]}))
