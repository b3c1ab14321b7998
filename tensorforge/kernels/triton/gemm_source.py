"""Source generation for the triton "gemm" tactic (pure strings: nothing here imports triton).

tf_gemm: out = epilogue(alpha * (A @ B) + beta * C, extras...) over [BLOCK_M, BLOCK_N] tiles in
grouped order (GROUP_M rows of tiles share B columns in L2); A is [M, K] through strides (sam,
sak), B is [K, N] through strides (sbk, sbn) so a transposed [N, K] weight needs no copy. The
accumulator is fp32 (tl.dot); operands C / extras are read through an access kind over the
[M, N] output: full (contiguous [.., N]), inner (a row vector over N), outer (one value per row)
or scalar. Split-K: tf_gemm writes fp32 partial tiles into a [SPLIT_K, M, N] workspace and
tf_gemm_reduce sums them, then applies alpha, C and the epilogue. Serial split-K (one kernel): each
program stores its partial tile, then counts itself in on a per-tile int32 counter (acq_rel atomic
after a CTA barrier); the last of the SPLIT_K programs of a tile sums the partials in split order
(deterministic), resets the counter to 0 for the next launch and applies the epilogue.
"""
from __future__ import annotations

from dataclasses import dataclass

from .codegen import PRELUDE, TL, expr_lines, load

KINDS = ("full", "inner", "outer", "scalar")
I = "    "


@dataclass(frozen=True)
class GemmSignature:
    """What a generated GEMM is specialized on (besides Triton's own int specialization)."""
    dtype: str  # A and B (float16 | bfloat16 | float32)
    out_dtype: str
    bias: tuple | None = None  # (dtype, kind) of the C / bias operand
    extras: tuple = ()  # (dtype, kind) of each extra epilogue input (epilogue inputs 1..)
    alpha: float = 1.0
    beta: float = 1.0
    even_k: bool = False  # every K chunk is a whole BLOCK_K: no K masks
    int64: bool = False  # 64-bit element offsets
    split_k: bool = False  # tf_gemm writes fp32 partials; tf_gemm_reduce finishes
    serial: bool = False  # with split_k: the last program of each tile finishes (one kernel)


def _operand_params(sig):
    return (["c"] if sig.bias else []) + [f"x{j + 1}" for j in range(len(sig.extras))]


def _tile(ind=I):
    """Row / column indices of this program's tile (pid_m, pid_n set), masks and output offsets."""
    return [f"{ind}rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)",
            f"{ind}rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)",
            f"{ind}ram = rm % M",
            f"{ind}rbn = rn % N"]


def _out_offsets(sig, ind=I):
    rm = "rm.to(tl.int64)" if sig.int64 else "rm"
    return [f"{ind}cmask = (rm[:, None] < M) & (rn[None, :] < N)",
            f"{ind}offs = {rm}[:, None] * N + rn[None, :]"]


def _load(ptr, dt, kind):
    """Load of an epilogue operand at the tile's (m, n) offsets, in its compute type."""
    offs = {"full": "offs", "inner": "rn[None, :]", "outer": "ram[:, None]"}
    mask = {"full": "cmask", "inner": "rn[None, :] < N"}.get(kind, "cmask")
    return load(ptr, kind, dt, offs, mask)


def epilogue_lines(sig, epilogue, consts, ind=I):
    """Lines turning the fp32 tile `acc` into the stored output (alpha, C, epilogue, cast)."""
    lines = [f"{ind}y = acc" + (f" * {float(sig.alpha)!r}" if float(sig.alpha) != 1.0 else "")]
    if sig.bias:
        beta = f" * {float(sig.beta)!r}" if float(sig.beta) != 1.0 else ""
        lines.append(f"{ind}y = y + {_load('c', *sig.bias)}{beta}")
    vals = ["y"]
    for j, (dt, kind) in enumerate(sig.extras):
        lines.append(f"{ind}x{j + 1}v = {_load(f'x{j + 1}', dt, kind)}")
        vals.append(f"x{j + 1}v")
    out = "y"
    if epilogue:
        in_dt = [sig.dtype] + [dt for dt, _ in sig.extras]
        ls, out, _ = expr_lines(epilogue, vals, in_dt, "e", consts)
        lines += [ind + ln for ln in ls]
    lines.append(f"{ind}tl.store(out + offs, {out}.to({TL[sig.out_dtype]}), mask=cmask)")
    return lines


def _grouped(ind=I):
    """pid_m / pid_n of program pid in grouped order (GROUP_M tile rows per group)."""
    return [f"{ind}pid = tl.program_id(0)",
            f"{ind}grid_m = tl.cdiv(M, BLOCK_M)",
            f"{ind}grid_n = tl.cdiv(N, BLOCK_N)",
            f"{ind}width = GROUP_M * grid_n",
            f"{ind}first_m = (pid // width) * GROUP_M",
            f"{ind}size_m = tl.minimum(grid_m - first_m, GROUP_M)",
            f"{ind}pid_m = first_m + (pid % width) % size_m",
            f"{ind}pid_n = (pid % width) // size_m"]


