"""Pass instrumentation: per-pass stats, rule fires and declines with reasons, dump and verify
after every pass (switched by the TENSORFORGE_* knobs of tensorforge.env)."""
import logging
import os

import numpy as np
import pytest

from tensorforge import env, frontend, passes
from tensorforge.ir import GraphInvariantError
from tensorforge.passes import PipelineStats
from tensorforge.passes.rewrite import Decline

from .util import init, model

X = [("x", [2, 3, 8, 8])]


def _conv_add(addend_shape):
    """Conv(x, w, b) + c for a constant c of `addend_shape`."""
    rng = np.random.default_rng(0)
    inits = [init("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
             init("b", rng.standard_normal(4).astype(np.float32)),
             init("c", rng.standard_normal(addend_shape).astype(np.float32))]
    return model([("Conv", ["x", "w", "b"], ["y0"], {"pads": [1, 1, 1, 1]}, "conv1"),
                  ("Add", ["y0", "c"], ["y"], {}, "add1")], X, ["y"], inits)


def _rec(stats, name):
    """The first record of pass `name`."""
    return next(p for p in stats.passes if p.name == name)


def test_stats_record_every_pass_with_times_node_counts_and_fires():
    stats = PipelineStats()
    g = passes.run_pipeline(frontend.load(_conv_add([1, 4, 1, 1])), stats=stats)
    assert [p.name for p in stats.passes] == [p.__name__ for p in passes.PIPELINE]
    assert all(p.seconds >= 0 for p in stats.passes)
    conv = _rec(stats, "fuse_conv")
    assert (conv.nodes_before, conv.nodes_after) == (2, 1) and conv.fires["ConvBias"] == 1
    assert stats.passes[-1].nodes_after == len(g.nodes) == 1
    text = stats.format()
    assert "pass fuse_conv:" in text and "rule ConvBias: fired 1" in text


def test_planted_non_fusable_pattern_records_the_decline_reason():
    stats = PipelineStats()
    passes.run_pipeline(frontend.load(_conv_add([1, 4, 8, 8])), stats=stats)  # varies over H, W: no bias
    conv = _rec(stats, "fuse_conv")
    assert conv.fires["ConvBias"] == 0
    assert conv.declines[("ConvBias", "addend is not constant per output channel")] == 1
    assert "rule ConvBias: declined 1 (addend is not constant per output channel)" in stats.format()
    assert _rec(stats, "fuse_epilogue").fires["Epilogue"] == 1  # the Add still runs inside the conv


def test_declines_count_each_root_once_across_sweeps():
    stats = PipelineStats()
    passes.run_pipeline(frontend.load(_conv_add([1, 4, 8, 8])), [passes.fuse_conv, passes.fuse_conv],
                        stats=stats)
    assert [sum(p.declines.values()) for p in stats.passes] == [1, 1]


def test_decline_is_falsy_and_carries_its_reason():
    d = Decline("why")
    assert not d and d.reason == "why" and "why" in repr(d)


def test_dump_passes_writes_one_file_per_pass(tmp_path, monkeypatch):
    monkeypatch.setenv(env.DUMP_PASSES, str(tmp_path / "dump"))
    passes.run_pipeline(frontend.load(_conv_add([1, 4, 1, 1])))
    files = sorted(os.listdir(tmp_path / "dump"))
    want = ["00_input.txt"] + [f"{i:02d}_{p.__name__}.txt" for i, p in enumerate(passes.PIPELINE, 1)]
    assert files == want
    assert "= Conv(" in (tmp_path / "dump" / "00_input.txt").read_text()
    assert "# conv1 + add1" in (tmp_path / "dump" / files[-1]).read_text()


def _break_graph(g):
    """A buggy pass: two nodes with one name."""
    g.nodes[-1].name = g.nodes[0].name = "dup"
    return g


_break_graph.__name__ = "break_graph"


def test_verify_passes_names_the_pass_that_broke_the_graph(monkeypatch):
    m = _conv_add([1, 4, 8, 8])
    passes.run_pipeline(frontend.load(m), [passes.fold_constants, _break_graph])  # not verified by default
    monkeypatch.setenv(env.VERIFY_PASSES, "1")
    with pytest.raises(GraphInvariantError, match=r"after pass 2 \(break_graph\): duplicate node name dup"):
        passes.run_pipeline(frontend.load(m), [passes.fold_constants, _break_graph])


def test_pass_stats_knob_logs_the_summary_at_info(monkeypatch, caplog):
    m = _conv_add([1, 4, 8, 8])
    with caplog.at_level(logging.INFO, logger="tensorforge"):
        passes.run_pipeline(frontend.load(m))
    assert "Optimizer passes" not in caplog.text  # DEBUG by default
    monkeypatch.setenv(env.PASS_STATS, "1")
    with caplog.at_level(logging.INFO, logger="tensorforge"):
        passes.run_pipeline(frontend.load(m))
    assert f"Optimizer passes: {len(passes.PIPELINE)}" in caplog.text and "declined 1 (addend is not constant" in caplog.text


def test_knobs_read_from_the_environment():
    assert env.knobs({}) == env.Knobs()
    k = env.knobs({env.DUMP_PASSES: "/d", env.VERIFY_PASSES: "1", env.PASS_STATS: "0"})
    assert k == env.Knobs(dump_passes="/d", verify_passes=True, pass_stats=False)
