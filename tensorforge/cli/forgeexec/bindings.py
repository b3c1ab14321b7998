"""Per-stream I/O buffers: device tensors bound to the context, host (pinned) mirrors for the copies."""
from __future__ import annotations

import numpy as np
import torch

from . import api


def output_shape(ctx, name: str) -> tuple:
    """The resolved shape of an output once all input shapes are set."""
    try:
        return tuple(int(d) for d in ctx.get_tensor_shape(name))
    except api.error_types():
        # the library resolves output shapes only once outputs are bound: evaluate its symbolic shape instead
        from tensorforge.runtime.binding import bind_symbols
        from tensorforge.runtime.shapes import eval_shape
        values = ctx._values() if getattr(ctx, "_shape_inputs", None) else None
        return tuple(eval_shape(ctx.plan.tensors[name].shape, bind_symbols(ctx.plan, ctx._shapes, values)))


class StreamBuffers:
    """The bindings of one execution context: device tensors plus host tensors for H2D/D2H."""

    def __init__(self, engine, ctx, backend, data: dict[str, torch.Tensor], transfers: bool):
        self.backend, self.transfers = backend, transfers
        dev = engine.device
        on_host = dev.type == "cpu"
        self.inputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # name: (host, device)
        for name, src in data.items():
            ctx.set_input_shape(name, tuple(src.shape))
        for name, src in data.items():
            if api.is_shape_input(engine, name):  # values stay in host memory: never copied to the device
                host = src.clone()
                ctx.set_tensor_address(name, host)
                self.inputs[name] = (host, host)
                continue
            host = src.clone() if on_host else backend.host_buffer(tuple(src.shape), src.dtype)
            if not on_host:
                host.copy_(src)
            d = host if on_host else torch.empty_like(src, device=dev)
            ctx.set_tensor_address(name, d)
            self.inputs[name] = (host, d)
        self.outputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.allocated: dict = {}  # outputs sized at run time: name -> their output allocator
        for desc in engine.outputs:
            shape = output_shape(ctx, desc.name)
            if ctx.plan.tensors[desc.name].dynamic:  # data-dependent: delivered once its size is known
                from tensorforge.runtime.dynamic import OutputAllocator
                self.allocated[desc.name] = OutputAllocator()
                ctx.set_output_allocator(desc.name, self.allocated[desc.name])
                continue
            if any(d < 0 for d in shape):  # the model's attributes give no valid output for these inputs
                raise api.error(f"output '{desc.name}' would have shape {list(shape)} for the given input "
                                "shapes; check the model's attributes (pads, strides, kernel) and the shapes")
            dtype = api.torch_dtype(desc.dtype)
            d = torch.empty(shape, dtype=dtype, device=dev)
            host = d if on_host else backend.host_buffer(shape, dtype)
            ctx.set_tensor_address(desc.name, d)
            self.outputs[desc.name] = (host, d)

    def h2d(self, stream) -> None:
        """Copy every input host -> device on stream (nothing to do on the CPU)."""
        for host, d in self.inputs.values():
            if host is not d:
                self.backend.copy(d, host, stream)

    def d2h(self, stream) -> None:
        """Copy every output device -> host on stream (nothing to do on the CPU)."""
        for host, d in self.outputs.values():
            if host is not d:
                self.backend.copy(host, d, stream)

    def upload(self) -> None:
        """Synchronous copy of the inputs to the device (before the loop when transfers are off)."""
        s = self.backend.stream()
        self.h2d(s)
        self.backend.synchronize(s)

    def download(self) -> dict[str, np.ndarray]:
        """Synchronous copy of the outputs to the host; returns numpy arrays in logical order."""
        s = self.backend.stream()
        self.d2h(s)
        self.backend.synchronize(s)
        out = {name: _to_numpy(host) for name, (host, _) in self.outputs.items()}
        out.update({name: _to_numpy(a.output(name)) for name, a in self.allocated.items()})
        return out


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    """numpy copy of a host tensor (bf16/fp8 widened to float32)."""
    t = t.detach().cpu()
    if t.dtype in (torch.bfloat16,) or "float8" in str(t.dtype):
        t = t.float()
    return t.numpy().copy()
