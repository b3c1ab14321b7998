"""Example plugin: a fused HardSwish (x * relu6(x + 3) / 6, MobileNetV3's activation) as one op
`example::HardSwish`, with a torch implementation (CPU and reference) and a Triton kernel.

    forgeexec --onnx=model.onnx --staticPlugins=examples/hardswish_plugin.py
    tensorforge.plugin.load("examples/hardswish_plugin.py")

To run it instead of the built-in ONNX HardSwish of one model:
    with plugin.override("example::HardSwish", op_type="HardSwish"):
        engine = tensorforge.Builder(config).build("model.onnx")"""
import torch

from tensorforge import plugin


def infer(inputs, attrs):
    """One output with the input's dtype and shape."""
    (dtype, shape), = inputs
    return [(dtype, shape)]


def reference(x):
    return x * torch.clamp(x + 3.0, 0.0, 6.0) / 6.0


hswish = plugin.register("example::HardSwish", infer=infer, reference=reference)


@hswish.torch_impl(name="torch", precisions=("float32", "float16", "bfloat16"))
def hardswish_torch(x):
    return torch.nn.functional.hardswish(x)


try:
    import triton
    import triton.language as tl
except ImportError:  # no Triton: the torch implementation only
    triton = None

if triton is not None:
    @triton.jit
    def _hardswish_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        x = tl.load(x_ptr + offs, mask=mask).to(tl.float32)
        y = x * tl.minimum(tl.maximum(x + 3.0, 0.0), 6.0) / 6.0
        tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)

    # device code: launched from data (one program per 1024 elements), so engines that chose it
    # load and run without this module (their cubins are stored in the engine)
    hswish.triton_kernel(_hardswish_kernel, name="triton", precisions=("float32", "float16"),
                         args=["in0", "out0", "numel0"], grid=[["cdiv", "numel0", 1024]], outputs=[0],
                         meta={"BLOCK": 1024})
