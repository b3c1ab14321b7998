"""FP16/BF16 engines of the zoo models agree with the FP32 reference (ONNX Runtime on CPU):
output cosine >= 0.999 (FP16) / 0.99 (BF16), and FP16 top-1 agreement for classifiers (where the
reference's top-2 margin is not a near tie).

BF16 keeps 8 mantissa bits against FP16's 11: on the random-weight CNNs of the zoo (deep, badly
conditioned) a CPU BF16 build measured cosine 0.9965 (ResNet-50, MobileNetV2) where FP16 gave
0.9998, so BF16 is held to 0.99."""
import numpy as np
import pytest

import tensorforge as tf
from tensorforge.testing import run_ort

CLASSIFIERS = ["resnet50", "mobilenetv2", "vit_b16"]
OTHERS = ["bert_base", "gpt2_small", "yolo_det"]
MIN_COS = {"fp16": 0.999, "bf16": 0.99}
# full-size builds time sweep's subset of each Triton family's configs (compiles dominated the
# suite's time; every offered config is checked against the reference in test_triton_*)
pytestmark = pytest.mark.usefixtures("triton_sweep")


def _cos(a, b):
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _run(name, precision, batch=4):
    from tensorforge import zoo
    model = zoo.get_model(name)
    feed = zoo.random_inputs(name, batch, seed=7)
    eng = tf.Builder(tf.BuilderConfig(device="cuda", **{precision: True})).build(model)
    got = eng.create_execution_context().infer(feed)
    return eng, {k: v.float().cpu().numpy() for k, v in got.items()}, run_ort(model, feed)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("name", CLASSIFIERS + OTHERS)
def test_reduced_precision_zoo_agrees_with_fp32(name, precision):
    eng, got, ref = _run(name, precision)
    low = {"fp16": "float16", "bf16": "bfloat16"}[precision]
    assert any(lay.precision == low for lay in eng.plan.layers)
    assert all(o.dtype == str(ref[o.name].dtype) for o in eng.outputs)  # I/O keep their ONNX types
    for k, r in ref.items():
        g = got[k]
        assert np.isfinite(g).all(), k
        if not np.issubdtype(r.dtype, np.floating):
            continue
        assert _cos(g, r) >= MIN_COS[precision], (k, _cos(g, r))
        if name in CLASSIFIERS and precision == "fp16":
            top2 = np.sort(r, axis=-1)[..., -2:]
            clear = (top2[..., 1] - top2[..., 0]) > 1e-2 * (r.max(-1) - r.min(-1))
            agree = g.argmax(-1) == r.argmax(-1)
            assert agree[clear].all(), (k, agree, clear)


def test_sensitive_layers_keep_fp32_math():
    """Softmax / norm layers may run with fp16 I/O, overflow-prone ones (Exp, sums) run in fp32."""
    eng, _, _ = _run("bert_base", "fp16", batch=2)
    prec = {lay.type: lay.precision for lay in eng.plan.layers}
    for t in ("Exp", "Pow", "ReduceSum"):
        assert prec.get(t, "float32") == "float32", t
