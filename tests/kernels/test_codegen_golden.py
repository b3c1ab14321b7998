"""Generated Triton sources are deterministic: compare them with golden files.

Regenerate with TF_UPDATE_GOLDEN=1 after an intended change (and review the diff)."""
import os

import pytest

from tensorforge.kernels.triton.pointwise import Signature, pointwise_source
from tensorforge.kernels.triton.rowwise import RowSignature, norm_source, reduce_source, softmax_source

from . import cases

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")

SOURCES = {
    "pointwise_gelu_bias": lambda: pointwise_source(
        cases.gelu_bias_expr(), Signature(("float32", "float32"), ("full", "strided"), "float32", 2)),
    "pointwise_where_cast_fp16": lambda: pointwise_source(
        cases.where_cast_expr(), Signature(("float16", "float32"), ("full", "scalar"), "float16", 1, True)),
    "pointwise_int": lambda: pointwise_source(
        cases.int_expr(), Signature(("int64", "int64"), ("strided", "strided"), "int64", 3)),
    "pointwise_act_chain": lambda: pointwise_source(
        cases.act_chain_expr(), Signature(("bfloat16", "bfloat16"), ("full", "strided"), "bfloat16", 2)),
    "softmax_fp16": lambda: softmax_source(RowSignature(("float16",), ("full",), "float16", 0), log=False),
    "logsoftmax_strided": lambda: softmax_source(RowSignature(("float32",), ("strided",), "float32", 2), log=True),
    "layernorm_residual_relu": lambda: norm_source(
        RowSignature(("float32", "float32", "float32", "float32"), ("full", "inner", "inner", "full"), "float32", 0),
        rms=False, has_scale=True, has_bias=True, epilogue=cases.residual_relu_expr()),
    "rmsnorm_fp16": lambda: norm_source(RowSignature(("float16", "float16"), ("full", "inner"), "float16", 0),
                                        rms=True, has_scale=True, has_bias=False),
    "reduce_sum_square_prologue": lambda: reduce_source(
        RowSignature(("float32", "float32"), ("full", "outer"), "float32", 0), "sum", cases.square_prologue()),
    "reduce_logsumexp": lambda: reduce_source(RowSignature(("float16",), ("strided",), "float16", 2), "logsumexp"),
    "reduce_l2": lambda: reduce_source(RowSignature(("float32",), ("full",), "float32", 0), "l2"),
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_generated_source_matches_golden(name):
    src, _ = SOURCES[name]()
    assert src == SOURCES[name]()[0], "generation is not deterministic"
    compile(src, name, "exec")  # valid Python
    path = os.path.join(GOLDEN, f"{name}.py.golden")
    if os.environ.get("TF_UPDATE_GOLDEN") == "1" or not os.path.exists(path):
        if os.environ.get("TF_UPDATE_GOLDEN") != "1":
            pytest.fail(f"missing golden file {path} (run with TF_UPDATE_GOLDEN=1)")
        with open(path, "w") as f:
            f.write(src)
    with open(path) as f:
        assert src == f.read(), f"{name}: generated source changed (TF_UPDATE_GOLDEN=1 to accept)"


def test_codegen_does_not_import_triton():
    import subprocess
    import sys
    code = ("import sys; import tensorforge.kernels.triton.pointwise, tensorforge.kernels.triton.rowwise; "
            "import tensorforge.kernels.triton; assert 'triton' not in sys.modules, 'triton imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
