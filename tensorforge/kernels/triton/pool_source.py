"""Triton source of the pooling kernels (compiled by launch.compile_source: triton is imported only
when a runner is made, never by importing this module).

`tf_pool2d`: windowed 2-D max / average pooling. One program computes a [BLOCK_P, BLOCK_C] tile of
output pixels (n, oh, ow flattened, ow fastest) x channels; every input is read through its
strides, so channels-last inputs (stride_c == 1, specialized by triton) load BLOCK_C contiguous
channels per pixel, and NCHW inputs run with BLOCK_C = 1 (one channel plane per program row).
Window geometry is constexpr (static loops). Max keeps the input dtype (exact) with -inf padding
and propagates NaN like torch (8-bit inputs, int8 / uint8 of a quantized network,
take the max in fp32: exact, UPCAST); average accumulates in fp32 and divides by the count of window
positions inside [LO, HI) per axis (the input, or the padded input with count_include_pad).

`tf_global_pool`: GlobalAveragePool / GlobalMaxPool over H*W flattened into one axis (requires
stride_h == W * stride_w, true for NCHW and NHWC): one program per (channel block, n), channel blocks fastest."""

SRC = '''
import triton
import triton.language as tl


@triton.jit
def _max_nan(a, b):
    return tl.where((a > b) | (a != a), a, b)


@triton.jit
def tf_pool2d(x_ptr, y_ptr, NP, C, OH, OW, H, W,
              sxn, sxc, sxh, sxw, syn, syc, syh, syw,
              LO_H, HI_H, LO_W, HI_W, N_P, N_C,
              KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
              PT: tl.constexpr, PL: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr,
              IS_MAX: tl.constexpr, BIG: tl.constexpr, C_FAST: tl.constexpr, EVEN_C: tl.constexpr,
              BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, UPCAST: tl.constexpr = False):
    pid = tl.program_id(0)
    if C_FAST:  # channels-last: the channel blocks of one pixel block run next to each other
        pid_c = pid % N_C
        pid_p = pid // N_C
    else:
        pid_p = pid % N_P
        pid_c = pid // N_P
    p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    pm = p < NP
    cm = c < C
    if BIG:
        p = p.to(tl.int64)
        c = c.to(tl.int64)
    ow = p % OW
    t = p // OW
    oh = t % OH
    n = t // OH
    h0 = oh * SH - PT
    w0 = ow * SW - PL
    xrow = x_ptr + n * sxn
    cx = (c * sxc)[None, :]
    if EVEN_C:  # no channel mask: masks stay constant along C and loads vectorize
        cmask = tl.full([1, BLOCK_C], 1, tl.int1)
    else:
        cmask = cm[None, :]
    if IS_MAX:  # 8-bit values (UPCAST): max in fp32 (exact), -inf at masked positions
        acc = tl.full([BLOCK_P, BLOCK_C], float("-inf"), tl.float32 if UPCAST else x_ptr.dtype.element_ty)
    else:
        acc = tl.zeros([BLOCK_P, BLOCK_C], tl.float32)
    for kh in tl.static_range(KH):
        ih = h0 + kh * DH
        hok = pm & (ih >= 0) & (ih < H)
        xh = xrow + ih * sxh
        for kw in tl.static_range(KW):
            iw = w0 + kw * DW
            ok = hok & (iw >= 0) & (iw < W)
            ptr = (xh + iw * sxw)[:, None] + cx
            if IS_MAX:
                m = ok[:, None] & cmask
                if UPCAST:
                    v = tl.where(m, tl.load(ptr, mask=m).to(tl.float32), float("-inf"))
                else:
                    v = tl.load(ptr, mask=m, other=float("-inf"))
                acc = tl.maximum(acc, v, propagate_nan=tl.PropagateNan.ALL)
            else:
                v = tl.load(ptr, mask=ok[:, None] & cmask, other=0.0)
                acc += v.to(tl.float32)
    if not IS_MAX:
        ch = tl.zeros([BLOCK_P], tl.float32)
        for kh in tl.static_range(KH):
            ih = h0 + kh * DH
            ch += ((ih >= LO_H) & (ih < HI_H)).to(tl.float32)
        cw = tl.zeros([BLOCK_P], tl.float32)
        for kw in tl.static_range(KW):
            iw = w0 + kw * DW
            cw += ((iw >= LO_W) & (iw < HI_W)).to(tl.float32)
        acc = acc / (ch * cw)[:, None]
    yptr = (y_ptr + n * syn + oh * syh + ow * syw)[:, None] + (c * syc)[None, :]
    tl.store(yptr, acc.to(y_ptr.dtype.element_ty), mask=pm[:, None] & cmask)


@triton.jit
def tf_global_pool(x_ptr, y_ptr, C, HW, sxn, sxc, sxp, syn, syc, N_C,
                   IS_MAX: tl.constexpr, BIG: tl.constexpr, EVEN_C: tl.constexpr,
                   BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    pid = tl.program_id(0)
    c = (pid % N_C) * BLOCK_C + tl.arange(0, BLOCK_C)
    n = pid // N_C
    cm = c < C
    if BIG:
        n = n.to(tl.int64)
        c = c.to(tl.int64)
    base = x_ptr + n * sxn + (c * sxc)[None, :]
    if IS_MAX:  # fp32 (exact): the loop-carried type must not change (bf16 max yields fp32)
        acc = tl.full([BLOCK_P, BLOCK_C], float("-inf"), tl.float32)
    else:
        acc = tl.zeros([BLOCK_P, BLOCK_C], tl.float32)
    for p0 in range(0, HW, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        if BIG:
            p = p.to(tl.int64)
        if EVEN_C:
            mask = (p < HW)[:, None] & tl.full([1, BLOCK_C], 1, tl.int1)
        else:
            mask = (p < HW)[:, None] & cm[None, :]
        ptr = base + (p * sxp)[:, None]
        if IS_MAX:
            v = tl.where(mask, tl.load(ptr, mask=mask).to(tl.float32), float("-inf"))
            acc = tl.maximum(acc, v, propagate_nan=tl.PropagateNan.ALL)
        else:
            acc += tl.load(ptr, mask=mask, other=0.0).to(tl.float32)
    if IS_MAX:
        r = tl.reduce(acc, 0, _max_nan)
    else:
        r = tl.sum(acc, 0) / HW
    tl.store(y_ptr + n * syn + c * syc, r.to(y_ptr.dtype.element_ty), mask=cm)
'''
