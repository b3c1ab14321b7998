"""Source generation for the triton "qgemm" tactic (pure strings: nothing here imports triton).

tf_qgemm: a quantized GEMM out = Q?(epilogue(dq(A @ B) + bias, dq(extras)...)) over [BLOCK_M,
BLOCK_N] tiles in grouped order. A [M, K] and B [K, N] (through strides) are float8 e4m3 (tl.dot
accumulates in fp32; the product of two e4m3 values is exact) or int8 (tl.dot into an int32
accumulator: exact). The epilogue, all in fp32: the accumulator times the activation scale (xs,
with the Gemm's alpha) and the weight scale (one, or one per output column), plus the bias, then
the layer's expression over the extra inputs (each dequantized, (x - zp) * s, when the layer names
its Q parameters), then the output Q (as QuantizeLinear: divide by the scale, round half to even
and saturate; for e4m3 codegen.e4m3). The graph's own output Q usually arrives folded into the
epilogue expression (Div, Clip, Round, Cast), which the same code generator translates."""
from __future__ import annotations

from dataclasses import dataclass

from .codegen import PRELUDE, TL, e4m3, expr_lines
from .gemm_source import I, _grouped, _head, _load, _out_offsets, _tile

# Hopper's FP8 tensor cores accumulate in reduced precision, and Triton lets a whole K loop of fp8 dots
# run that way on sm90 (max_num_imprecise_acc_default = 2**30): on an H200 the e4m3 conv (qconv) was then off
# by up to 12 e4m3 steps at K ~ 2000. One promotion into the fp32 accumulator per BLOCK_K (at most 128
# products summed in the tensor core, as cuBLAS and DeepSeek-V3's FP8 GEMMs do) keeps it exact enough.
FP8_DOT = "max_num_imprecise_acc=BLOCK_K"

TL_Q = {"float8e4m3fn": "tl.float8e4nv", "int8": "tl.int8", "uint8": "tl.uint8"}
INT_RANGE = {"int8": (-128, 127), "uint8": (0, 255)}


@dataclass(frozen=True)
class QGemmSignature:
    """What a generated quantized GEMM is specialized on."""
    qtype: str  # A and B: float8e4m3fn | int8
    out_dtype: str  # the stored type (the output Q's type when out_q)
    per_channel: bool = False  # weight scales: one per output column (else one)
    bias: str | None = None  # the bias vector's dtype
    extras: tuple = ()  # (dtype, kind) of each extra epilogue input
    extra_q: tuple = ()  # per extra: True when it is dequantized (scale, zero point arguments)
    out_q: bool = False  # the output is quantized (scale, zero point arguments)
    even_k: bool = False  # every K chunk is a whole BLOCK_K: no K masks
    int64: bool = False  # 64-bit element offsets
    fast_acc: bool = False  # fp8: the whole K loop in the tensor core's reduced-precision accumulator


def _mainloop(sig):
    i2 = I + I
    cast = ".to(tl.int64)" if sig.int64 else ""
    integer = sig.qtype == "int8"
    lines = [f"{I}rk = tl.arange(0, BLOCK_K){cast}"]
    if sig.int64:
        lines += [f"{I}ram = ram.to(tl.int64)", f"{I}rbn = rbn.to(tl.int64)"]
    lines += [f"{I}a_ptrs = a + ram[:, None] * sam + rk[None, :] * sak",
              f"{I}b_ptrs = b + rk[:, None] * sbk + rbn[None, :] * sbn",
              f"{I}acc = tl.zeros((BLOCK_M, BLOCK_N), dtype={'tl.int32' if integer else 'tl.float32'})",
              f"{I}for kk in range(0, tl.cdiv(K, BLOCK_K)):"]
    if sig.even_k:
        lines += [f"{i2}xa = tl.load(a_ptrs)", f"{i2}xb = tl.load(b_ptrs)"]
    else:
        zero = "0" if integer else "0.0"  # (an int `other` does not cast to fp8)
        lines += [f"{i2}kmask = rk < K - kk * BLOCK_K",
                  f"{i2}xa = tl.load(a_ptrs, mask=kmask[None, :], other={zero})",
                  f"{i2}xb = tl.load(b_ptrs, mask=kmask[:, None], other={zero})"]
    dot = "tl.dot(xa, xb, acc, out_dtype=tl.int32)" if integer else \
        "tl.dot(xa, xb, acc)" if sig.fast_acc else f"tl.dot(xa, xb, acc, {FP8_DOT})"
    return lines + [f"{i2}acc = {dot}", f"{i2}a_ptrs += BLOCK_K * sak", f"{i2}b_ptrs += BLOCK_K * sbk"]


