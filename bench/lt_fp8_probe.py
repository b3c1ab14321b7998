"""Which FP8 GEMMs this cuBLASLt offers algorithms for, through our ctypes binding (kernels/aten/cublaslt.py):
epilogues (none, bias, ReLU+bias, GELU+bias) x D types (FP16, e4m3) with scalar scales (session 10: its
per-vector "outer" scale modes were refused for every combination, status 7, and are no longer wired),
with and without fast accumulation, on a BERT-sized problem; then one scalar-scaled FP16-out GEMM with bias
run and compared with torch._scaled_mm. Prints one line per combination (algorithm count or the error).

  python bench/lt_fp8_probe.py [--m 4096 --n 3072 --k 768]
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    from tensorforge.kernels.aten.cublaslt import LtMatmul
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=4096)
    ap.add_argument("--n", type=int, default=3072)
    ap.add_argument("--k", type=int, default=768)
    a = ap.parse_args(argv)
    m, n, k = a.m, a.n, a.k
    f8 = torch.float8_e4m3fn
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, M N K = {m} {n} {k}")
    for (act, bias), out, fast in itertools.product(
            (("none", False), ("none", True), ("relu", True), ("gelu", True)), (torch.float16, f8), (False, True)):
        try:
            lt = LtMatmul(m, n, k, f8, (k, 1), (1, k), act, bias, False, device="cuda", out_dtype=out,
                          fast_accum=fast)
            res = f"{len(lt.algos)} algorithms (heuristic status {lt.heuristic_status})"
        except Exception as e:  # noqa: BLE001 - the answer is the error
            res = f"{type(e).__name__}: {e}"
        print(f"act={act} bias={bias} D={str(out).removeprefix('torch.')} fast={fast}: {res}")
    g = torch.Generator(device="cuda").manual_seed(0)
    x = (torch.randn(m, k, device="cuda", generator=g) * 3).to(f8)
    w = (torch.randn(n, k, device="cuda", generator=g) * 3).to(f8)
    b = torch.randn(n, device="cuda", generator=g).half()
    sa, sb = torch.tensor(0.02, device="cuda"), torch.tensor(0.03, device="cuda")
    want = torch._scaled_mm(x, w.t(), sa, sb, bias=b, out_dtype=torch.float16)
    try:
        lt = LtMatmul(m, n, k, f8, (k, 1), (1, k), "none", True, False, device="cuda", out_dtype=torch.float16)
        got = torch.empty(m, n, dtype=torch.float16, device="cuda")
        ws = torch.empty(max(1, lt.algos[0].workspaceSize), dtype=torch.uint8, device="cuda")
        lt.run(x, w.t(), b, None, got, 0, ws, alpha=float(sa), w_scale=sb)
        torch.cuda.synchronize()
        err = float((got.float() - want.float()).abs().max() / want.float().abs().max())
        print(f"scalar bias FP16-out vs torch._scaled_mm: max error {err:.2e} of the largest value")
    except Exception as e:  # noqa: BLE001
        print(f"scalar bias FP16-out run failed: {type(e).__name__}: {e}")
    try:  # what cublaslt_fp8 runs for BERT's FFN-up: GELU(tanh) + bias in the epilogue, e4m3 out with a D scale
        lt = LtMatmul(m, n, k, f8, (k, 1), (1, k), "gelu", True, False, device="cuda", out_dtype=f8)
        ref = torch.nn.functional.gelu((x.float() @ w.float().t()) * 0.02 * 0.03 + b.float(), approximate="tanh")
        s_out = float(ref.abs().max()) / 400
        dscale = torch.tensor(1.0 / s_out, device="cuda")
        got = torch.empty(m, n, dtype=f8, device="cuda")
        ws = torch.empty(max(1, lt.algos[0].workspaceSize), dtype=torch.uint8, device="cuda")
        lt.run(x, w.t(), b, None, got, 0, ws, alpha=float(sa), w_scale=sb, d_scale=dscale)
        torch.cuda.synchronize()
        want = (ref / s_out).clamp(-448, 448).to(f8).float()
        g = got.float()
        step = torch.clamp(2.0 ** (torch.floor(torch.log2(want.abs().clamp_min(2 ** -6))) - 3), min=2 ** -9)
        d = (g - want).abs() / step
        print(f"GELU+bias e4m3-out vs torch (tanh GELU): {float((d > 1.01).float().mean()) * 100:.3f} % of outputs "
              f"over one e4m3 step, max {float(d.max()):.1f} steps")
    except Exception as e:  # noqa: BLE001
        print(f"GELU+bias e4m3-out run failed: {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
