"""`tensorforge compare` / `ops` / `inspect`: exit codes and one-line errors."""
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

from tensorforge.cli.main import main
from tensorforge.testing import make_model

from .models import conv_net


def _run(argv, capsys):
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_compare_passes_on_a_zoo_model(capsys):
    rc, out, _ = _run(["compare", "zoo:resnet50_small", "--shapes=input:2x3x64x64"], capsys)
    assert rc == 0 and "PASSED | tensorforge vs onnxruntime" in out and "cosine=1.000000" in out


def test_compare_fails_with_exit_1_when_outside_tolerance(tmp_path, capsys):
    p = tmp_path / "m.onnx"
    onnx.save(conv_net(), p)
    rc, out, _ = _run(["compare", str(p), "--bf16", "--atol=1e-12", "--rtol=1e-12"], capsys)
    assert rc == 1 and "FAILED | tensorforge vs onnxruntime" in out and "mismatched=" in out


def test_compare_load_inputs(tmp_path, capsys):
    p = tmp_path / "m.onnx"
    onnx.save(conv_net(), p)
    np.savez(tmp_path / "in.npz", x=np.random.default_rng(0).uniform(-1, 1, (3, 3, 16, 16)).astype(np.float32))
    rc, out, _ = _run(["compare", str(p), f"--load-inputs={tmp_path / 'in.npz'}"], capsys)
    assert rc == 0 and "float32[3, 10]" in out
    np.savez(tmp_path / "bad.npz", other=np.zeros(3))
    rc, _, err = _run(["compare", str(p), f"--load-inputs={tmp_path / 'bad.npz'}"], capsys)
    assert rc == 1 and "has no array for input(s) x" in err


def test_compare_errors_are_one_line(tmp_path, capsys):
    rc, _, err = _run(["compare", str(tmp_path / "missing.onnx")], capsys)
    assert rc == 1 and err.strip().count("\n") == 0 and "model file not found" in err
    rc, _, err = _run(["compare", "zoo:resnet50_small", "--shapes=input:2x3"], capsys)
    assert rc == 1 and "wrong rank" in err
    m = make_model([helper.make_node("NoSuchOp", ["x"], ["y"], name="n1")], [("x", TensorProto.FLOAT, [2])],
                   [("y", TensorProto.FLOAT, [2])])
    p = tmp_path / "u.onnx"
    onnx.save(m, p)
    rc, _, err = _run(["compare", str(p)], capsys)
    assert rc == 1 and "unsupported op 'NoSuchOp' (node 'n1')" in err and "tensorforge ops" in err


def test_ops_lists_supported_ops(capsys):
    rc, out, _ = _run(["ops"], capsys)
    assert rc == 0 and "supported ONNX ops" in out and "\nConv\n" in out


def test_inspect_missing_file_exit_code_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tensorforge.cli.main", "inspect", str(tmp_path / "nope")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "file not found" in r.stderr


def _compare_args(*argv):
    from tensorforge.cli.main import parser
    return parser().parse_args(["compare", "zoo:resnet50_small", *argv])


def test_compare_speaks_forgeexec_flag_names_and_defaults(tmp_path):
    from tensorforge import BuilderConfig
    from tensorforge.cli.compare_cmd import build_config
    from tensorforge.cli.forgeexec.flags import BY_NAME
    from tensorforge.cli.main import COMPARE_FLAGS
    assert all(f in BY_NAME for f in COMPARE_FLAGS)
    cfg = build_config(_compare_args("--device=cpu"))
    want = BuilderConfig(device="cpu")
    assert (cfg.opt_level, cfg.avg_timing, cfg.fp16, cfg.tf32, cfg.timing_cache) == \
        (want.opt_level, want.avg_timing, False, True, None)
    cache = str(tmp_path / "t.cache")
    cfg = build_config(_compare_args("--device=cpu", "--fp16", "--noTF32", "--builderOptimizationLevel=1",
                                     f"--timingCacheFile={cache}", "--avgTiming=2", "--stronglyTyped"))
    assert (cfg.fp16, cfg.tf32, cfg.opt_level, cfg.timing_cache, cfg.avg_timing, cfg.strongly_typed) == \
        (True, False, 1, cache, 2, True)
    assert build_config(_compare_args("--device=cpu", "--best")).bf16  # --best: fp16 and bf16 (bf16 on the CPU)
    assert build_config(_compare_args("--device=cpu", "--opt-level=0")).opt_level == 0  # the old name still works


def test_compare_device_takes_forgeexecs_index_or_a_device_name(capsys):
    from tensorforge.cli.compare_cmd import build_config
    assert build_config(_compare_args("--device=1")).device == "cuda:1"
    assert build_config(_compare_args("--device=cuda:0")).device == "cuda:0"
    rc, _, err = _run(["compare", "zoo:resnet50_small", "--device=gpu"], capsys)
    assert rc == 1 and "--device must be N, cuda[:N] or cpu" in err
