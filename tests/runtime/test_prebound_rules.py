"""When recorded driver launches may be replayed: every pointer inside the launch's own tensors, no
per-launch scratch memory, at least one launch, no launch the driver did not make."""
from types import SimpleNamespace

import pytest
import torch

from tensorforge.kernels import driver


def _lk(scratch=0):
    b = SimpleNamespace(global_scratch=(scratch, 16), profile_scratch=(0, 1), shared=0)
    return SimpleNamespace(b=b, size=16, offsets=[0, 8], fn=None, block=128)


def _rec(ptrs, scratch=0):
    rec = driver.Recording()
    rec.add(_lk(scratch), (1, 1, 1), bytes(16), ptrs)
    return rec


def test_pointers_outside_the_launch_tensors_are_not_replayed():
    x, out, tmp = torch.empty(64), torch.empty(64), torch.empty(64)
    assert _rec([x.data_ptr(), tmp.data_ptr()]).prebound([x, out]) is None  # a temporary
    end = x.data_ptr() + x.untyped_storage().nbytes()
    assert _rec([end]).prebound([x]) is None  # one past the end is outside


def test_scratch_untracked_or_empty_recordings_are_not_replayed():
    x = torch.empty(64)
    assert _rec([x.data_ptr()], scratch=128).prebound([x]) is None
    rec = _rec([x.data_ptr()])
    with driver.recording() as r2:
        driver.untracked_launch()
    assert not r2.ok and r2.prebound([x]) is None
    assert driver.Recording().prebound([x]) is None
    assert rec.ok


def test_views_of_the_launch_tensors_are_inside():
    pytest.importorskip("cuda.bindings")
    x = torch.empty(8, 8)
    p = _rec([x[2:].data_ptr(), 0]).prebound([x])
    assert isinstance(p, driver.Prebound) and len(p.launches) == 1
