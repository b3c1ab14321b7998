"""References are capture-safe: run with device inputs on "meta" (host inputs stay CPU tensors, as
the runtime passes them), they build every helper tensor on the input's device: no host<->device copy
(`.to(device)` of a CPU tensor, `torch.tensor(..., device=dev)`), no `.item()` on device data, no
CPU tensor meeting a device tensor. Outputs stay on the device with the CPU run's shapes/dtypes."""
import math

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from tensorforge.ops import registry

aten = torch.ops.aten
META = torch.device("meta")
_COPIES = (aten._to_copy.default, aten.copy_.default, aten.copy.default)


class _HostCopyGuard(TorchDispatchMode):
    """Record aten calls that would copy host<->device, sync, or mix host and device tensors."""

    def __init__(self, bad):
        super().__init__()
        self.bad = bad

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        ts = [a for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        kinds = {t.device.type for t in ts}
        if func == aten._to_copy.default and kwargs.get("device") is not None \
                and torch.device(kwargs["device"]).type != args[0].device.type:
            self.bad.append(f"{func}: {args[0].device} -> {kwargs['device']}")
        elif func in _COPIES and len(kinds) > 1:
            self.bad.append(f"{func} between {sorted(kinds)}")
        elif func == aten._local_scalar_dense.default and args[0].device.type != "cpu":
            self.bad.append(f".item() on a {args[0].device} tensor")
        elif len(kinds) > 1 and any(t.device.type == "cpu" and t.dim() > 0 for t in ts):
            self.bad.append(f"{func} mixes {sorted(kinds)} tensors")
        return func(*args, **kwargs)


class _NewTensorGuard(TorchFunctionMode):
    """torch.tensor / as_tensor on a device is a pageable host->device copy."""

    def __init__(self, bad):
        super().__init__()
        self.bad = bad

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.tensor, torch.as_tensor) and kwargs.get("device") is not None \
                and torch.device(kwargs["device"]).type != "cpu":
            self.bad.append(f"{func.__name__}(..., device={kwargs['device']})")
        return func(*args, **kwargs)


def _run(op, inputs, attrs, opset, device, host):
    """The reference on `device` (host inputs stay CPU); returns (outputs, violations)."""
    ins = [None if t is None else (t if i in host else t.to(device)) for i, t in enumerate(inputs)]
    bad = []
    with _NewTensorGuard(bad), _HostCopyGuard(bad):
        out = _opdef(op).run(ins, attrs, opset, None, device)
    return out, bad


def _opdef(op):
    domain, _, name = op.rpartition("::")
    return registry.get(name, domain)


def f(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) * 2 - 1


def i64(*v):
    return torch.tensor(v, dtype=torch.int64)


def f32(*v):
    return torch.tensor(v, dtype=torch.float32)


