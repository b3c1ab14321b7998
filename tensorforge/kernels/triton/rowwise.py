"""Source generation for row kernels: Softmax / LogSoftmax, LayerNorm / RMSNorm (+ epilogue) and
fused.Reduce (pointwise prologue + reduction over the trailing dims) over rows of N = prod(reduced
dims) elements. Softmax / reduce: one program per row, looping over it in BLOCK_N chunks; norms:
ROWS rows per program, single pass when the row fits one block (see norm_source)."""
from __future__ import annotations

from dataclasses import dataclass

from .codegen import PRELUDE, TL, ctype, decompose, expr_lines, load, strided_offset


@dataclass(frozen=True)
class RowSignature:
    """Operand dtypes and access kinds (full | scalar | inner | outer | strided) of a row kernel."""
    in_dtypes: tuple
    kinds: tuple
    out_dtype: str
    rank: int  # collapsed dims of the (row, column) index space, for strided operands


def _loads(sig, indices, ind, mask, other="0"):
    """Load lines for the operands `indices` at the current columns."""
    lines = []
    if any(sig.kinds[i] == "strided" for i in indices):
        lines += decompose("row * N + cols", sig.rank, ind)
    offs = {"full": "base + cols", "inner": "cols", "outer": "row"}
    for i in indices:
        offs["strided"] = f"({strided_offset(i, sig.rank)})"
        lines.append(f"{ind}x{i} = {load(f'in{i}', sig.kinds[i], sig.in_dtypes[i], offs, mask, other)}")
    return lines


def _header(name, sig, extra_params, consts):
    n_in = len(sig.in_dtypes)
    strided = [i for i, k in enumerate(sig.kinds) if k == "strided"]
    params = [f"in{i}" for i in range(n_in)] + ["out0", "N"] + extra_params
    params += [f"d{d}" for d in range(1, sig.rank)] if strided else []
    params += [f"s{i}_{d}" for i in strided for d in range(sig.rank)]
    params += [c for c, _ in consts] + ["BLOCK_N: tl.constexpr"]
    return ["", "", "@triton.jit", f"def {name}({', '.join(params)}):",
            "    row = tl.program_id(0).to(tl.int64)", "    base = row * N"]


def _loop(body, ind="    "):
    return [f"{ind}for start in range(0, N, BLOCK_N):", f"{ind}    cols = start + tl.arange(0, BLOCK_N)",
            f"{ind}    cmask = cols < N"] + body


def softmax_source(sig: RowSignature, log: bool, name="tf_softmax"):
    """Online softmax: pass 1 keeps a running max and rescaled sum per lane; pass 2 writes."""
    i2 = "        "
    acc = ["    m = tl.zeros([BLOCK_N], tl.float32) + ninf",
           "    s = tl.zeros([BLOCK_N], tl.float32)"]
    p1 = _loop(_loads(sig, [0], i2, "cmask", "ninf") + [
        f"{i2}m_new = tl.maximum(m, x0)",
        f"{i2}s = s * tl.where(m_new == ninf, 0.0, tl.exp(m - m_new)) + tl.where(cmask, tl.exp(x0 - m_new), 0.0)",
        f"{i2}m = m_new"])
    fin = ["    mx = tl.max(m, 0)", "    tot = tl.sum(s * tl.where(m == ninf, 0.0, tl.exp(m - mx)), 0)"]
    y = "x0 - mx - tl.log(tot)" if log else "tl.exp(x0 - mx) / tot"
    p2 = _loop(_loads(sig, [0], i2, "cmask") + [
        f"{i2}tl.store(out0 + base + cols, ({y}).to({TL[sig.out_dtype]}), mask=cmask)"])
    lines = _header(name, sig, ["ninf"], []) + acc + p1 + fin + p2
    return PRELUDE + "\n".join(lines) + "\n", []


def _norm_header(name, sig, consts, side=False):
    """Signature and row setup of tf_norm: ROWS rows per program as a [ROWS, 1] index (clamped to
    M - 1 so every load stays in bounds; stores mask the rows past M); side: a second output out1."""
    lines = _header(name, sig, ["eps"], consts)
    lines[3] = lines[3].replace(", N, eps", ", M, N, eps").replace("BLOCK_N: tl.constexpr",
                                                                  "ROWS: tl.constexpr, BLOCK_N: tl.constexpr")
    if side:
        lines[3] = lines[3].replace("out0, M,", "out0, out1, M,")
    return lines[:4] + ["    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)[:, None]",
                        "    rmask = rows < M", "    row = tl.minimum(rows, M - 1)", "    base = row * N"]


