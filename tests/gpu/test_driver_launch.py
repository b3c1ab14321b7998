"""Every Triton kernel family launched from its cubin through the CUDA driver API (kernels.driver)
gives bit-identical results to the same kernel launched by Triton.

Each launch of the family checks below runs twice: first through Triton (its output snapshotted),
then, with every tensor argument restored, through the driver from the cubin + metadata that went
through the engine-file container; all tensor arguments must then be bit-identical."""
import collections

import pytest
import torch

from tensorforge.kernels import cubin
from tensorforge.kernels.driver import Launcher
from tensorforge.kernels.triton import launch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _same(a, b) -> bool:
    """Bit-identical values (NaN where NaN)."""
    if not a.is_floating_point():
        return torch.equal(a, b)
    inf = float("inf")
    return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0.0, inf, -inf), b.nan_to_num(0.0, inf, -inf))


@pytest.fixture
def dual(monkeypatch):
    """Kernel launches run through Triton and then the driver; returns {kernel name: launches}."""
    pytest.importorskip("cuda.bindings")
    counts, loaded = collections.Counter(), {}

    def run(self, grid, *args, **meta):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        before = [t.clone() for t in tensors]
        spec = cubin.spec_of(args, meta)
        ck = self.jit[grid](*args, **meta)
        b = launch.binary_of(self.key, spec, ck, self.jit.arg_names)
        assert b is not None, f"{self.name}: not storable"
        by_triton = [t.clone() for t in tensors]
        for t, p in zip(tensors, before):
            t.copy_(p)
        if (b.key, b.spec) not in loaded:
            stored = cubin.unpack(cubin.pack([b], "test"))[(b.key, b.spec)]
            loaded[(b.key, b.spec)] = Launcher(stored, torch.cuda.current_device())
        lk = loaded[(b.key, b.spec)]
        lk.launch(grid, list(args) + [meta.get(n) for n in lk.names[len(args):]],
                  torch.cuda.current_stream().cuda_stream)
        for i, (t, want) in enumerate(zip(tensors, by_triton)):
            assert _same(t, want), f"{self.name}: argument {i} differs (driver vs Triton)"
        counts[self.name] += 1
    monkeypatch.setattr(launch.Kernel, "run", run)
    return counts


@pytest.mark.fast(check="pointwise")
@pytest.mark.parametrize("check", ["pointwise", "softmax", "norms", "reduce", "epilogue"])
def test_generated_row_and_pointwise_kernels(dual, check):
    from tests.kernels import kernel_checks
    getattr(kernel_checks, f"check_{check}")("cuda", torch.float16)
    want = {"pointwise": "tf_pointwise", "softmax": "tf_softmax", "norms": "tf_norm", "reduce": "tf_reduce",
            "epilogue": "tf_pointwise"}[check]
    assert dual[want] > 0, dict(dual)


def test_gemm_family(dual):
    from tests.gpu import test_triton_gemm as G
    G.test_default_configs_all_cases(torch.float16)
    G.test_split_k_extremes_and_out_buffer()
    assert dual["tf_gemm"] > 0 and dual["tf_gemm_reduce"] > 0, dict(dual)


def test_conv_family(dual):
    from tensorforge.kernels.triton import conv
    from tests.gpu import test_triton_conv as C
    C.test_default_configs_even_k(conv.LEVEL3[0], torch.float16)
    C.test_every_config_bf16(conv.LEVEL3[0])
    assert dual["tf_conv_igemm"] > 0, dict(dual)


def test_attention_family(dual):
    from tensorforge.kernels.triton import attention as fa
    from tensorforge.kernels.triton.attention_source import NAME
    from tests.gpu import test_triton_attention as A
    A.test_masks_padded_heads_and_causal(fa.LEVEL3[0], torch.float16)
    assert dual[NAME] > 0, dict(dual)


def test_pool_family(dual):
    from tests.gpu import test_triton_pool as P
    P.test_every_attribute_case(torch.float16)
    P.test_every_config_global("GlobalAveragePool", torch.float16)
    assert dual["tf_pool2d"] > 0 and dual["tf_global_pool"] > 0, dict(dual)
