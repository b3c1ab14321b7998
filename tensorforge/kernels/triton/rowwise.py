"""Source generation for row kernels: Softmax / LogSoftmax, LayerNorm / RMSNorm (+ epilogue) and
fused.Reduce (pointwise prologue + reduction over the trailing dims). One program per row of
N = prod(reduced dims) elements; loops over the row in BLOCK_N chunks."""
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


def norm_source(sig: RowSignature, rms: bool, has_scale: bool, has_bias: bool, epilogue=None,
                name="tf_norm"):
    """LayerNorm (mean, variance, normalize) or RMSNorm; inputs: x, [scale], [bias], extras."""
    i2 = "        "
    k = 1
    idx_scale = k if has_scale else None
    k += has_scale
    idx_bias = k if has_bias else None
    k += has_bias
    extras = list(range(k, len(sig.in_dtypes)))
    lines = ["    acc = tl.zeros([BLOCK_N], tl.float32)"]
    if not rms:
        lines += _loop(_loads(sig, [0], i2, "cmask") + [f"{i2}acc += x0"])
        lines += ["    mean = tl.sum(acc, 0) / N", "    acc = tl.zeros([BLOCK_N], tl.float32)"]
        lines += _loop(_loads(sig, [0], i2, "cmask") + [f"{i2}dx = tl.where(cmask, x0 - mean, 0.0)",
                                                        f"{i2}acc += dx * dx"])
    else:
        lines += _loop(_loads(sig, [0], i2, "cmask") + [f"{i2}acc += x0 * x0"])
    lines += ["    rstd = 1.0 / tl.sqrt_rn(tl.sum(acc, 0) / N + eps)"]
    y = "(x0 - mean) * rstd" if not rms else "x0 * rstd"
    body = _loads(sig, [0] + [i for i in (idx_scale, idx_bias) if i is not None] + extras, i2, "cmask")
    body.append(f"{i2}y = {y}")
    if idx_scale is not None:
        body.append(f"{i2}y = y * x{idx_scale}")
    if idx_bias is not None:
        body.append(f"{i2}y = y + x{idx_bias}")
    consts: list = []
    out_name = "y"
    if epilogue:
        in_dt = [sig.in_dtypes[0]] + [sig.in_dtypes[i] for i in extras]
        ls, out_name, _ = expr_lines(epilogue, ["y"] + [f"x{i}" for i in extras], in_dt, "e", consts)
        body += [i2 + ln for ln in ls]
    body.append(f"{i2}tl.store(out0 + base + cols, {out_name}.to({TL[sig.out_dtype]}), mask=cmask)")
    lines += _loop(body)
    return PRELUDE + "\n".join(_header(name, sig, ["eps"], consts) + lines) + "\n", consts


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
