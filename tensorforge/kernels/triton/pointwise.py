"""Source generation for fused.Pointwise: one kernel over the flattened output, one program per
BLOCK elements, each operand read through its access kind (broadcasting by zero strides)."""
from __future__ import annotations

from dataclasses import dataclass

from .codegen import PRELUDE, TL, decompose, expr_lines, load, strided_offset


@dataclass(frozen=True)
class Signature:
    """What a generated kernel is specialized on (besides Triton's own int specialization)."""
    in_dtypes: tuple  # dtype names
    kinds: tuple  # access kind per input: full | scalar | strided
    out_dtype: str
    rank: int  # dims of the collapsed index space (for strided operands)
    int64: bool = False  # 64-bit offsets


def pointwise_source(expr, sig: Signature, name: str = "tf_pointwise") -> tuple[str, list]:
    """(module source, [(const arg name, value)]) of a pointwise kernel for `expr`."""
    n_in = len(sig.in_dtypes)
    strided = [i for i, k in enumerate(sig.kinds) if k == "strided"]
    rank = sig.rank if strided else 0
    consts: list = []
    ind = "    "
    body = [f"{ind}pid = tl.program_id(0)"]
    start = "pid.to(tl.int64) * BLOCK" if sig.int64 else "pid * BLOCK"
    body += [f"{ind}offs = {start} + tl.arange(0, BLOCK)", f"{ind}mask = offs < n"]
    body += decompose("offs", rank, ind)
    offs = {"full": "offs"}
    vals = []
    for i, (dt, kind) in enumerate(zip(sig.in_dtypes, sig.kinds)):
        offs["strided"] = f"({strided_offset(i, rank)})"
        body.append(f"{ind}x{i} = {load(f'in{i}', kind, dt, offs, 'mask')}")
        vals.append(f"x{i}")
    lines, out, _ = expr_lines(expr, vals, list(sig.in_dtypes), const_args=consts)
    body += [ind + ln for ln in lines]
    body.append(f"{ind}tl.store(out0 + offs, {out}.to({TL[sig.out_dtype]}), mask=mask)")
    params = [f"in{i}" for i in range(n_in)] + ["out0", "n"]
    params += [f"d{d}" for d in range(1, rank)]
    params += [f"s{i}_{d}" for i in strided for d in range(rank)]
    params += [c for c, _ in consts] + ["BLOCK: tl.constexpr"]
    head = ["", "", "@triton.jit", f"def {name}({', '.join(params)}):"]
    return PRELUDE + "\n".join(head + body) + "\n", consts