def _norm_expr(sig, extras, expr, first, prefix, consts, ind):
    """(lines, value) of a norm's expression over (first, extras...): its epilogue (first = y), prologue or
    side output (first = x0)."""
    in_dt = [sig.in_dtypes[0]] + [sig.in_dtypes[i] for i in extras]
    ls, val, _ = expr_lines(expr, [first] + [f"x{i}" for i in extras], in_dt, prefix, consts)
    return [ind + ln for ln in ls], val


def _norm_y(sig, rms, idx_scale, idx_bias, extras, epilogue, consts, ind):
    """Lines from the normalized x0 (`xc * rstd`) to the store, and the loads they need."""
    body = [f"{ind}y = {'x0' if rms else 'xc'} * rstd"]
    body += [f"{ind}y = y * x{idx_scale}"] if idx_scale is not None else []
    body += [f"{ind}y = y + x{idx_bias}"] if idx_bias is not None else []
    out_name = "y"
    if epilogue:
        ls, out_name = _norm_expr(sig, extras, epilogue, "y", "e", consts, ind)
        body += ls
    body.append(f"{ind}tl.store(out0 + base + cols, {out_name}.to({TL[sig.out_dtype]}), mask=rmask & cmask)")
    return body


def _norm_prologue(sig, extras, prologue, consts, ind):
    """x0 = prologue(x0, extras...) in fp32, zero past the row's end (the statistics sum every lane)."""
    ls, p = _norm_expr(sig, extras, prologue, "x0", "p", consts, ind)
    rounded = f"({p}).to({TL[sig.in_dtypes[0]]}).to(tl.float32)"  # x's dtype, as the reference rounds it
    return ls + [f"{ind}x0 = tl.where(cmask, {rounded}, 0.0)"]


def _norm_side(sig, extras, side, side_dt, consts, ind):
    """out1 = side(x0, extras...): x0 the (prologue's) row before normalization."""
    ls, v = _norm_expr(sig, extras, side, "x0", "q", consts, ind)
    return ls + [f"{ind}tl.store(out1 + base + cols, ({v}).to({TL[side_dt]}), mask=rmask & cmask)"]


def norm_source(sig: RowSignature, rms: bool, has_scale: bool, has_bias: bool, epilogue=None,
                name="tf_norm", looped=False, prologue=None, side=None, side_dt=None):
    """LayerNorm (mean, variance, normalize) or RMSNorm; inputs: x, [scale], [bias], extras.
    prologue: an expression over (x, extras) normalized instead of x, rounded to x's dtype as the reference
    does; side: an expression over the same inputs stored as a second output (out1, of side_dt) from the
    prologue's result (both single pass only).

    A program normalizes ROWS rows held as one [ROWS, BLOCK_N] block; fp32 statistics, the
    variance as the mean of squared deviations (two passes over registers). Single pass (default):
    the row fits BLOCK_N and every operand is loaded once. looped: rows longer than BLOCK_N make
    three passes over BLOCK_N chunks (sum, squared deviations, normalize + store)."""
    idx_scale = 1 if has_scale else None
    idx_bias = 1 + has_scale if has_bias else None
    extras = list(range(1 + has_scale + has_bias, len(sig.in_dtypes)))
    params = [i for i in (idx_scale, idx_bias) if i is not None] + extras
    consts: list = []
    mean = [] if rms else ["mean = tl.sum({s}, 1)[:, None] / N", "xc = tl.where(cmask, x0 - mean, 0.0)"]
    sq = "x0 * x0" if rms else "xc * xc"
    sqrt = "tl.sqrt" if sig.in_dtypes[0] == "float64" else "tl.sqrt_rn"  # sqrt_rn: fp32 only
    rstd = "rstd = 1.0 / " + sqrt + "(tl.sum({s}, 1)[:, None] / N + eps)"
    if not looped:
        ind = "    "
        lines = [f"{ind}cols = tl.arange(0, BLOCK_N)[None, :]", f"{ind}cmask = cols < N"]
        lines += _loads(sig, [0] + params, ind, "cmask")
        lines += _norm_prologue(sig, extras, prologue, consts, ind) if prologue else []
        lines += _norm_side(sig, extras, side, side_dt, consts, ind) if side else []
        lines += [ind + ln.format(s="x0") for ln in mean] + [ind + rstd.format(s=sq)]
        lines += _norm_y(sig, rms, idx_scale, idx_bias, extras, epilogue, consts, ind)
        return PRELUDE + "\n".join(_norm_header(name, sig, consts, bool(side)) + lines) + "\n", consts
    if prologue or side:
        raise ValueError("a norm prologue or side output needs the single-pass kernel (rows of at most BLOCK_N)")
    i2 = "        "
    acc = f"    acc = tl.zeros([ROWS, BLOCK_N], {ctype(sig.in_dtypes[0])})"
    lines = [acc]
    if not rms:
        lines += _loop2d(_loads(sig, [0], i2, "cmask") + [f"{i2}acc += x0"])
        lines += ["    " + mean[0].format(s="acc"), acc]
        lines += _loop2d(_loads(sig, [0], i2, "cmask") + [i2 + mean[1], f"{i2}acc += xc * xc"])
    else:
        lines += _loop2d(_loads(sig, [0], i2, "cmask") + [f"{i2}acc += x0 * x0"])
    lines.append("    " + rstd.format(s="acc"))
    body = _loads(sig, [0] + params, i2, "cmask") + ([] if rms else [i2 + mean[1]])
    lines += _loop2d(body + _norm_y(sig, rms, idx_scale, idx_bias, extras, epilogue, consts, i2))
    return PRELUDE + "\n".join(_norm_header(name, sig, consts) + lines) + "\n", consts


