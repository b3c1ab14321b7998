"""Triton source of the squeeze-excitation kernels (tactic "se"; compiled by launch.compile_source,
so importing this module imports no triton).

`tf_se_gate`: one program per image n computes the gate g[n, :] (fp32) of
    g = gate(W2 · act(W1 · mean_hw(x[n]) + b1) + b2)
looping over channel blocks: each block's pooled means (computed here over H*W when POOL_HERE, else
summed from the fp32 [S, N, C] partial sums of the pool kernel) are multiplied into the hidden vector h [Cr]
at once, so the pooled row is never stored; then a second sweep over channel blocks computes and
stores the gate. The weights are read through their strides as the engine holds them ([O, I] or
[O, I, 1, 1]; refit-safe). Everything accumulates in fp32.

`tf_se_pool`: partial channel sums of x over H*W split into S ranges of PER pixels: one program per
(range, n, channel block), so a large image pools on many SMs (no atomics: the gate kernel adds the
S partials in a fixed order, the result is deterministic).

`tf_se_scale`: out[n, c, p] = x[n, c, p] · g[n, c] over [BLOCK_P pixels x BLOCK_C channels] tiles
(channel blocks fastest), x and out read / written through their strides (NCHW or NHWC)."""

SRC = '''
import triton
import triton.language as tl


@triton.jit
def _act(h, ACT: tl.constexpr):
    """0: none, 1: Relu, 2: HardSwish, 3: SiLU (the ONNX formulas)."""
    if ACT == 1:
        h = tl.maximum(h, 0.0)
    elif ACT == 2:
        h = h * tl.minimum(tl.maximum(h / 6.0 + 0.5, 0.0), 1.0)
    elif ACT == 3:
        h = h / (1.0 + tl.exp(-h))
    return h


@triton.jit
def tf_se_gate(x, pooled, w1, b1, w2, b2, g, N, S, C, CR, HW, sxn, sxc, sxp, s1r, s1c, s2c, s2r, alpha, beta,
               POOL_HERE: tl.constexpr, HAS_B1: tl.constexpr, HAS_B2: tl.constexpr, ACT: tl.constexpr,
               HARD: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_R: tl.constexpr):
    n = tl.program_id(0).to(tl.int64)
    r = tl.arange(0, BLOCK_R)
    rm = r < CR
    h = tl.zeros([BLOCK_R], tl.float32)
    x_img = x + n * sxn
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        cm = c < C
        if POOL_HERE:
            acc = tl.zeros([BLOCK_P, BLOCK_C], tl.float32)
            for p0 in range(0, HW, BLOCK_P):
                p = p0 + tl.arange(0, BLOCK_P)
                ptr = x_img + (p * sxp)[:, None] + (c * sxc)[None, :]
                acc += tl.load(ptr, mask=(p < HW)[:, None] & cm[None, :], other=0.0).to(tl.float32)
            pc = tl.sum(acc, 0) / HW
        else:  # the pool kernel's partial sums [S, N, C]
            pc = tl.zeros([BLOCK_C], tl.float32)
            for s in range(0, S):
                pc += tl.load(pooled + (s * N + n) * C + c, mask=cm, other=0.0)
            pc = pc / HW
        wt = tl.load(w1 + (r * s1r)[:, None] + (c * s1c)[None, :], mask=rm[:, None] & cm[None, :], other=0.0)
        h += tl.sum(wt.to(tl.float32) * pc[None, :], 1)
    if HAS_B1:
        h += tl.load(b1 + r, mask=rm, other=0.0).to(tl.float32)
    h = tl.where(rm, _act(h, ACT), 0.0)
    for c0 in range(0, C, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        cm = c < C
        wt = tl.load(w2 + (c * s2c)[:, None] + (r * s2r)[None, :], mask=cm[:, None] & rm[None, :], other=0.0)
        s = tl.sum(wt.to(tl.float32) * h[None, :], 1)
        if HAS_B2:
            s += tl.load(b2 + c, mask=cm, other=0.0).to(tl.float32)
        if HARD:
            s = tl.minimum(tl.maximum(alpha * s + beta, 0.0), 1.0)
        else:
            s = 1.0 / (1.0 + tl.exp(-s))
        tl.store(g + n * C + c, s, mask=cm)


@triton.jit
def tf_se_pool(x, part, N, C, HW, PER, N_C, sxn, sxc, sxp, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    pid = tl.program_id(0)
    pid_c = pid % N_C
    t = pid // N_C
    n = (t % N).to(tl.int64)
    s = t // N
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    cm = c < C
    x_img = x + n * sxn
    acc = tl.zeros([BLOCK_P, BLOCK_C], tl.float32)
    end = tl.minimum(s * PER + PER, HW)
    for p0 in range(s * PER, end, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        ptr = x_img + (p * sxp)[:, None] + (c * sxc)[None, :]
        acc += tl.load(ptr, mask=(p < end)[:, None] & cm[None, :], other=0.0).to(tl.float32)
    tl.store(part + (s * N + n) * C + c, tl.sum(acc, 0), mask=cm)


@triton.jit
def tf_se_scale(x, g, out, C, HW, N_P, N_C, sxn, sxc, sxp, son, soc, sop,
                BIG: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    pid = tl.program_id(0)
    pid_c = pid % N_C
    t = pid // N_C
    pid_p = t % N_P
    n = t // N_P
    p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    if BIG:
        n = n.to(tl.int64)
        p = p.to(tl.int64)
    mask = (p < HW)[:, None] & (c < C)[None, :]
    xv = tl.load(x + n * sxn + (p * sxp)[:, None] + (c * sxc)[None, :], mask=mask, other=0.0)
    gv = tl.load(g + n * C + c, mask=c < C, other=0.0)
    y = xv.to(tl.float32) * gv[None, :]
    tl.store(out + n * son + (p * sop)[:, None] + (c * soc)[None, :], y.to(out.dtype.element_ty), mask=mask)
'''
