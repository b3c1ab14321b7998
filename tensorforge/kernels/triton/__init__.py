"""The triton tactic source (CUDA only): templated kernel families (attention, conv, dwconv, gemm, qgemm,
qconv, pool, se) and generated kernels (module generated: fused pointwise, softmax, layernorm / rmsnorm, reductions
with pointwise prologues, Conv/Gemm/MatMul epilogues). Every family registers with
kernels.registry.tactic_family; the registry imports this package only for CUDA devices.

Code generation (codegen, pointwise, rowwise, *_source) is pure string work and never imports
triton, so its golden tests run anywhere; only launch.compile_source imports it, at the first call."""
from __future__ import annotations

from ...ops import registry as ops


def tactic_dict(name: str, **params) -> dict:
    """A tactic dict of this source."""
    return {"source": "triton", "name": name, "params": params}


def reference(layer, attrs, opset):
    """fn(inputs) -> outputs of the op's reference: what a runner runs for inputs it does not cover."""
    op = ops.get(layer.type, layer.domain, layer.name)

    def ref(inputs):
        return op.run(inputs, attrs, opset)
    return ref


# imported in candidates order: the templated families, then the generated kernels
from . import attention, attention_q, conv, dwconv, gemm, qgemm, qconv, fp16_form, pool, se, generated  # noqa: E402,F401,I001  (register the families)
