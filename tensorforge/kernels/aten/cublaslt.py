"""cuBLASLt through ctypes: one GEMM whose epilogue adds the bias, a residual (C with beta = 1) and a
ReLU / GELU(tanh) in the same kernel, D = act(A @ W + bias + C). torch exposes only bias + act
(torch._addmm_activation), not C + bias together, so a residual block's GEMM would need a second
kernel. The library is the one torch already loaded; nothing is compiled.

Row-major D[M, N] = A[M, K] @ W[K, N] is the column-major D^T[N, M] = W^T @ A^T: cuBLASLt's "A" is
the weight and its "B" the activation; the bias runs along D^T's rows (N). An algorithm is picked
by index into cuBLASLt's heuristic list for the problem (tactic param "algo"), so the autotuner
times the first few of them like any other tactic."""
from __future__ import annotations

import ctypes
import threading

import torch

CUDA_R = {torch.float16: 2, torch.bfloat16: 14, torch.float32: 0, torch.float8_e4m3fn: 28}
COMPUTE_32F, SCALE_32F = 68, 0
DESC_TRANSA, DESC_TRANSB, DESC_EPILOGUE, DESC_BIAS_POINTER, DESC_BIAS_TYPE = 3, 4, 7, 8, 26
# FP8 (cublasLt.h): scale pointers of A (our weight) and D (D = scale_D * epilogue(alpha * scale_A * A B + ...)),
# fast accumulation. Per-vector scale modes (OUTER_VEC_32F) were refused for every FP8 problem on the H200
# (bench/lt_fp8_probe.py, session 10): scalar scales only
DESC_A_SCALE, DESC_D_SCALE, DESC_FAST_ACCUM = 17, 20, 25
PREF_WORKSPACE, PREF_ALIGN = 1, (5, 6, 7, 8)  # min alignment of A, B, C, D in bytes
EPILOGUE = {("none", False): 1, ("relu", False): 2, ("gelu", False): 32,
            ("none", True): 4, ("relu", True): 6, ("gelu", True): 36}
WORKSPACE = 32 << 20
MAX_ALGOS = 8


class _Heuristic(ctypes.Structure):
    _fields_ = [("algo", ctypes.c_uint64 * 8), ("workspaceSize", ctypes.c_size_t), ("state", ctypes.c_int),
                ("wavesCount", ctypes.c_float), ("reserved", ctypes.c_int * 4)]


_LIB, _HANDLES, _LOCK = None, {}, threading.Lock()


