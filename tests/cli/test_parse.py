"""Argument parsing, help, and every error path: message, FAILED line, exit 1, no traceback."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tensorforge.cli.forgeexec.options import UnknownOptions, parse, split_argv, wants_help
from tensorforge.cli.forgeexec.shapes import UsageError
from tensorforge.cli.forgeexec.validate import validate


def _fails(rc, out, err, message):
    """Common checks of a failed run."""
    assert rc == 1
    assert message in err
    assert "&&&& FAILED tensorforge.forgeexec # forgeexec" in out
    assert "Traceback" not in out + err


def test_split_at_first_equals():
    assert split_argv(["--shapes=x:1x2", "--fp16", "--a=b=c"]) == [("--shapes", "x:1x2"), ("--fp16", None),
                                                                    ("--a", "b=c")]


def test_parse_values_and_defaults():
    o = parse(["--onnx=m.onnx", "--iterations=7", "--warmUp=12.5", "--fp16", "--staticPlugins=a",
               "--staticPlugins=b"])
    assert (o.onnx, o.iterations, o.warmUp, o.fp16, o.duration) == ("m.onnx", 7, 12.5, True, 3.0)
    assert o.staticPlugins == ["a", "b"] and o.avgRuns == 10 and o.percentile == "90,95,99"


@pytest.mark.parametrize("argv", [[], ["--help"], ["-h"], ["--onnx=x", "--help"]])
def test_help_exit_0(cli, argv):
    assert wants_help(argv)
    rc, out, err = cli(*argv)
    assert rc == 0 and "=== Build Options ===" in out and "--useCudaGraph" in out
    assert out.startswith("&&&& RUNNING tensorforge.forgeexec # forgeexec")
    assert "PASSED" not in out and "FAILED" not in out


@pytest.mark.parametrize("argv, shown", [
    (["--onnx=m.onnx", "--bogus"], "Unknown option: --bogus "),
    (["--onnx=m.onnx", "--iterations", "100"], "Unknown option: --iterations "),
    (["--onnx=m.onnx", "--iterations=abc"], "Unknown option: --iterations abc"),
    (["--onnx=m.onnx", "--fp16=yes"], "Unknown option: --fp16 yes"),
    (["--onnx=m.onnx", "iterations=5"], "Unknown option: iterations 5"),
    (["--onnx=m.onnx", "--iterations=5", "--iterations=6"], "Unknown option: --iterations 6"),
    (["--onnx=m.onnx", "--streams=2", "--infStreams=2"], "Unknown option: --infStreams 2"),
    (["--onnx=m.onnx", "--minShapes=x:1x3", "--minShapes=x:2x3"], "Unknown option: --minShapes x:2x3"),
])
def test_unknown_malformed_repeated(cli, argv, shown):
    rc, out, err = cli(*argv)
    _fails(rc, out, err, shown)
    assert "=== Model Options ===" in out  # the help is printed
    with pytest.raises(UnknownOptions):
        parse(argv)


@pytest.mark.parametrize("argv, message", [
    (["--fp16"], "Model missing or format not recognized"),
    (["--onnx=m.onnx", "--shapes=x:1xAx3"], "Invalid shape '1xAx3'"),
    (["--onnx=m.onnx", "--shapes=1x3x224x224"], "expected name:value"),
    (["--loadEngine=a.engine", "--saveEngine=b.engine"], "--saveEngine and --loadEngine cannot be specified"),
    (["--onnx=m.onnx", "--fp8", "--int8"], "fp8 and int8 aren't allowed to be enabled together"),
    (["--onnx=m.onnx", "--best", "--stronglyTyped"], "--best is not allowed with --stronglyTyped"),
    (["--onnx=m.onnx", "--tacticSources=CUDNN"], "needs a + or - sign"),
    (["--onnx=m.onnx", "--memPoolSize=workspace:12Q"], "Invalid memory pool size"),
    (["--onnx=m.onnx", "--percentile=101"], "Percentile 101 is not in [0, 100]"),
    (["--onnx=m.onnx", "--profilingVerbosity=loud"], "Unknown profilingVerbosity"),
    (["--onnx=m.onnx", "--profile=1", "--minShapes=x:1x3"], "unique and contiguous"),
    (["--onnx=m.onnx", "--minShapes=x:1x3", "--maxShapes=x:1x2"], "min <= opt <= max"),
    (["--onnx=m.onnx", "--infStreams=0"], "--infStreams must be at least 1"),
    (["--onnx=m.onnx", "--layerPrecisions=a:fp64"], "Invalid precision 'fp64'"),
])
def test_validation_errors(cli, argv, message):
    rc, out, err = cli(*argv)
    _fails(rc, out, err, message)
    assert "=== Model Options ===" in out


def _validated(*argv):
    o = parse(list(argv))
    return o, validate(o)


def test_strongly_typed_turns_precisions_off():
    o, warns = _validated("--onnx=m", "--fp16", "--int8", "--stronglyTyped")
    assert not o.fp16 and not o.int8
    assert any("--stronglyTyped" in w for w in warns) and any("Weakly-typed" in w for w in warns)


def test_deprecated_spellings():
    o, warns = _validated("--onnx=m", "--profilingVerbosity=verbose", "--builderOptimizationLevel=9", "--buildOnly")
    assert o.profilingVerbosity == "detailed" and o.builderOptimizationLevel == 5 and o.skipInference
    assert any("deprecated" in w for w in warns)


def test_profiles_grouped_and_broadcast():
    o, warns = _validated("--onnx=m", "--profile=0", "--minShapes=x:1x3", "--maxShapes=x:8x3",
                          "--profile=1", "--optShapes=x:16x3")
    assert o.profiles[0]["x"] == ((1, 3), (8, 3), (8, 3))
    assert o.profiles[1]["x"] == ((16, 3), (16, 3), (16, 3))
    assert "maxShapes is being broadcasted to optShapes for tensor x" in warns
    assert "optShapes is being broadcasted to minShapes for tensor x" in warns


def test_profile_repeat_inside_group_is_unknown():
    with pytest.raises(UnknownOptions):
        parse(["--onnx=m", "--profile=0", "--minShapes=x:1", "--minShapes=x:2"])


def test_shapes_before_profile_is_error():
    with pytest.raises(UsageError):
        parse(["--onnx=m", "--minShapes=x:1", "--profile=0"])


def test_missing_onnx_file(cli, tmp_path):
    rc, out, err = cli(f"--onnx={tmp_path}/nope.onnx")
    _fails(rc, out, err, "Cannot find ONNX file")


def test_missing_engine_file(cli, tmp_path):
    rc, out, err = cli(f"--loadEngine={tmp_path}/nope.engine")
    _fails(rc, out, err, "Error opening engine file")


def test_corrupt_engine_file(cli, tmp_path):
    bad = tmp_path / "bad.engine"
    bad.write_bytes(b"not an engine at all")
    rc, out, err = cli(f"--loadEngine={bad}")
    _fails(rc, out, err, "[E]")


def test_subprocess_bogus_flag():
    p = subprocess.run([sys.executable, "-m", "tensorforge.cli.forgeexec.main", "--bogus"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 1
    assert "Unknown option: --bogus" in p.stderr and "&&&& FAILED" in p.stdout
    assert "Traceback" not in p.stdout + p.stderr


def test_help_documents_levels_cache_and_activation_memory(cli):
    rc, out, err = cli("--help")
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("  --")}
    assert "0 = no timing, first heuristic tactic (timing cache ignored); 1/2 = time the top 2/4 candidates; " \
           "3 (default) = time all default candidates; 4/5 = also the extended tactic spaces" \
           in lines["--builderOptimizationLevel=N"]
    assert "direct (default)" in lines["--activationMemory=mode"] and "arena" in lines["--activationMemory=mode"]
    assert "timing cache" in lines["--errorOnTimingCacheMiss"] and "--timingCacheFile" in lines["--noBuilderCache"]


def test_builder_flags_map_to_config_fields():
    import torch

    from tensorforge.builder.config import BuilderConfig
    from tensorforge.cli.forgeexec.build import config_fields
    cpu = torch.device("cpu")
    o, _ = _validated("--onnx=m")
    f = config_fields(o, cpu, [])
    assert f["activation_memory"] == "direct" and f["error_on_timing_cache_miss"] is False and f["opt_level"] == 3
    o, warns = _validated("--onnx=m", "--activationMemory=arena", "--errorOnTimingCacheMiss", "--timingCacheFile=t",
                          "--builderOptimizationLevel=1")
    f = config_fields(o, cpu, [])
    assert (f["activation_memory"], f["error_on_timing_cache_miss"], f["timing_cache"], f["opt_level"]) == \
        ("arena", True, "t", 1) and not warns
    assert BuilderConfig(**f).activation_memory == "arena"
    o, warns = _validated("--onnx=m", "--noBuilderCache", "--timingCacheFile=t", "--errorOnTimingCacheMiss")
    assert config_fields(o, cpu, [])["timing_cache"] is None
    assert "--timingCacheFile is ignored because --noBuilderCache is given" in warns
    assert any("--errorOnTimingCacheMiss has no effect" in w for w in warns)


def test_bad_activation_memory(cli):
    rc, out, err = cli("--onnx=m.onnx", "--activationMemory=pool")
    _fails(rc, out, err, "Invalid value 'pool' for --activationMemory (choices: arena|direct)")
