"""The fp16_form tactic of quantized layers (the "no regression" candidate, also chosen in engines):
its dequantized weight is made once and kept, and made again when a refit writes new weights in place."""
from types import SimpleNamespace

import torch

from tensorforge.kernels.aten.quant import fp16_form_kernel
from tensorforge.ops.fused.quant import float_form


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    xq = torch.randint(-100, 100, (2, 8, 9, 9), generator=g, dtype=torch.int8)
    wq = torch.randint(-120, 120, (6, 8, 3, 3), generator=g, dtype=torch.int8)
    bias = torch.randn(6, generator=g)
    w_scale = torch.rand(6, generator=g) * 0.01 + 1e-3
    return [xq, wq, bias, w_scale]


def test_weight_is_kept_and_remade_after_an_in_place_refit(monkeypatch):
    attrs = {"x_scale": 0.05, "x_zp": 0, "pads": [1, 1, 1, 1], "strides": [1, 1], "out_dtype": "float32"}
    layer = SimpleNamespace(type="fused.QConv")
    fn = fp16_form_kernel(layer, attrs, 17, torch.device("cpu"), {})
    ins = _inputs()
    made = []
    import tensorforge.kernels.aten.quant as q
    real = q.float_weight
    monkeypatch.setattr(q, "float_weight", lambda *a: made.append(1) or real(*a))
    ref = float_form("fused.QConv", ins, attrs, torch.float32)
    for _ in range(3):
        torch.testing.assert_close(fn(ins)[0], ref, rtol=0, atol=0)
    assert len(made) == 1
    ins[1].copy_(_inputs(seed=1)[1])  # a refit: new weights in the same tensor
    ins[3].mul_(2)
    torch.testing.assert_close(fn(ins)[0], float_form("fused.QConv", ins, attrs, torch.float32), rtol=0, atol=0)
    assert len(made) == 2
    assert not torch.equal(fn(ins)[0], ref)
