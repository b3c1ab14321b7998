"""Patch-embedding convolutions as GEMMs, and Transpose/Reshape chains that are pure reshapes.

A convolution whose kernel equals its stride (no padding, dilation 1, one group) reads every input
pixel exactly once: it is a GEMM over non-overlapping patches. After the rewrite the conv's NCHW
output is a Reshape + Transpose of the GEMM's [N, P, O] result, and the usual ViT tokenization
(Reshape [N, O, P] + Transpose(0, 2, 1)) composes with it to the identity; the ViewChain rule here
finds such chains and removes them, so the patch embedding becomes one input Transpose (the only
copy) plus one GEMM with its bias."""
from __future__ import annotations

import logging

import sympy

from ..ir import Graph
from ..ir.symbolic import eq, norm
from .identity import reshape_target
from .rewrite import Decline, Op, Rule, bypass, insert_node, rule_pass

log = logging.getLogger("tensorforge")
FLOATS = ("float16", "float32", "bfloat16", "float64")
VIEWS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


# ---- Conv -> patch GEMM --------------------------------------------------------------------
def _patch_conv(conv):
    """(k1, k2) when `conv` is a patch-embedding conv this pass rewrites, else None."""
    x, w = conv.inputs[0], conv.inputs[1]
    b = conv.inputs[2] if len(conv.inputs) > 2 else None
    if w is None or w.const is None or w.const.dim() != 4 or len(x.shape) != 4 or x.dtype not in FLOATS:
        return None
    if w.dtype != x.dtype or (b is not None and (b.const is None or b.const.dim() != 1 or b.dtype != x.dtype)):
        return None
    k = tuple(int(d) for d in w.const.shape[2:])
    a = conv.attrs
    if tuple(a.get("kernel_shape", k)) != k or tuple(a.get("strides", (1, 1))) != k or a.get("group", 1) != 1 \
            or any(a.get("pads", (0, 0, 0, 0))) or any(d != 1 for d in a.get("dilations", (1, 1))) \
            or a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return None
    _, c, h, wd = x.shape
    if not all(isinstance(d, int) for d in (c, h, wd)) or c != w.const.shape[1] or h % k[0] or wd % k[1] \
            or k[0] * k[1] < 4:
        return None
    return k


def _view(g, before, op, x, shape, base, origin, perm=None):
    """A Reshape (to `shape`) or Transpose (by `perm`) of x inserted before `before`."""
    if op == "Transpose":
        return insert_node(g, before, "Transpose", [x], {"perm": perm}, base, x.dtype, shape, origin)
    return insert_node(g, before, "Reshape", [x, reshape_target(g, x.shape, shape)], {}, base, x.dtype, shape,
                       origin)


def patchify(g: Graph, m) -> bool:
    """Conv(x[N,C,H,W], w[O,C,k1,k2], b; stride = kernel, no pads) ==
    T(R(R(T(R(x, [N,C,h,k1,w,k2]), (0,2,4,1,3,5)), [N,P,C·k1·k2]) · w' + b, [N,h,w,O]), (0,3,1,2))
    with h = H/k1, w = W/k2, P = h·w and w' = w.reshape(O, C·k1·k2)ᵀ (a constant)."""
    conv = m.root
    k = _patch_conv(conv)
    if k is None:
        return Decline("not a 2-D conv with stride = kernel, no pads and constant weights")
    x, w, y = conv.inputs[0], conv.inputs[1], conv.outputs[0]
    b = conv.inputs[2] if len(conv.inputs) > 2 else None
    n, c, hh, ww = x.shape
    h, wd, o = hh // k[0], ww // k[1], int(w.const.shape[0])
    p, ck, src, base = h * wd, c * k[0] * k[1], [conv.name], conv.name
    x6 = _view(g, conv, "Reshape", x, (n, c, h, k[0], wd, k[1]), f"{base}.patches", src)
    xt = _view(g, conv, "Transpose", x6, (n, h, wd, c, k[0], k[1]), f"{base}.patches_t", src, [0, 2, 4, 1, 3, 5])
    a = _view(g, conv, "Reshape", xt, (n, p, ck), f"{base}.tokens_in", src)
    wt = g.const(w.const.reshape(o, ck).t().contiguous(), g.unique_name(f"{w.name}.gemm"))
    z = insert_node(g, conv, "MatMul", [a, wt], {}, f"{base}.gemm", x.dtype, (n, p, o), src)
    gemm = z.producer
    if b is not None:
        z = insert_node(g, conv, "Add", [z, b], {}, f"{base}.tokens", x.dtype, (n, p, o), src)
    z4 = _view(g, conv, "Reshape", z, (n, h, wd, o), f"{base}.tokens_out", src)
    idx = g.nodes.index(conv)
    g.remove_node(conv)
    gemm.name = conv.name  # the GEMM does the conv's work: it keeps its name
    g.add_node("Transpose", [z4], [y], {"perm": [0, 3, 1, 2]}, name=g.unique_node_name(f"{base}.nchw"),
               origin=src, index=idx)
    log.info("Rewriting %s as a patch GEMM [%s x %d] x [%d x %d] (Patchify)", conv.name, p, ck, ck, o)
    return True


