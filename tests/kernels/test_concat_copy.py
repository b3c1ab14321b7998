"""aten tactic concat_copy (fused.Concat with nearest-upsampled inputs) against the op reference:
into a given output buffer (NCHW, or the channels-last view of an NHWC activation) and without one."""
import pytest
import torch

from tensorforge.kernels.aten.concat import ConcatCopy
from tensorforge.kernels.layouts import logical
from tensorforge.ops import registry


def _rand(shape, seed):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 4 - 2


CASES = [  # (axis, inputs, upsample)
    (1, [_rand((2, 3, 2, 3), 0), _rand((2, 4, 4, 6), 1), _rand((2, 1, 1, 2), 2)], [[1, 1, 2, 2], None, [1, 1, 4, 3]]),
    (-1, [_rand((3, 5, 2), 3), _rand((3, 5, 7), 4)], [[1, 1, 3], None]),
    (0, [_rand((1, 2, 3), 5), _rand((2, 2, 3), 6)], [[2, 1, 1], None]),
]


@pytest.mark.parametrize("axis,ins,ups", CASES)
def test_concat_copy_matches_the_reference(axis, ins, ups):
    attrs = {"axis": axis, "upsample": ups}
    want = registry.get("fused.Concat").run(ins, attrs, 17)[0]
    assert torch.equal(ConcatCopy(axis, ups)(ins)[0], want)
    buf = torch.full(want.shape, float("nan"))
    got = ConcatCopy(axis, ups)(ins, [buf])[0]
    assert got is buf and torch.equal(buf, want)


def test_concat_copy_into_an_nhwc_buffer_and_from_nhwc_inputs():
    axis, ins, ups = CASES[0]
    want = registry.get("fused.Concat").run(ins, {"axis": axis, "upsample": ups}, 17)[0]
    raw = torch.full(want.shape, float("nan"))  # NHWC bytes in an NCHW-shaped buffer
    view = logical(raw)
    nhwc_ins = [x.contiguous(memory_format=torch.channels_last) for x in ins]
    got = ConcatCopy(axis, ups)(nhwc_ins, [view])[0]
    assert got is view and torch.equal(view, want)
    assert torch.equal(raw, want.permute(0, 2, 3, 1).reshape(want.shape))
