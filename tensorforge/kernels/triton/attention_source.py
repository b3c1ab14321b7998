"""Triton source of the flash-attention forward kernel for fused.Attention (compiled lazily with
launch.compile_source; this module never imports triton).

One program per (q block, batch*head): Q tile in registers, K/V tiles streamed through their
views' strides, online softmax in fp32 with exp2 (scale·log2e folded into one multiplier), an
optional additive (cast to the Q dtype first, as the reference does) or boolean mask read through
broadcast strides (a row-broadcast mask [.., 1, Sk] is loaded once per key tile as a vector), and
causal masking with fully visible key tiles run without any masks. Fully masked query rows give
0, as SDPA does. The output tile is written through the strides of the layer's output view,
quantized first when the layer has an output Q (OUT_Q: e4m3, int8, uint8)."""
from __future__ import annotations

from .codegen import PRELUDE, e4m3
from .qgemm_source import INT_RANGE

NAME = "tf_flash_attn"

# QuantizeLinear of the output tile (rounded to the inputs' type first, as the reference's output is):
# e4m3 (OUT_Q 1: codegen.e4m3, saturating), int8 (2) or uint8 (3), saturated to qgemm's INT_RANGE
_I8, _U8 = INT_RANGE["int8"], INT_RANGE["uint8"]
_QUANTIZE = f'''

@triton.jit
def _quantize(out, oqs, oqz, OUT_Q: tl.constexpr):
    y = tl.div_rn(out, oqs)
    if OUT_Q == 1:
        y = {e4m3("y")}
    elif OUT_Q == 2:
        y = tl.minimum(tl.maximum(_rint(y) + oqz, {float(_I8[0])}), {float(_I8[1])}).to(tl.int32)
    else:
        y = tl.minimum(tl.maximum(_rint(y) + oqz, {float(_U8[0])}), {float(_U8[1])}).to(tl.int32)
    return y
'''

