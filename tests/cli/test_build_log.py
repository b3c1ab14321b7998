"""The build part of forgeexec's log: pass statistics with --verbose, one --avgTiming default with
BuilderConfig, and notes that say what the library does today."""
from tensorforge import BuilderConfig
from tensorforge.cli.forgeexec import flags
from tensorforge.cli.forgeexec.options import parse

from .forgeexec_helpers import FAST


def test_verbose_log_shows_pass_stats(cli, tiny_onnx):
    rc, out, _ = cli(f"--onnx={tiny_onnx}", "--shapes=x:1x3x8x8", "--verbose", *FAST)
    assert rc == 0
    lines = [line for line in out.splitlines() if "[V]" in line]
    from tensorforge import passes
    assert any(f"Optimizer passes: {len(passes.PIPELINE)} in" in line for line in lines)
    assert any("pass fuse_epilogue:" in line and "nodes 4 -> 3" in line for line in lines)
    assert any("rule Epilogue: fired 1" in line for line in lines)
    rc, out, _ = cli(f"--onnx={tiny_onnx}", "--shapes=x:1x3x8x8", *FAST)
    assert rc == 0 and "Optimizer passes" not in out


def test_avg_timing_has_one_default():
    assert flags.BY_NAME["--avgTiming"].default == BuilderConfig().avg_timing == 8
    assert parse(["--onnx=m.onnx"]).avgTiming == BuilderConfig().avg_timing


def test_no_stale_library_notes(cli, tiny_onnx):
    rc, out, _ = cli(f"--onnx={tiny_onnx}", "--shapes=x:1x3x8x8", "--maxAuxStreams=2", "--memPoolSize=workspace:64",
                     *FAST)
    assert rc == 0 and "does not schedule auxiliary streams" not in out
    assert "--memPoolSize: accepted and validated, but it has no effect" in out
    assert not hasattr(BuilderConfig(), "mem_pool_size")