X4 = f(1, 2, 4, 5)
E = torch.empty(0)
CASES = [  # (id, op, inputs, attrs, opset)
    ("resize_nearest_scales", "Resize", [X4, E, f32(1, 1, 2.0, 1.5)], {}, 19),
    ("resize_nearest_sizes", "Resize", [X4, None, None, i64(1, 2, 7, 3)],
     {"nearest_mode": "round_prefer_ceil", "coordinate_transformation_mode": "asymmetric"}, 19),
    ("resize_linear_scales", "Resize", [X4, None, f32(1, 1, 0.6, 2.0)], {"mode": "linear"}, 19),
    ("resize_linear_sizes_align", "Resize", [X4, None, None, i64(1, 2, 8, 9)],
     {"mode": "linear", "coordinate_transformation_mode": "align_corners"}, 19),
    ("resize_cubic_exclude", "Resize", [X4, None, f32(1, 1, 1.5, 0.8)],
     {"mode": "cubic", "exclude_outside": 1}, 19),
    ("resize_antialias", "Resize", [X4, None, f32(1, 1, 0.5, 0.6)], {"mode": "linear", "antialias": 1}, 19),
    ("resize_crop_extrapolate", "Resize", [X4, f32(0, 0, 0.1, -0.2, 1, 1, 1.3, 0.9), None, i64(1, 2, 3, 6)],
     {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize", "extrapolation_value": 5.0}, 19),
    ("resize_axes_policy", "Resize", [X4, None, None, i64(6, 6)],
     {"axes": [2, 3], "keep_aspect_ratio_policy": "not_larger"}, 19),
    ("resize_10", "Resize", [X4, f32(1, 1, 2, 2)], {}, 10),
    ("upsample_input", "Upsample", [X4, f32(1, 1, 2, 3)], {"mode": "linear"}, 9),
    ("upsample_attr", "Upsample", [X4], {"scales": [1.0, 1.0, 2.0, 2.0]}, 7),
    ("pad_constant_input", "Pad", [X4, i64(0, 0, 1, -1, 0, 1, 2, 1), f32(0.5)], {}, 18),
    ("pad_constant_default", "Pad", [X4, i64(0, 0, 1, 2, 0, 0, 3, 1)], {}, 18),
    ("pad_reflect_axes", "Pad", [X4, i64(2, 3, 1, 2), None, i64(2, -1)], {"mode": "reflect"}, 18),
    ("pad_edge", "Pad", [X4, i64(0, 1, 1, 2, 0, 1, 3, 1)], {"mode": "edge"}, 18),
    ("pad_wrap", "Pad", [X4, i64(0, 0, 2, 1, 0, 0, 1, 3)], {"mode": "wrap"}, 19),
    ("range_int", "Range", [i64(2), i64(11), i64(3)], {}, 17),
    ("range_float", "Range", [f32(0.5), f32(-2.0), f32(-0.75)], {}, 17),
    ("constant_of_shape", "ConstantOfShape", [i64(2, 3)], {"value": torch.tensor([7], dtype=torch.int32)}, 17),
    ("slice_negative_steps", "Slice", [X4, i64(-1, 4), i64(-1000, 0), i64(3, 2), i64(-2, -1)], {}, 17),
    ("slice_mixed_steps", "Slice", [X4, i64(0, -1), i64(5, 0), i64(3, 1), i64(2, -3)], {}, 17),
    ("gather_negative", "Gather", [X4, i64(-1, 0, -4, 2)], {"axis": 3}, 17),
    ("gather_elements_negative", "GatherElements", [X4, -torch.ones(1, 2, 4, 2, dtype=torch.int64)], {"axis": 3}, 17),
    ("gather_nd_negative", "GatherND", [X4, torch.tensor([[[-1, 2], [0, -3]]])], {"batch_dims": 1}, 17),
    ("topk", "TopK", [X4, i64(3)], {"axis": -1, "largest": 0}, 17),
    ("trilu", "Trilu", [X4, i64(-1)], {"upper": 0}, 17),
    ("cumsum", "CumSum", [X4, i64(-1)], {"exclusive": 1, "reverse": 1}, 17),
    ("einsum", "Einsum", [f(2, 3, 4), f(2, 4, 5, seed=1)], {"equation": "bij,bjk->bik"}, 17),
    ("clip_inputs", "Clip", [X4, f32(-0.5), f32(0.25)], {}, 13),
    ("clip_min_only", "Clip", [X4, f32(-0.5)], {}, 13),
    ("clip_attrs", "Clip", [X4], {"min": -0.2, "max": 0.3}, 6),
    ("onehot", "OneHot", [i64(0, -1, 2), i64(4), f32(-1, 2)], {}, 17),
    ("eyelike", "EyeLike", [f(3, 4)], {"k": 1}, 17),
    ("expand_tile", "Tile", [f(2, 3), i64(2, 1)], {}, 17),
    ("expand", "Expand", [f(2, 1), i64(3, 2, 4)], {}, 17),
    ("col2im", "Col2Im", [f(1, 8, 6), i64(3, 4), i64(2, 2)], {}, 18),
    ("hann_window", "HannWindow", [i64(8)], {}, 17),
]


def _attention_cases():
    q, k, v = f(2, 3, 4, 8), f(2, 3, 6, 8, seed=1), f(2, 3, 6, 8, seed=2)
    bool_mask = f(4, 6, seed=3) > -0.5
    return [
        ("attention_bool_mask", "Attention", [q, k, v, bool_mask], {}, 23),
        ("attention_float_mask_causal", "Attention", [q, k, v, f(4, 6, seed=4)], {"is_causal": 1}, 23),
        ("attention_past_softcap", "Attention", [q, k, v, None, f(2, 3, 2, 8, seed=5), f(2, 3, 2, 8, seed=6)],
         {"is_causal": 1, "softcap": 2.0, "scale": 0.3}, 23),
        ("attention_nonpad", "Attention", [q, k, v, None, None, None, i64(5, 6)], {}, 24),
        ("attention_3d_gqa_window", "Attention", [f(2, 4, 16), f(2, 6, 8, seed=1), f(2, 6, 8, seed=2)],
         {"q_num_heads": 4, "kv_num_heads": 2, "left_window_size": 2, "is_causal": 1}, 24),
        ("flex_attention_gqa", "ai.onnx.preview::FlexAttention", [q, k[:, :1], v[:, :1]], {"scale": 0.2}, 1),
        ("fused_attention_mask", "fused.Attention", [q, k, v, bool_mask], {"scale": 0.3}, 17),
    ]


@pytest.mark.parametrize("case", CASES + _attention_cases(), ids=lambda c: c[0])
def test_reference_builds_helpers_on_input_device(case):
    _, op, inputs, attrs, opset = case
    host = set(_opdef(op).host_inputs)
    cpu, bad = _run(op, inputs, attrs, opset, torch.device("cpu"), host)
    assert not bad, bad  # nothing crosses devices when everything is on the host
    meta, bad = _run(op, inputs, attrs, opset, META, host)
    assert not bad, f"{op}: host<->device traffic in the reference: {bad}"
    assert len(meta) == len(cpu)
    for m, c in zip(meta, cpu):
        assert m.device == META, f"{op}: output on {m.device}, expected the input's device"
        assert (m.dtype, tuple(m.shape)) == (c.dtype, tuple(c.shape))


def test_guard_catches_host_copies():
    """The guards see the patterns they are meant to reject."""
    bad = []
    x = torch.empty(3, device=META)
    with _NewTensorGuard(bad), _HostCopyGuard(bad):
        x + torch.arange(3).to(x.device)
        torch.tensor(1.0, device=x.device)
        try:
            x.sum().item()
        except Exception:
            pass
    assert len(bad) == 3, bad


def test_host_only_references_use_device_when_given():
    """Range/ConstantOfShape/windows have only host inputs: the runtime's device decides, CPU by default."""
    out = registry.get("Range").run([i64(0), i64(5), i64(2)], {}, 17)[0]
    assert out.device.type == "cpu" and out.tolist() == [0, 2, 4]
    out = registry.get("Range").run([i64(0), i64(5), i64(2)], {}, 17, None, META)[0]
    assert out.device == META and out.shape == (3,)
    w = registry.get("HannWindow").run([i64(4)], {}, 17, None, None)[0]
    assert torch.allclose(w, torch.tensor([0.0, 0.5, 1.0, 0.5]), atol=1e-6) and math.isclose(w.sum(), 2.0)
