"""Progress lines: off when stdout is not a terminal, drawn (and erased) on a fake one, in builds
and in forgeexec's benchmark loop."""
from __future__ import annotations

import io
import sys

from tensorforge.progress import Progress, is_tty


class FakeTTY(io.StringIO):
    """A captured stream that says it is a terminal."""

    def isatty(self):
        return True


def test_off_when_not_a_terminal():
    out = io.StringIO()
    with Progress("work", 4, "layers", stream=out) as bar:
        for i in range(1, 5):
            bar.update(i)
    assert out.getvalue() == "" and not is_tty(out) and not is_tty(object())


def test_line_with_eta_on_a_terminal():
    out, t = FakeTTY(), [0.0]
    bar = Progress("work", 4, "layers", stream=out, clock=lambda: t[0])
    t[0] = 2.0
    bar.update(1)
    assert out.getvalue() == "\rwork: 1/4 layers (25%, ETA 6.0 s)"
    t[0] = 2.05
    bar.update(2)  # within the redraw interval: skipped
    assert "2/4" not in out.getvalue()
    t[0] = 4.0
    bar.update(4)  # the end is always drawn
    assert out.getvalue().endswith("\rwork: 4/4 layers (100%)".ljust(len("work: 1/4 layers (25%, ETA 6.0 s)") + 1))
    bar.close()
    assert out.getvalue().endswith("\r" + " " * len("work: 1/4 layers (25%, ETA 6.0 s)") + "\r")


def test_build_progress_only_on_a_terminal(monkeypatch, capsys):
    from tensorforge import Builder, BuilderConfig
    from tests.core.models import conv_net
    Builder(BuilderConfig(device="cpu")).build(conv_net())
    assert "selecting tactics" not in capsys.readouterr().out
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stdout", tty)
    Builder(BuilderConfig(device="cpu")).build(conv_net())
    assert "\rBuilding: selecting tactics: " in tty.getvalue() and "layers (100%)" in tty.getvalue()


def test_benchmark_progress_only_on_a_terminal(monkeypatch, capsys, tmp_path):
    from tensorforge.cli.forgeexec.main import main
    from tests.cli.forgeexec_helpers import make_tiny_onnx
    model = make_tiny_onnx(tmp_path / "t.onnx")
    assert main([f"--onnx={model}", "--iterations=5", "--duration=0", "--warmUp=0"]) == 0
    assert "\rBenchmark:" not in capsys.readouterr().out
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stdout", tty)
    assert main([f"--onnx={model}", "--iterations=5", "--duration=0", "--warmUp=0"]) == 0
    text = tty.getvalue()
    assert "\rBenchmark: (100%)" in text and "=== Performance summary ===" in text
