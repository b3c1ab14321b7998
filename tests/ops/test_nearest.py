"""ops.nearest: which nearest Resize modes read in[y // s] (against the general per-axis tables),
and the one-copy upsample against the general path."""
import pytest
import torch

from tensorforge.ops import registry
from tensorforge.ops.nearest import floor_mapping, upsample_nearest
from tensorforge.ops.resize import axis_table, resize_axis

COORDS = ["asymmetric", "half_pixel", "pytorch_half_pixel", "half_pixel_symmetric", "align_corners",
          "tf_crop_and_resize"]
NEAREST = ["floor", "ceil", "round_prefer_floor", "round_prefer_ceil"]


def _reads_floor(coord, nm, s, in_w):
    """The general table for an integer scale s picks in[y // s] at every output y."""
    idx, w, ext = axis_table(in_w, s * in_w, float(s), "nearest", coord, nm)
    pick = idx.gather(1, w.argmax(1, keepdim=True)).reshape(-1)
    return ext is None and torch.equal(pick, torch.arange(s * in_w) // s)


@pytest.mark.parametrize("coord", COORDS)
@pytest.mark.parametrize("nm", NEAREST)
def test_floor_mapping_table_matches_the_reference(coord, nm):
    """floor_mapping claims exactly the (mode, scale) pairs whose tables are floor(y / s) at every input length."""
    for s in range(2, 9):
        exact = all(_reads_floor(coord, nm, s, n) for n in range(1, 12))
        assert floor_mapping(coord, nm, s) == exact, (coord, nm, s)


def test_the_accepted_modes_are_the_common_ones():
    assert floor_mapping("asymmetric", "floor", 4)  # torch nn.Upsample / Paddle / Upsample-9
    assert floor_mapping("half_pixel", "round_prefer_floor", 3)  # the ONNX default
    assert floor_mapping("asymmetric", "round_prefer_floor", 2) and not floor_mapping("asymmetric", "round_prefer_floor", 3)
    assert not floor_mapping("align_corners", "round_prefer_floor", 3) and not floor_mapping("half_pixel", "floor", 2)


def _general(x, factors, coord="asymmetric", nm="floor"):
    y = x
    for a, f in enumerate(factors):
        if f > 1:
            idx, w, ext = axis_table(x.shape[a], f * x.shape[a], float(f), "nearest", coord, nm)
            y = resize_axis(y, a, idx, w, ext, nearest=True)
    return y


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.int64, torch.bool])
@pytest.mark.parametrize("factors", [[1, 1, 2, 2], [1, 1, 3, 4], [1, 2, 1, 1], [2, 1, 1, 8]])
def test_one_copy_upsample_equals_the_general_path(dtype, factors):
    g = torch.Generator().manual_seed(sum(factors))
    x = (torch.rand((2, 3, 5, 7), generator=g) * 20 - 10).to(dtype)
    want = _general(x, factors)
    assert torch.equal(upsample_nearest(x, factors), want)
    nhwc = x.contiguous(memory_format=torch.channels_last)  # a channels-last input stays channels-last
    got = upsample_nearest(nhwc, factors)
    assert torch.equal(got, want) and (factors[1] > 1 or got.is_contiguous(memory_format=torch.channels_last))


@pytest.mark.parametrize("coord,nm,scales,fast", [
    ("asymmetric", "floor", [1, 1, 2, 3], True), ("half_pixel", "round_prefer_ceil", [1, 1, 4, 4], True),
    ("pytorch_half_pixel", "round_prefer_floor", [1, 1, 2, 2], True),
    ("half_pixel", "floor", [1, 1, 2, 2], False), ("align_corners", "floor", [1, 1, 2, 2], False),
    ("asymmetric", "floor", [1, 1, 1.5, 2], False)])
def test_resize_reference_takes_the_copy_only_where_exact(monkeypatch, coord, nm, scales, fast):
    """The Resize reference gives the general path's values; the fast path is taken only where exact."""
    import tensorforge.ops.resize as rs
    calls = []
    monkeypatch.setattr(rs, "upsample_nearest", lambda x, f: calls.append(f) or upsample_nearest(x, f))
    x = torch.randn(1, 3, 5, 6, generator=torch.Generator().manual_seed(3))
    attrs = {"mode": "nearest", "coordinate_transformation_mode": coord, "nearest_mode": nm}
    got = registry.get("Resize").run([x, None, torch.tensor(scales), None], attrs, 19)[0]
    want = x
    for a, s in enumerate(scales):
        if s != 1:
            idx, w, ext = axis_table(x.shape[a], int(s * x.shape[a]), float(s), "nearest", coord, nm)
            want = resize_axis(want, a, idx, w, ext, nearest=True)
    assert torch.equal(got, want) and bool(calls) == fast
