"""Matrix products and linear algebra: MatMul, Gemm, Einsum, Det."""
from __future__ import annotations

import torch

from ..errors import ShapeError
from ..ir.symbolic import broadcast
from .common import in_info
from .registry import infer, reference


@reference("MatMul")
def matmul_ref(a, b):
    return torch.matmul(a, b)


@infer("MatMul")
def matmul_infer(node):
    a, b = node.inputs[0].shape, node.inputs[1].shape
    if len(a) == 1 and len(b) == 1:
        return [(node.inputs[0].dtype, ())]
    a2 = (1,) + tuple(a) if len(a) == 1 else tuple(a)
    b2 = tuple(b) + (1,) if len(b) == 1 else tuple(b)
    if isinstance(a2[-1], int) and isinstance(b2[-2], int) and a2[-1] != b2[-2]:
        raise ShapeError(f"MatMul '{node.name}': inner dims differ ({list(a)} x {list(b)})")
    batch = broadcast(a2[:-2], b2[:-2])
    out = batch + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return [(node.inputs[0].dtype, tuple(out))]


@reference("Gemm")
def gemm_ref(a, b, c=None, alpha=1.0, beta=1.0, transA=0, transB=0):
    a = a.t() if transA else a
    b = b.t() if transB else b
    y = torch.matmul(a, b)
    if alpha != 1.0:
        y = y * alpha
    if c is not None:
        y = y + (c * beta if beta != 1.0 else c)
    return y


@infer("Gemm")
def gemm_infer(node):
    a, b = node.inputs[0].shape, node.inputs[1].shape
    m = a[1] if node.attrs.get("transA", 0) else a[0]
    n = b[0] if node.attrs.get("transB", 0) else b[1]
    return [(node.inputs[0].dtype, (m, n))]


@reference("Einsum")
def einsum_ref(*xs, equation):
    return torch.einsum(equation.replace(" ", ""), *xs)


def _einsum_terms(eq, n_in):
    eq = eq.replace(" ", "")
    lhs, _, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != n_in:
        raise ShapeError(f"Einsum equation '{eq}' has {len(terms)} operands, node has {n_in} inputs")
    if "->" not in eq:
        once = [c for c in lhs if c.isalpha() and lhs.count(c) == 1]
        rhs = ("..." if "..." in lhs else "") + "".join(sorted(once))
    return terms, rhs


@infer("Einsum")
def einsum_infer(node):
    ins = [v for v in node.inputs if v is not None]
    terms, rhs = _einsum_terms(node.attrs["equation"], len(ins))
    dims, ell = {}, []
    for t, v in zip(terms, ins):
        letters = t.replace("...", ".")
        n_ell = len(v.shape) - (len(letters) - letters.count("."))
        pos = 0
        for c in letters:
            if c == ".":
                ell.append(tuple(v.shape[pos:pos + n_ell]))
                pos += n_ell
            else:
                if c not in dims or dims[c] == 1:
                    dims[c] = v.shape[pos]
                pos += 1
    ell_shape = broadcast(*ell) if ell else ()
    out = []
    for c in rhs.replace("...", "."):
        out.extend(ell_shape if c == "." else (dims[c],))
    return [(ins[0].dtype, tuple(out))]


@reference("Det")
def det_ref(x):
    return torch.linalg.det(x.double()).to(x.dtype)


@infer("Det")
def det_infer(node):
    dt, shp = in_info(node, 0)
    return [(dt, tuple(shp[:-2]))]