SOURCE = PRELUDE + _QUANTIZE + '''

@triton.jit
def _ld2(ptrs, rows, cols, R: tl.constexpr, C: tl.constexpr):
    """2-D load, bounds-checked only on the row / column sides flagged R / C."""
    if R:
        if C:
            x = tl.load(ptrs, mask=rows[:, None] & cols[None, :], other=0.0)
        else:
            x = tl.load(ptrs, mask=rows[:, None], other=0.0)
    else:
        if C:
            x = tl.load(ptrs, mask=cols[None, :], other=0.0)
        else:
            x = tl.load(ptrs)
    return x


@triton.jit
def _tile(acc, m_i, l_i, q, k_base, v_base, m_base, start_n, offs_m, offs_n, offs_d, offs_dv,
          skn, skd, svn, svd, smm, smn, L, S, qk_scale,
          D: tl.constexpr, DV: tl.constexpr, PAD_D: tl.constexpr, PAD_DV: tl.constexpr,
          MASK_KIND: tl.constexpr, MASK_ROW: tl.constexpr, PAD_M: tl.constexpr,
          TAIL: tl.constexpr, DIAG: tl.constexpr):
    """One key/value tile: scores, mask, online-softmax update, P·V accumulation."""
    cols = start_n + offs_n
    nmask = cols < S
    k = _ld2(k_base + offs_d[:, None] * skd + cols[None, :] * skn, offs_d < D, nmask, PAD_D, TAIL)
    qk = tl.dot(q, k) * qk_scale
    if MASK_KIND != 0:  # 1: additive float mask, 2: boolean keep-mask; a row vector or a full tile
        if MASK_ROW:
            if TAIL:
                mk = tl.load(m_base + cols * smn, mask=nmask, other=0)[None, :]
            else:
                mk = tl.load(m_base + cols * smn)[None, :]
        else:
            mk = _ld2(m_base + offs_m[:, None] * smm + cols[None, :] * smn, offs_m < L, nmask, PAD_M, TAIL)
        if MASK_KIND == 1:
            qk += mk.to(q.dtype).to(tl.float32) * 1.4426950408889634
        else:
            qk = tl.where(mk != 0, qk, float("-inf"))
    if TAIL:
        qk = tl.where(nmask[None, :], qk, float("-inf"))
    if DIAG:
        qk = tl.where(offs_m[:, None] >= cols[None, :], qk, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(qk, 1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    p = tl.math.exp2(qk - m_safe[:, None])
    alpha = tl.math.exp2(m_i - m_safe)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None]
    v = _ld2(v_base + cols[:, None] * svn + offs_dv[None, :] * svd, nmask, offs_dv < DV, TAIL, PAD_DV)
    acc = tl.dot(p.to(v.dtype), v, acc)
    return acc, m_new, l_i


@triton.jit
def tf_flash_attn(Q, K, V, Mk, O, q_off, k_off, v_off, m_off,
                  sqz, sqh, sqm, sqd, skz, skh, skn, skd, svz, svh, svn, svd,
                  smz, smh, smm, smn, soz, soh, som, sod, H, L, S, qk_scale, oqs, oqz,
                  D: tl.constexpr, DV: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                  BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, PAD_D: tl.constexpr,
                  PAD_DV: tl.constexpr, MASK_KIND: tl.constexpr, MASK_ROW: tl.constexpr,
                  CAUSAL: tl.constexpr, PAD_M: tl.constexpr, TAIL_LOOP: tl.constexpr, OUT_Q: tl.constexpr):
    """softmax(Q·Kᵀ·scale + mask)·V for one BLOCK_M slice of queries of one (batch, head)."""
    pid_m = tl.program_id(0)
    zh = tl.program_id(1)
    z = (zh // H).to(tl.int64)
    h = (zh % H).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    offs_dv = tl.arange(0, BLOCK_DV)
    q_base = Q + q_off + z * sqz + h * sqh
    k_base = K + k_off + z * skz + h * skh
    v_base = V + v_off + z * svz + h * svh
    m_base = Mk + m_off + z * smz + h * smh
    q = _ld2(q_base + offs_m[:, None] * sqm + offs_d[None, :] * sqd, offs_m < L, offs_d < D, PAD_M, PAD_D)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], tl.float32)
    n_full = (S // BLOCK_N) * BLOCK_N
    hi = S
    if CAUSAL:
        n_full = tl.minimum(n_full, (pid_m * BLOCK_M) // BLOCK_N * BLOCK_N)
        hi = tl.minimum(S, (pid_m + 1) * BLOCK_M)
    for start_n in range(0, n_full, BLOCK_N):
        acc, m_i, l_i = _tile(acc, m_i, l_i, q, k_base, v_base, m_base, start_n, offs_m, offs_n, offs_d, offs_dv,
                              skn, skd, svn, svd, smm, smn, L, S, qk_scale, D, DV, PAD_D, PAD_DV,
                              MASK_KIND, MASK_ROW, PAD_M, False, False)
    if TAIL_LOOP:
        for start_n in range(n_full, hi, BLOCK_N):
            acc, m_i, l_i = _tile(acc, m_i, l_i, q, k_base, v_base, m_base, start_n, offs_m, offs_n, offs_d,
                                  offs_dv, skn, skd, svn, svd, smm, smn, L, S, qk_scale, D, DV, PAD_D, PAD_DV,
                                  MASK_KIND, MASK_ROW, PAD_M, True, CAUSAL)
    out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]  # fully masked rows: 0, as SDPA
    if OUT_Q != 0:
        out = _quantize(out.to(Q.dtype.element_ty).to(tl.float32), oqs, oqz, OUT_Q)
    o_ptrs = O + z * soz + h * soh + offs_m[:, None] * som + offs_dv[None, :] * sod
    if PAD_M:
        if PAD_DV:
            tl.store(o_ptrs, out.to(O.dtype.element_ty), mask=(offs_m < L)[:, None] & (offs_dv < DV)[None, :])
        else:
            tl.store(o_ptrs, out.to(O.dtype.element_ty), mask=(offs_m < L)[:, None])
    else:
        if PAD_DV:
            tl.store(o_ptrs, out.to(O.dtype.element_ty), mask=(offs_dv < DV)[None, :])
        else:
            tl.store(o_ptrs, out.to(O.dtype.element_ty))
'''
