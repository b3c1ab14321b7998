"""ImageDecoder: encoded bytes decoded on the host (Pillow), output sized at run time."""
import io

import numpy as np
import pytest
from onnx import TensorProto, helper

from tensorforge.backend import TensorforgeBackend

PIL = pytest.importorskip("PIL.Image")


@pytest.mark.parametrize("fmt", ["RGB", "BGR", "Grayscale"])
def test_png_decodes_like_pillow(fmt):
    img = (np.random.default_rng(0).random((5, 7, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    PIL.fromarray(img).save(buf, format="PNG")
    data = np.frombuffer(buf.getvalue(), np.uint8)
    node = helper.make_node("ImageDecoder", ["x"], ["y"], pixel_format=fmt)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.UINT8, ["n"])],
                          [helper.make_tensor_value_info("y", TensorProto.UINT8, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)], ir_version=9)
    (y,) = TensorforgeBackend.prepare(m, "CPU").run([data])
    want = {"RGB": img, "BGR": img[:, :, ::-1],
            "Grayscale": np.array(PIL.fromarray(img).convert("L"))[:, :, None]}[fmt]
    np.testing.assert_array_equal(y, want)