def _loop2d(body, ind="    "):
    return [f"{ind}for start in range(0, N, BLOCK_N):", f"{ind}    cols = start + tl.arange(0, BLOCK_N)[None, :]",
            f"{ind}    cmask = cols < N"] + body


# kind -> (lane init, per-element map of p, combine, finish) ; acc dtype chosen by the caller
_RED = {
    "sum": ("0", "{p}", "acc + v", "tl.sum(acc, 0)"),
    "mean": ("0", "{p}", "acc + v", "tl.sum(acc, 0) / N"),
    "l1": ("0", "tl.abs({p})", "acc + v", "tl.sum(acc, 0)"),
    "sumsquare": ("0", "{p} * {p}", "acc + v", "tl.sum(acc, 0)"),
    "l2": ("0", "{p} * {p}", "acc + v", "tl.sqrt_rn(tl.sum(acc, 0))"),
    "logsum": ("0", "{p}", "acc + v", "tl.log(tl.sum(acc, 0))"),
    "max": ("ninf", "{p}", "tl.maximum(acc, v)", "tl.max(acc, 0)"),
    "min": ("pinf", "{p}", "tl.minimum(acc, v)", "tl.min(acc, 0)"),
}


def reduce_source(sig: RowSignature, kind: str, prologue=None, name="tf_reduce"):
    """Reduce a prologue of the inputs (or input 0) over each row; one output per row."""
    i2 = "        "
    n_in = len(sig.in_dtypes)
    consts: list = []
    body = _loads(sig, list(range(n_in)), i2, "cmask")
    if prologue:
        ls, p, pdt = expr_lines(prologue, [f"x{i}" for i in range(n_in)], list(sig.in_dtypes), "p", consts)
        body += [i2 + ln for ln in ls]
    else:
        p, pdt = "x0", sig.in_dtypes[0]
    acc_t = "tl.float32" if ctype(pdt) == "tl.float32" else ("tl.int64" if pdt not in ("float64",) else "tl.float64")
    if kind == "logsumexp":
        init = ["    m = tl.zeros([BLOCK_N], tl.float32) + ninf", "    s = tl.zeros([BLOCK_N], tl.float32)"]
        body += [f"{i2}v = tl.where(cmask, {p}, ninf)", f"{i2}m_new = tl.maximum(m, v)",
                 f"{i2}s = s * tl.where(m_new == ninf, 0.0, tl.exp(m - m_new)) + "
                 f"tl.where(m_new == ninf, 0.0, tl.exp(v - m_new))", f"{i2}m = m_new"]
        fin = ["    mx = tl.max(m, 0)",
               "    res = mx + tl.log(tl.sum(s * tl.where(m == ninf, 0.0, tl.exp(m - mx)), 0))"]
    else:
        lane0, fmap, comb, finish = _RED[kind]
        init = [f"    acc = tl.zeros([BLOCK_N], {acc_t}) + {lane0}"]
        body += [f"{i2}v = tl.where(cmask, ({fmap.format(p=p)}).to({acc_t}), {lane0})", f"{i2}acc = {comb}"]
        fin = [f"    res = {finish}"]
    store = [f"    tl.store(out0 + row, res.to({TL[sig.out_dtype]}))"]
    lines = _header(name, sig, ["ninf", "pinf"], consts) + init + _loop(body) + fin + store
    return PRELUDE + "\n".join(lines) + "\n", consts
