"""The op registry: a rule registered twice raises, rules keyed by opset (`since`), one module per op,
every family module listed explicitly."""
import os

import pytest
import torch

from tensorforge.errors import UnsupportedOpError
from tensorforge.ops import registry
from tensorforge.ops.registry import DuplicateOpError, infer, reference, symval

OPS_DIR = os.path.dirname(registry.__file__)
HELPERS = {"registry", "common", "spatial", "symvalue", "fused.expr", "fused.qdq_expr", "lowbit", "contrib.mlas",
           "interpreter", "nearest"}  # modules that register no op


@pytest.fixture
def fresh(monkeypatch):
    """An empty registry for the test (the real one is restored afterwards)."""
    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_loaded", True)


def _same(node):
    return [(node.inputs[0].dtype, node.inputs[0].shape)]


@pytest.mark.parametrize("kind", [reference, infer, symval])
def test_registering_twice_raises(fresh, kind):
    kind("T")(lambda *a, **k: None)
    with pytest.raises(DuplicateOpError, match=r"'T' \(since opset 1\) registered twice"):
        kind("T")(lambda *a, **k: None)


def test_duplicate_in_a_multi_op_registration_raises(fresh):
    infer("A", "B")(_same)
    with pytest.raises(DuplicateOpError, match="'B'"):
        infer("B", "C")(_same)


def test_same_op_in_another_domain_or_opset_is_not_a_duplicate(fresh):
    reference("T")(lambda x: x)
    reference("T", domain="test.domain")(lambda x: x)
    reference("T", since=13)(lambda x: x)
    with pytest.raises(DuplicateOpError, match="test.domain::T"):
        reference("T", domain="test.domain")(lambda x: x)


def test_reference_is_chosen_by_opset(fresh):
    reference("T")(lambda x: x + 1)
    reference("T", since=13)(lambda x, _opset=None: x * 10 + _opset)
    infer("T")(_same)
    d = registry.get("T")
    x = torch.tensor([1.0])
    assert d.run([x], {}, 11)[0].item() == 2.0
    assert d.run([x], {}, 12)[0].item() == 2.0
    assert d.run([x], {}, 13)[0].item() == 23.0  # the opset-13 rule, and it receives the opset
    assert d.run([x], {}, 18)[0].item() == 28.0
    assert d.reference(x, _opset=0).item() == 10.0  # `.reference` is the newest


def test_infer_and_symval_are_chosen_by_opset(fresh):
    reference("T")(lambda x: x)
    infer("T")(_same)
    infer("T", since=18)(lambda node: [("int64", ())])
    symval("T", since=13)(lambda node, x: [x])
    d = registry.get("T")
    assert d.infer_at(17) is _same and d.infer_at(18) is not _same and d.infer is d.infer_at(20)
    assert d.symval_at(12) is None and d.symval_at(13) is not None


def test_opset_below_every_rule_is_unsupported(fresh):
    reference("T", since=13)(lambda x: x)
    infer("T")(_same)
    with pytest.raises(UnsupportedOpError, match="opset 11"):
        registry.get("T").run([torch.zeros(1)], {}, 11)


def test_get_unknown_op_names_the_node(fresh):
    with pytest.raises(UnsupportedOpError, match="unsupported op 'Nope' \\(node 'n1'\\)"):
        registry.get("Nope", "", "n1")


def test_softmax_has_an_opset_13_rule():
    """Softmax flattens to 2D at axis before opset 13 and normalizes along axis from 13 on."""
    d = registry.get("Softmax")
    assert sorted(d.references) == [1, 13]
    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))
    old, new = d.run([x], {"axis": 1}, 12)[0], d.run([x], {"axis": 1}, 13)[0]
    torch.testing.assert_close(old, torch.softmax(x.reshape(2, 12), -1).reshape(2, 3, 4))
    torch.testing.assert_close(new, torch.softmax(x, 1))


def test_each_op_is_defined_in_one_module():
    """An op's reference, inference rule and symbolic-value rule live in one file."""
    spread = {d.op: sorted(d.defined_in) for d in registry.definitions() if len(d.defined_in) != 1}
    assert not spread


def test_every_family_module_is_listed():
    """registry.MODULES names every ops module that registers ops (no directory scan)."""
    found = set()
    for root, _, files in os.walk(OPS_DIR):
        rel = os.path.relpath(root, OPS_DIR)
        for f in files:
            if f.endswith(".py") and f != "__init__.py":
                found.add(f[:-3] if rel == "." else f"{rel.replace(os.sep, '.')}.{f[:-3]}")
    assert found - HELPERS == set(registry.MODULES)
    used = {m.split("tensorforge.ops.", 1)[1] for d in registry.definitions() for m in d.defined_in
            if m.startswith("tensorforge.ops.")}  # plugins registered by earlier tests live elsewhere
    assert used == set(registry.MODULES)