def requant_lines(out_dtype: str, val: str, offs: str = "offs", mask: str = "cmask") -> list[str]:
    """Lines storing `val` (fp32) quantized with (oqs, oqz) into `out_dtype` at out + offs (also the
    quantized conv's store)."""
    if out_dtype == "float8e4m3fn":
        return [f"{I}q = {e4m3(f'tl.div_rn({val}, oqs)')}",
                f"{I}tl.store(out + {offs}, q.to(tl.float8e4nv), mask={mask})"]
    lo, hi = INT_RANGE[out_dtype]
    return [f"{I}q = _rint(tl.div_rn({val}, oqs)) + oqz",
            f"{I}q = tl.minimum(tl.maximum(q, {float(lo)!r}), {float(hi)!r})",
            f"{I}tl.store(out + {offs}, q.to(tl.int32).to({TL_Q[out_dtype]}), mask={mask})"]


def _epilogue(sig, epilogue, consts):
    lines = [f"{I}y = acc.to(tl.float32) * xs"]
    if sig.per_channel:
        lines.append(f"{I}y = y * tl.load(ws + rn[None, :], mask=rn[None, :] < N, other=0.0)")
    else:
        lines.append(f"{I}y = y * tl.load(ws)")
    if sig.bias:
        lines.append(f"{I}y = y + {_load('c', sig.bias, 'inner')}")
    vals, in_dt = ["y"], ["float32"]
    for j, ((dt, kind), q) in enumerate(zip(sig.extras, sig.extra_q)):
        name = f"x{j + 1}"
        if q:  # a quantized residual: (x - zp) * s in fp32
            offs = {"full": "offs", "inner": "rn[None, :]", "outer": "ram[:, None]"}
            mask = {"full": "cmask", "inner": "rn[None, :] < N"}.get(kind, "cmask")
            zero = "0.0" if dt.startswith("float8") else "0"
            src = f"tl.load({name})" if kind == "scalar" else \
                f"tl.load({name} + {offs[kind]}, mask={mask}, other={zero})"
            lines.append(f"{I}{name}v = ({src}.to(tl.float32) - {name}z) * {name}s")
            in_dt.append("float32")
        else:
            lines.append(f"{I}{name}v = {_load(name, dt, kind)}")
            in_dt.append(dt)
        vals.append(f"{name}v")
    out = "y"
    if epilogue:
        ls, out, _ = expr_lines(epilogue, vals, in_dt, "e", consts)
        lines += [I + ln for ln in ls]
    if sig.out_q:
        return lines + requant_lines(sig.out_dtype, out)
    return lines + [f"{I}tl.store(out + offs, {out}.to({TL[sig.out_dtype]}), mask=cmask)"]


def qgemm_source(sig: QGemmSignature, epilogue=None, name="tf_qgemm") -> tuple[str, list]:
    """(module source, [(const arg name, value)]) of the quantized GEMM kernel. Arguments: a, b, ws,
    [c], [x1..], out, M, N, K, sam, sak, sbk, sbn, xs, [xjs, xjz per quantized extra], [oqs, oqz],
    consts, then the constexpr blocks."""
    consts: list = []
    body = _grouped() + _tile() + _mainloop(sig) + _out_offsets(sig) + _epilogue(sig, epilogue, consts)
    ops = (["c"] if sig.bias else []) + [f"x{j + 1}" for j in range(len(sig.extras))]
    qargs = [a for j, q in enumerate(sig.extra_q) if q for a in (f"x{j + 1}s", f"x{j + 1}z")]
    params = ["a", "b", "ws"] + ops + ["out", "M", "N", "K", "sam", "sak", "sbk", "sbn", "xs"] + qargs
    params += (["oqs", "oqz"] if sig.out_q else []) + [c for c, _ in consts]
    params += ["BLOCK_M: tl.constexpr", "BLOCK_N: tl.constexpr", "BLOCK_K: tl.constexpr", "GROUP_M: tl.constexpr"]
    return PRELUDE + "\n".join(_head(name, params) + body) + "\n", consts