# ---- Transpose / Reshape chains that compose to a reshape ----------------------------------------
class _Atoms:
    """A tensor's layout as groups of atoms (factors of the source's dims in row-major order)."""

    def __init__(self, shape):
        self.size, self.order, self.dims = {}, [], []
        for d in shape:
            self.dims.append([] if isinstance(d, int) and d == 1 else [self._new(d)])
        self.order = [a for d in self.dims for a in d]

    def _new(self, size):
        a = len(self.size)
        self.size[a] = size
        return a

    def transpose(self, perm):
        self.dims = [self.dims[i] for i in perm]

    def reshape(self, shape) -> bool:
        """Regroup the atoms into `shape`, splitting static atoms where needed; False if impossible."""
        seq, i, dims = [a for d in self.dims for a in d], 0, []
        for t in shape:
            grp, need = [], t
            while not (isinstance(need, int) and need == 1):
                if i >= len(seq):
                    return False
                a = seq[i]
                s = self.size[a]
                if eq(s, need):
                    grp.append(a)
                    i, need = i + 1, 1
                elif isinstance(s, int) and isinstance(need, int) and s % need == 0:
                    hi, lo = self._split(a, need)  # the leading part of a fills this dim
                    grp.append(hi)
                    seq[i], need = lo, 1
                else:
                    q = _quotient(need, s)
                    if q is None:
                        return False
                    grp.append(a)
                    i, need = i + 1, q
            dims.append(grp)
        self.dims = dims
        return i == len(seq)

    def _split(self, a, hi_size):
        hi, lo = self._new(hi_size), self._new(self.size[a] // hi_size)
        j = self.order.index(a)
        self.order[j:j + 1] = [hi, lo]
        return hi, lo

    def in_order(self) -> bool:
        return [a for d in self.dims for a in d] == self.order


def _quotient(need, s):
    """need / s when it is a whole (int or polynomial) dim, else None."""
    if isinstance(need, int) and isinstance(s, int):
        return need // s if need % s == 0 else None
    q = sympy.cancel(sympy.sympify(need) / sympy.sympify(s))
    return norm(q) if sympy.fraction(q)[1] == 1 else None


def _step(n):
    """('transpose', perm) or ('reshape', out shape) for a chain node."""
    if n.op == "Transpose":
        r = len(n.inputs[0].shape)
        return "transpose", list(n.attrs.get("perm", list(range(r))[::-1]))
    return "reshape", n.outputs[0].shape


def _pure_reshape(src_shape, chain) -> bool:
    """True when applying `chain` (nodes, source first) to a tensor of src_shape only reshapes it."""
    st = _Atoms(src_shape)
    for n in chain:
        kind, arg = _step(n)
        if kind == "transpose":
            st.transpose(arg)
        elif not st.reshape(arg):
            return False
    return st.in_order()


def _chain(root):
    """The single-input view chain ending at root: nodes, source first."""
    chain, n = [root], root
    while True:
        v = n.inputs[0]
        p = v.producer if v is not None else None
        if p is None or p.op not in VIEWS + ("Transpose",) or v is not p.outputs[0] or v.shape is None:
            return chain[::-1]
        chain.append(p)
        n = p


def _drop_dead(g, nodes):
    """Remove chain nodes (last first) whose outputs nothing reads any more."""
    for n in reversed(nodes):
        if n in g.nodes and not any(v.users or g.is_output(v) for v in n.outputs):
            g.remove_node(n)


def view_chain(g: Graph, m) -> bool:
    """V_k(...V_1(x)) -> x when the chain of Transposes and reshapes (Reshape, Flatten, Squeeze,
    Unsqueeze) keeps x's row-major element order and shape; -> Reshape(x, shape) when it keeps
    the order only. Proved on the dims' factors (atoms), symbolic dims included."""
    root = m.root
    chain, y = _chain(root), root.outputs[0]
    if y.dtype is None or y.shape is None:
        return Decline("untyped output")
    for s in range(len(chain)):
        sub = chain[s:]
        x = sub[0].inputs[0]
        if (len(sub) < 2 and sub[0].op != "Transpose") or not _pure_reshape(x.shape, sub):
            continue
        if not _replace(g, root, sub, x, y):
            continue
        _drop_dead(g, chain)
        log.info("Collapsing view chain %s into a reshape (ViewChainReshape)", " + ".join(n.name for n in sub))
        return True
    return Decline("no suffix of the chain keeps the element order")


def _replace(g, root, sub, x, y) -> bool:
    """Make y's readers read x (same shape) or make y a Reshape of x; False when neither works."""
    if len(x.shape) == len(y.shape) and all(eq(a, b) for a, b in zip(x.shape, y.shape)) and bypass(g, y, x):
        return True
    tgt = reshape_target(g, x.shape, y.shape)  # also for graph input -> graph output: one copy stays
    if tgt is None:
        return False
    idx = g.nodes.index(root)
    g.remove_node(root)
    origin = list(dict.fromkeys(o for n in sub for o in n.origin))
    g.add_node("Reshape", [x, tgt], [y], {}, name=root.name, origin=origin, index=idx)
    return True


RULES = [
    Rule("Patchify", Op("Conv", any_args=True), patchify),
    Rule("ViewChainReshape", Op(("Transpose",) + VIEWS, any_args=True), view_chain, shared=True),
]
patchify_convs = rule_pass("patchify_convs", RULES, reverse=True)  # chains from their ends: longest first
