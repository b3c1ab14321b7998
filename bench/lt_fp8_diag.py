"""Which cuBLASLt FP8 calls run (not only which the heuristic offers): M x (epilogue) x D type x D scale x
fast accumulation, each run once and compared with a float reference. One line per combination.

  python bench/lt_fp8_diag.py
"""
from __future__ import annotations

import itertools
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    from tensorforge.kernels.aten.cublaslt import LtMatmul
    f8 = torch.float8_e4m3fn
    g = torch.Generator(device="cuda").manual_seed(0)
    for (m, n, k), (act, bias), out, dsc, fast in itertools.product(
            ((37, 80, 48), (128, 80, 48), (132, 128, 96), (4096, 3072, 768)),
            (("none", False), ("none", True), ("gelu", True)), (torch.float16, f8), (False, True), (False, True)):
        if dsc and out != f8:
            continue
        x = (torch.randn(m, k, device="cuda", generator=g) * 3).to(f8)
        w = (torch.randn(n, k, device="cuda", generator=g) * 3).to(f8)
        b = torch.randn(n, device="cuda", generator=g).half()
        tag = f"m={m} n={n} k={k} act={act} bias={bias} D={str(out).removeprefix('torch.')} dscale={dsc} fast={fast}"
        try:
            lt = LtMatmul(m, n, k, f8, (k, 1), (1, k), act, bias, False, device="cuda", out_dtype=out,
                          fast_accum=fast)
            if not lt.algos:
                print(f"{tag}: no algorithm (heuristic status {lt.heuristic_status})")
                continue
            ref = (x.float() @ w.float().t()) * 0.02 * 0.03 + (b.float() if bias else 0)
            if act == "gelu":
                ref = torch.nn.functional.gelu(ref, approximate="tanh")
            s = float(ref.abs().max()) / 400 if dsc else 1.0
            got = torch.empty(m, n, dtype=out, device="cuda")
            res = []
            for i in range(len(lt.algos)):
                ws = torch.empty(max(1, lt.algos[i].workspaceSize), dtype=torch.uint8, device="cuda")
                try:
                    lt.run(x, w.t(), b if bias else None, None, got, i, ws, alpha=0.02,
                           w_scale=torch.tensor(0.03, device="cuda"),
                           d_scale=torch.tensor(1.0 / s, device="cuda") if dsc else None)
                    torch.cuda.synchronize()
                    err = float((got.float() * s - ref).abs().max() / ref.abs().max())
                    res.append(f"{err:.1e}")
                except RuntimeError as e:
                    res.append(str(e).split("(")[-1].rstrip(")"))
            print(f"{tag}: {len(lt.algos)} algos: {' '.join(res)}")
        except Exception as e:  # noqa: BLE001 - the answer is the error
            print(f"{tag}: {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