def _find_library():
    """The libcublasLt torch loaded (its path from /proc/self/maps), else by soname."""
    torch.cuda.init()
    try:
        with open("/proc/self/maps") as f:
            paths = [ln.split()[-1] for ln in f if "libcublasLt" in ln]
        if paths:
            return ctypes.CDLL(paths[0])
    except OSError:
        pass
    for name in ("libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise RuntimeError("cuBLASLt library not found")


def lib():
    global _LIB
    with _LOCK:
        if _LIB is None:
            _LIB = _find_library()
        return _LIB


def _check(status, what):
    if status != 0:
        raise RuntimeError(f"cuBLASLt {what} failed (status {status})")


def _handle(device) -> ctypes.c_void_p:
    idx = torch.device(device).index or 0
    with _LOCK:
        if idx not in _HANDLES:
            h = ctypes.c_void_p()
            with torch.cuda.device(idx):
                _check(_LIB.cublasLtCreate(ctypes.byref(h)), "create")
            _HANDLES[idx] = h
        return _HANDLES[idx]


def _align(ptr: int) -> int:
    a = 256
    while a > 2 and ptr % a:
        a //= 2
    return a


def _set(setter, obj, attr, value, ctype):
    v = ctype(value)
    _check(setter(obj, attr, ctypes.byref(v), ctypes.sizeof(v)), f"set attribute {attr}")


def _operand(t_strides, rows, cols):
    """(op, ld) of a row-major-indexed [rows, cols] matrix with strides (s0, s1) seen column-major
    as [cols, rows] (op N) or transposed (op T); None when neither stride is 1."""
    s0, s1 = t_strides
    if s1 == 1 and s0 >= max(1, cols):
        return 0, s0
    if s0 == 1 and s1 >= max(1, rows):
        return 1, s1
    return None


class LtMatmul:
    """One cuBLASLt problem: D[M, N] = act(A @ W + bias + C) for fixed shapes, strides, dtype and
    pointer alignments; `algos` lists the heuristic's algorithms (best first)."""

    def __init__(self, m, n, k, dtype, a_strides, w_strides, act="none", bias=False, residual=False,
                 aligns=(256, 256, 256, 256), device="cuda", out_dtype=None, fast_accum=False):
        """dtype: the operands' type; out_dtype: D's (default dtype). FP8 (e4m3) operands: D is FP16, BF16
        or e4m3 (then C and the bias are FP16); the weight's and D's scales are pointers given to run()."""
        L = lib()
        self.m, self.n, self.k, self.residual = m, n, k, residual
        self.handle = _handle(device)
        opa = _operand(w_strides, k, n)  # weight [K, N] -> column-major [N, K]
        opb = _operand(a_strides, m, k)  # activation [M, K] -> column-major [K, M]
        out_dtype = out_dtype or dtype
        fp8 = dtype == torch.float8_e4m3fn
        c_dtype = torch.float16 if fp8 and out_dtype == torch.float8_e4m3fn else out_dtype
        if opa is None or opb is None or dtype not in CUDA_R or out_dtype not in CUDA_R or \
                (act, bias) not in EPILOGUE or (fp8 and (opa[0], opb[0]) != (1, 0)) or \
                (fp8 and out_dtype == torch.float32) or (not fp8 and out_dtype != dtype):
            raise ValueError("problem not covered by cuBLASLt")
        dt = CUDA_R[dtype]
        self.desc = ctypes.c_void_p()
        _check(L.cublasLtMatmulDescCreate(ctypes.byref(self.desc), COMPUTE_32F, SCALE_32F), "desc")
        _set(L.cublasLtMatmulDescSetAttribute, self.desc, DESC_TRANSA, opa[0], ctypes.c_int32)
        _set(L.cublasLtMatmulDescSetAttribute, self.desc, DESC_TRANSB, opb[0], ctypes.c_int32)
        _set(L.cublasLtMatmulDescSetAttribute, self.desc, DESC_EPILOGUE, EPILOGUE[(act, bias)], ctypes.c_int32)
        if bias:
            _set(L.cublasLtMatmulDescSetAttribute, self.desc, DESC_BIAS_TYPE, CUDA_R[c_dtype], ctypes.c_int32)
        self.fp8, self.fp8_out = fp8, out_dtype == torch.float8_e4m3fn
        if fp8 and fast_accum:
            _set(L.cublasLtMatmulDescSetAttribute, self.desc, DESC_FAST_ACCUM, 1, ctypes.c_int8)
        self.bias = bias
        self.layouts = []
        for (rows, cols, ld), t in zip(((n, k, opa[1]) if opa[0] == 0 else (k, n, opa[1]),
                                        (k, m, opb[1]) if opb[0] == 0 else (m, k, opb[1]), (n, m, n), (n, m, n)),
                                       (dt, dt, CUDA_R[c_dtype], CUDA_R[out_dtype])):
            lay = ctypes.c_void_p()
            _check(L.cublasLtMatrixLayoutCreate(ctypes.byref(lay), t, ctypes.c_uint64(rows),
                                                ctypes.c_uint64(cols), ctypes.c_int64(ld)), "layout")
            self.layouts.append(lay)
        pref = ctypes.c_void_p()
        _check(L.cublasLtMatmulPreferenceCreate(ctypes.byref(pref)), "preference")
        _set(L.cublasLtMatmulPreferenceSetAttribute, pref, PREF_WORKSPACE, WORKSPACE, ctypes.c_uint64)
        for attr, a in zip(PREF_ALIGN, aligns):
            _set(L.cublasLtMatmulPreferenceSetAttribute, pref, attr, a, ctypes.c_uint32)
        res = (_Heuristic * MAX_ALGOS)()
        count = ctypes.c_int(0)
        st = L.cublasLtMatmulAlgoGetHeuristic(self.handle, self.desc, *self.layouts, pref, MAX_ALGOS, res,
                                              ctypes.byref(count))
        L.cublasLtMatmulPreferenceDestroy(pref)
        self.algos = [res[i] for i in range(count.value) if res[i].state == 0] if st == 0 else []
        self.heuristic_status = st  # cublasStatus_t of the heuristic query (15: not supported)
        self.one = ctypes.c_float(1.0)
        self.beta = ctypes.c_float(1.0 if residual else 0.0)

    def __del__(self):
        L = _LIB
        if L is None:
            return
        for lay in getattr(self, "layouts", []):
            L.cublasLtMatrixLayoutDestroy(lay)
        if getattr(self, "desc", None):
            L.cublasLtMatmulDescDestroy(self.desc)

    def set_pointer(self, attr: int, t) -> None:
        p = ctypes.c_void_p(t.data_ptr())
        _check(_LIB.cublasLtMatmulDescSetAttribute(self.desc, attr, ctypes.byref(p), ctypes.sizeof(p)),
               f"pointer attribute {attr}")

    def _c_pointer(self, c, out):
        """C's address: the residual, else (beta 0, C not read) D's own, or NULL where C's type differs from
        D's (FP8 out: C is FP16). cuBLASLt refuses C == D of different types (status 7 for every FP8-out
        call on the H200, session 11's bench/lt_fp8_diag.py); torch._scaled_mm passes NULL too."""
        if self.residual:
            return c.data_ptr()
        return None if self.fp8_out else out.data_ptr()

    def run(self, a, w, bias, c, out, algo: int, workspace, alpha: float = 1.0, w_scale=None, d_scale=None) -> None:
        """Enqueue D = act(alpha * w_scale * a @ w + bias + c) [* d_scale] into `out` on the current stream
        (FP8: w_scale and d_scale are one-element fp32 device tensors, or None for 1)."""
        h = self.algos[algo]
        if self.bias:
            self.set_pointer(DESC_BIAS_POINTER, bias)
        for attr, t in ((DESC_A_SCALE, w_scale), (DESC_D_SCALE, d_scale)):
            if t is not None:
                self.set_pointer(attr, t)
        cptr = self._c_pointer(c, out)
        la, lb, lc, ld = self.layouts
        _check(_LIB.cublasLtMatmul(
            self.handle, self.desc, ctypes.byref(ctypes.c_float(alpha)), ctypes.c_void_p(w.data_ptr()), la,
            ctypes.c_void_p(a.data_ptr()), lb, ctypes.byref(self.beta), ctypes.c_void_p(cptr), lc,
            ctypes.c_void_p(out.data_ptr()), ld, ctypes.byref(h.algo), ctypes.c_void_p(workspace.data_ptr()),
            ctypes.c_size_t(workspace.numel()), ctypes.c_void_p(torch.cuda.current_stream(out.device).cuda_stream)),
            "matmul")


    def bind(self, a, w, bias, c, out, algo: int, workspace):
        """replay(stream handle): this exact call (every pointer fixed) as one cublasLtMatmul."""
        h = self.algos[algo]
        if self.bias:  # the bias is a weight: its pointer is fixed for this descriptor's life
            p = ctypes.c_void_p(bias.data_ptr())
            _check(_LIB.cublasLtMatmulDescSetAttribute(self.desc, DESC_BIAS_POINTER, ctypes.byref(p),
                                                       ctypes.sizeof(p)), "bias pointer")
        cptr = self._c_pointer(c, out)
        la, lb, lc, ld = self.layouts
        args = (self.handle, self.desc, ctypes.byref(self.one), ctypes.c_void_p(w.data_ptr()), la,
                ctypes.c_void_p(a.data_ptr()), lb, ctypes.byref(self.beta), ctypes.c_void_p(cptr), lc,
                ctypes.c_void_p(out.data_ptr()), ld, ctypes.byref(h.algo), ctypes.c_void_p(workspace.data_ptr()),
                ctypes.c_size_t(workspace.numel()))
        matmul, keep = _LIB.cublasLtMatmul, (self, h, workspace)

        def replay(stream: int) -> None:
            _check(matmul(*args, ctypes.c_void_p(stream)), "matmul")
        replay.keep = keep  # what the pointers point into stays alive with the replay
        return replay


def aligns(*tensors) -> tuple:
    """cuBLASLt alignment preference (bytes, <= 256) of each tensor's data pointer."""
    return tuple(_align(t.data_ptr()) for t in tensors)
