"""The builder's tactic check on quantized outputs (tactic_check.check / quantized_match): a kernel that
sums in another order may move a value on a rounding boundary by one step of the output format. On an
H200 the FP8 LayerNorm + Q kernels of BERT differed from the reference by one e4m3 step at the largest
value (relative error 0.04-0.1 against a float tolerance of 0.01) and all 96 were rejected, leaving the
reference norms in the engine; FP8 qconv/qgemm tactics were rejected the same way (0.0714-0.111 > 0.07)."""
from types import SimpleNamespace

import pytest
import torch

from tensorforge.builder import tactic_check as at
from tensorforge.builder.tactics import quantized_output

F8 = torch.float8_e4m3fn


def _fp8(seed=0, n=4096):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, generator=g) * 40).to(F8)


def _bump(x, idx, steps=1):
    """x with the elements at idx moved up by `steps` representable e4m3 values (bit patterns)."""
    y = x.clone()
    b = y.view(torch.uint8)
    v = b[idx].to(torch.int16)
    sign = v & 0x80
    mag = (v & 0x7F) + (torch.where(sign > 0, -steps, steps))
    b[idx] = (sign | mag.clamp(0, 0x7E)).to(torch.uint8)
    return y


def test_one_fp8_step_everywhere_passes_and_three_fail():
    r = _fp8()
    assert at.quantized_match(_bump(r, torch.arange(r.numel())), r, 1)
    assert not at.quantized_match(_bump(r, torch.tensor([7]), 3), r, 1)


def test_two_fp8_steps_only_on_a_few_elements():
    r = _fp8(1)
    few = torch.arange(0, r.numel(), 200)  # 0.5 %
    many = torch.arange(0, r.numel(), 20)  # 5 %
    assert at.quantized_match(_bump(r, few, 2), r, 1)
    assert not at.quantized_match(_bump(r, many, 2), r, 1)


def test_fp8_steps_are_representable_values_apart():
    r = torch.tensor([448.0, 1.0, 2 ** -7, 0.0]).to(F8)  # largest, one, subnormal, zero
    up = torch.tensor([416.0, 1.125, 2 ** -7 + 2 ** -9, -2 ** -9]).to(F8)  # one value apart each (0 -> -2**-9 too)
    assert at.quantized_match(up, r, 1)
    off = torch.tensor([448.0, 1.5, 2 ** -7, 0.0]).to(F8)  # 1.0 -> 1.5: four steps
    assert not at.quantized_match(off, r, 1)


def test_fp8_near_zero_within_the_float_tolerance_passes():
    """An FP16 attention with an output Q (session 11, H200): its softmax in FP16 leaves an error of ~1e-3 of
    the largest output everywhere, hundreds of e4m3 steps near zero; within 1 % of the largest value it
    passes as a float output would, and an error of 5 % of it still fails."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4096, generator=g) ** 3 * 20  # many values near zero, the largest ~400
    r = x.clamp(-448, 448).to(F8)
    noisy = (x + torch.randn(4096, generator=g) * 1e-3 * float(x.abs().max())).clamp(-448, 448).to(F8)
    assert not at.quantized_match(noisy, r, 1)  # in steps alone: the near-zero values are far apart
    assert at.quantized_match(noisy, r, 1, rel=1e-2)
    wrong = (x + torch.randn(4096, generator=g) * 5e-2 * float(x.abs().max())).clamp(-448, 448).to(F8)
    assert not at.quantized_match(wrong, r, 1, rel=1e-2)


def test_fp8_nan_places_and_exact_mode():
    r = _fp8(2)
    g = r.clone()
    g.view(torch.uint8)[5] = 0x7F  # NaN in e4m3fn
    assert not at.quantized_match(g, r, 1)
    assert at.quantized_match(r.clone(), r, 0)
    assert not at.quantized_match(_bump(r, torch.tensor([3])), r, 0)


def test_int8_one_step_on_few_elements_only():
    g = torch.Generator().manual_seed(3)
    r = torch.randint(-128, 120, (5000,), generator=g, dtype=torch.int8)
    few, many = r.clone(), r.clone()
    few[::200] += 1
    many[::20] += 1
    assert at.quantized_match(few, r, 1)
    assert not at.quantized_match(many, r, 1)
    two = r.clone()
    two[0] += 2
    assert not at.quantized_match(two, r, 1)
    assert not at.quantized_match(few, r, 0)


def test_check_accepts_a_one_step_fp8_output_and_rejects_a_wrong_one():
    """What select() saw on the GPU: the tactic's largest output one e4m3 step off (relative 1/12)."""
    x = torch.randn(64, 48, generator=torch.Generator().manual_seed(4))
    bench = SimpleNamespace(sets=[[x]])

    def ref_fn(ins):
        return [(ins[0] * 30).to(F8)]
    want = ref_fn([x])[0]
    top = want.float().abs().argmax()
    one_step = _bump(want.flatten(), top.reshape(1)).reshape(want.shape)
    ok, _ = at.check(lambda ins: [one_step], ref_fn, bench, 1e-2, 1)
    assert ok
    wrong = (x * 33).to(F8)  # 10 % off everywhere: about one step on most elements, more on many
    ok, err = at.check(lambda ins: [wrong], ref_fn, bench, 1e-2, 1)
    assert not ok and err == float("inf")
    ok, _ = at.check(lambda ins: [one_step], ref_fn, bench, 1e-2, 0)  # not a quantized layer: exact
    assert not ok


@pytest.mark.parametrize("dtype,want", [("float8e4m3fn", True), ("int8", True), ("uint8", True),
                                        ("float16", False), ("int64", False)])
def test_quantized_output(dtype, want):
    plan = SimpleNamespace(tensors={"y": SimpleNamespace(dtype=dtype)})
    assert quantized_output(plan, SimpleNamespace(outputs=["y"])) is want
