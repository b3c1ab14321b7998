"""`tensorforge compare` takes every input from --loadInputs (raw or .npy) or --load-inputs (.npz), or
random values, each at its --shapes shape."""
import numpy as np
import onnx

from tensorforge.cli.main import main

from .models import conv_net


def _run(argv, capsys):
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def _model(tmp_path):
    p = tmp_path / "m.onnx"
    onnx.save(conv_net(), p)
    return str(p)


def test_raw_load_inputs_at_shapes(tmp_path, capsys):
    m = _model(tmp_path)
    np.random.default_rng(0).uniform(-1, 1, (3, 3, 16, 16)).astype(np.float32).tofile(tmp_path / "x.bin")
    rc, out, _ = _run(["compare", m, f"--loadInputs=x:{tmp_path / 'x.bin'}", "--shapes=x:3x3x16x16"], capsys)
    assert rc == 0 and "float32[3, 10]" in out
    rc, _, err = _run(["compare", m, f"--loadInputs=x:{tmp_path / 'x.bin'}"], capsys)  # dynamic batch: shape?
    assert rc == 1 and "give its shape with --shapes" in err and "Traceback" not in err
    rc, _, err = _run(["compare", m, f"--loadInputs=x:{tmp_path / 'x.bin'}", "--shapes=x:2x3x16x16"], capsys)
    assert rc == 1 and "Unexpected file size" in err


def test_npy_and_npz_inputs_must_match_shapes(tmp_path, capsys):
    m = _model(tmp_path)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    rc, out, _ = _run(["compare", m, f"--loadInputs=x:{tmp_path / 'x.npy'}"], capsys)
    assert rc == 0 and "float32[2, 10]" in out
    np.savez(tmp_path / "in.npz", x=x)
    rc, _, err = _run(["compare", m, f"--load-inputs={tmp_path / 'in.npz'}", "--shapes=x:4x3x16x16"], capsys)
    assert rc == 1 and "loaded data has shape [2, 3, 16, 16], --shapes says [4, 3, 16, 16]" in err


def test_shapes_apply_to_random_inputs_and_names_are_checked(tmp_path, capsys):
    m = _model(tmp_path)
    rc, out, _ = _run(["compare", m, "--shapes=x:5x3x16x16"], capsys)
    assert rc == 0 and "float32[5, 10]" in out
    rc, _, err = _run(["compare", m, f"--loadInputs=y:{tmp_path / 'y.bin'}"], capsys)
    assert rc == 1 and "--loadInputs names unknown input(s): y" in err


def test_shapes_make_the_build_profile_when_they_cover_every_dynamic_input():
    from tensorforge.cli.compare_cmd import shapes_profiles
    (prof,) = shapes_profiles(conv_net(), "x:5x3x16x16")
    assert prof.get_shape("x") == ((5, 3, 16, 16),) * 3
    assert shapes_profiles(conv_net(), None) == [] and shapes_profiles(conv_net(), "x:5x3") == []


def test_bad_input_flags_fail_before_the_build(tmp_path, capsys):
    """Unknown input names, missing / special / non-.npy files: one line, no engine built first."""
    m = _model(tmp_path)
    (tmp_path / "junk.npy").write_text("not numpy")
    for argv, needle in [([f"--loadInputs=x:{tmp_path / 'none.bin'}"], "input file not found"),
                         (["--shapes=y:1x3x16x16"], "--shapes names unknown input(s): y (the model's inputs: x)"),
                         (["--loadInputs=x:/dev/zero", "--shapes=x:1x3x16x16"], "not a regular file"),
                         ([f"--loadInputs=x:{tmp_path / 'junk.npy'}"], "not a .npy file")]:
        rc, out, err = _run(["compare", m, *argv], capsys)
        assert rc == 1 and needle in err and err.count("\n") == 1, (argv, err)
        assert ("Built engine" in out) == ("junk" in argv[0]), (argv, out)  # only the .npy is read after it


def test_debug_precision_checks_input_flags_before_building(tmp_path, capsys, monkeypatch):
    """debug precision shares compare's check: a wrong name fails before any (trial) build."""
    import tensorforge
    m = _model(tmp_path)
    monkeypatch.setattr(tensorforge.Builder, "build", lambda *a, **k: (_ for _ in ()).throw(AssertionError("built")))
    rc, _, err = _run(["debug", "precision", m, "--shapes=y:1x3x16x16"], capsys)
    assert rc == 2 and "--shapes names unknown input(s): y" in err and err.count("\n") == 1, err