def _mainloop(sig, ind=I):
    """The K loop: acc (fp32) = A[rows, k0:k0+k_len] @ B[k0:k0+k_len, cols]."""
    i2 = ind + I
    cast = ".to(tl.int64)" if sig.int64 else ""
    lines = [f"{ind}rk = tl.arange(0, BLOCK_K){cast}"]
    if sig.int64:
        lines += [f"{ind}ram = ram.to(tl.int64)", f"{ind}rbn = rbn.to(tl.int64)"]
    lines += [f"{ind}a_ptrs = a + ram[:, None] * sam + (k0 + rk)[None, :] * sak",
              f"{ind}b_ptrs = b + (k0 + rk)[:, None] * sbk + rbn[None, :] * sbn",
              f"{ind}acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)",
              f"{ind}for kk in range(0, tl.cdiv(k_len, BLOCK_K)):"]
    if sig.even_k:
        lines += [f"{i2}xa = tl.load(a_ptrs)", f"{i2}xb = tl.load(b_ptrs)"]
    else:
        lines += [f"{i2}kmask = rk < k_len - kk * BLOCK_K",
                  f"{i2}xa = tl.load(a_ptrs, mask=kmask[None, :], other=0.0)",
                  f"{i2}xb = tl.load(b_ptrs, mask=kmask[:, None], other=0.0)"]
    prec = ', input_precision="ieee"' if sig.dtype == "float32" else ""
    lines += [f"{i2}acc = tl.dot(xa, xb, acc{prec})",
              f"{i2}a_ptrs += BLOCK_K * sak",
              f"{i2}b_ptrs += BLOCK_K * sbk"]
    return lines


def _head(name, params):
    return ["", "", "@triton.jit", f"def {name}({', '.join(params)}):"]


def _serial_finish(sig, epilogue, consts):
    """Store this split's partial; the last program of the tile (per-tile counter) sums all splits in
    order, resets the counter and runs the epilogue."""
    i2 = I + I
    lines = [f"{I}tl.store(ws + pid_k.to(tl.int64) * sws + offs, acc, mask=cmask)",
             f"{I}tl.debug_barrier()",  # every thread's partial is stored before the count
             f"{I}arrived = tl.atomic_add(cnt + pid, 1, sem=\"acq_rel\", scope=\"gpu\")",
             f"{I}if arrived == SPLIT_K - 1:",
             f"{i2}tl.store(cnt + pid, 0)",
             f"{i2}p = ws + offs",
             f"{i2}acc = tl.load(p, mask=cmask, other=0.0, cache_modifier=\".cg\")",
             f"{i2}for s in tl.static_range(1, SPLIT_K):",
             f"{i2}{I}p += sws",
             f"{i2}{I}acc += tl.load(p, mask=cmask, other=0.0, cache_modifier=\".cg\")"]
    return lines + epilogue_lines(sig, epilogue, consts, i2)


def gemm_source(sig: GemmSignature, epilogue=None, name="tf_gemm") -> tuple[str, list]:
    """(module source, [(const arg name, value)]) of the GEMM kernel (split-K: partials only)."""
    consts: list = []
    blocks = ["BLOCK_M: tl.constexpr", "BLOCK_N: tl.constexpr", "BLOCK_K: tl.constexpr",
              "GROUP_M: tl.constexpr"]
    strides = ["M", "N", "K", "sam", "sak", "sbk", "sbn"]
    body = _grouped() + _tile()
    if sig.split_k and sig.serial:
        body += [f"{I}pid_k = tl.program_id(1)", f"{I}k0 = pid_k * K_PER",
                 f"{I}k_len = tl.minimum(K - k0, K_PER)"]
        body += _mainloop(sig) + _out_offsets(sig) + _serial_finish(sig, epilogue, consts)
        params = ["a", "b"] + _operand_params(sig) + ["out", "ws", "cnt"] + strides + ["K_PER", "sws"]
        params += [c for c, _ in consts] + blocks + ["SPLIT_K: tl.constexpr"]
    elif sig.split_k:
        params = ["a", "b", "ws"] + strides + ["K_PER", "sws"] + blocks
        body += [f"{I}pid_k = tl.program_id(1)", f"{I}k0 = pid_k * K_PER",
                 f"{I}k_len = tl.minimum(K - k0, K_PER)"]
        body += _mainloop(sig) + _out_offsets(sig)
        body.append(f"{I}tl.store(ws + pid_k.to(tl.int64) * sws + offs, acc, mask=cmask)")
    else:
        body += [f"{I}k0 = 0", f"{I}k_len = K"] + _mainloop(sig) + _out_offsets(sig)
        body += epilogue_lines(sig, epilogue, consts)
        params = ["a", "b"] + _operand_params(sig) + ["out"] + strides + [c for c, _ in consts] + blocks
    return PRELUDE + "\n".join(_head(name, params) + body) + "\n", consts


def reduce_source(sig: GemmSignature, epilogue=None, name="tf_gemm_reduce") -> tuple[str, list]:
    """(module source, consts) of the split-K finish: sum SPLIT_K fp32 partials, then the epilogue."""
    consts: list = []
    body = [f"{I}pid = tl.program_id(0)", f"{I}grid_n = tl.cdiv(N, BLOCK_N)",
            f"{I}pid_m = pid // grid_n", f"{I}pid_n = pid % grid_n"]
    body += _tile() + _out_offsets(sig)
    body += [f"{I}p = ws + offs", f"{I}acc = tl.load(p, mask=cmask, other=0.0)",
             f"{I}for s in tl.static_range(1, SPLIT_K):",
             f"{I}{I}p += sws",
             f"{I}{I}acc += tl.load(p, mask=cmask, other=0.0)"]
    body += epilogue_lines(sig, epilogue, consts)
    params = ["ws"] + _operand_params(sig) + ["out", "M", "N", "sws"] + [c for c, _ in consts]
    params += ["SPLIT_K: tl.constexpr", "BLOCK_M: tl.constexpr", "BLOCK_N: tl.constexpr"]
    return PRELUDE + "\n".join(_head(name, params) + body) + "\n", consts
