"""Generated kernels run in triton's CPU interpreter (when triton is installed and there is no GPU;
on CUDA machines tests/gpu/test_triton_kernels.py runs the same checks compiled)."""
import pytest
import torch

from . import cases, kernel_checks

pytestmark = [cases.interpreter_only, pytest.mark.usefixtures("interpret")]


@pytest.mark.parametrize("check", ["pointwise", "softmax", "norms", "reduce", "epilogue", "upsample"])
def test_kernel_matches_reference(check):
    getattr(kernel_checks, f"check_{check}")("cpu", torch.float32)


def test_fp16_pointwise_and_norms():
    kernel_checks.check_pointwise("cpu", torch.float16)
    kernel_checks.check_upsample("cpu", torch.float16)
    kernel_checks.check_norms("cpu", torch.float16)


def test_engine_runs_upsampled_pointwise_layers_with_the_generated_kernel(monkeypatch):
    """A CPU engine of the DB-style FPN neck with its fused.Pointwise layers (each reading a nearest
    upsample through indexing) switched to the triton tactic: generated kernels, ONNX Runtime's values."""
    import numpy as np

    import tensorforge as tf
    from tensorforge.kernels.triton import runners
    from tensorforge.runtime.engine import Engine
    from tensorforge.testing import run_ort
    from tests.passes.fpn_model import fpn_model
    made = []
    compile_source = runners.compile_source
    monkeypatch.setattr(runners, "compile_source", lambda src, name: made.append(name) or compile_source(src, name))
    m, feed = fpn_model()
    eng = tf.Builder(tf.BuilderConfig(opt_level=0, device="cpu")).build(m)
    layers = [lay for lay in eng.plan.layers if lay.type == "fused.Pointwise" and lay.attrs.get("upsample")]
    for lay in layers:
        lay.tactic = {"source": "triton", "name": "pointwise", "params": {"BLOCK": 256, "num_warps": 4}}
    got = Engine(eng.plan, eng.weights, "cpu").create_execution_context().infer(feed)["y"].numpy()
    assert len(layers) == 3 and made.count("tf_pointwise") == 3
    np.testing.assert_allclose(got, run_ort(m, feed)["y"], rtol=1e-5, atol=1e-6)


def test_e4m3_cast_matches_torch_on_every_boundary(interpret):
    """codegen.e4m3 (multiply by the step's exact inverse, round half to even, saturate at 448, keep -0)."""
    kernel_checks.check_e4m3_cast("cpu")
