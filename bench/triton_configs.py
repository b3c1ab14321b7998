"""Triton tactic configs timed against their library peers on the model shapes (GPU only):

  attention: every flash_attention config vs the SDPA backends (cuDNN, efficient, flash) on the
             BERT / ViT / GPT-2 attention shapes;
  conv:      the best conv_igemm config vs cuDNN conv+bias+ReLU on ResNet-50's conv shapes;
  qconv:     every qconv config (--level 3: the default search; 4: all) in INT8 and FP8 vs the FP16
             form it is timed against (aten fp16_form) and cuDNN FP16 conv+bias+ReLU, on every conv of
             ResNet-50 but the stem (relu + output Q folded into the epilogue, NHWC), summed over the net;
  dwconv:    every dwconv config vs cuDNN depthwise conv + hardswish (NHWC fp16) on PP-LCNet /
             MobileNet depthwise shapes, with the HBM floor (input + output bytes at 4.8 TB/s);
  gemm:      every GEMM config (checked against the reference first) vs cuBLAS on BERT / ViT shapes;
  se:        every squeeze-excitation config vs the unfused torch ops (the reference: mean, two 1x1
             cuDNN convs, relu, hardsigmoid, mul; eager and as one CUDA graph) on PP-LCNet / PP-OCR
             SE shapes (fp16 NHWC), with the HBM floor (x read twice + output written).

  python bench/triton_configs.py attention|conv|dwconv|gemm|qconv|se [--batch 128,4] [--level 3]

Moved from tests/gpu (they asserted nothing and only printed timings)."""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CL = torch.channels_last
RESNET_SHAPES = [  # ResNet-50 convs: (Cin, Cout, k, stride, spatial in)
    (64, 256, 1, 1, 56), (256, 64, 1, 1, 56), (64, 64, 3, 1, 56), (256, 128, 1, 1, 56), (128, 128, 3, 2, 56),
    (128, 512, 1, 1, 28), (512, 128, 1, 1, 28), (128, 128, 3, 1, 28), (256, 256, 3, 1, 14),
    (1024, 256, 1, 1, 14), (256, 1024, 1, 1, 14), (512, 512, 3, 1, 7), (2048, 512, 1, 1, 7),
    (512, 2048, 1, 1, 7)]
DW_SHAPES = [  # (N, C, spatial in, k, stride): the brief's 640x640 layers, PP-LCNet det / cls depthwise
    (1, 16, 640, 3, 1), (1, 32, 640, 3, 1), (1, 64, 640, 3, 1), (1, 32, 640, 3, 2), (1, 64, 160, 3, 1),
    (1, 128, 80, 3, 2), (1, 256, 40, 5, 1), (1, 512, 20, 5, 2), (8, 32, 112, 3, 1), (8, 128, 56, 3, 2),
    (8, 512, 14, 5, 1)]
RESNET50_CONVS = [  # every ResNet-50 conv but the stem: (Cin, Cout, k, stride, spatial in, count)
    (64, 64, 1, 1, 56, 1), (64, 64, 3, 1, 56, 3), (64, 256, 1, 1, 56, 4), (256, 64, 1, 1, 56, 2),
    (256, 128, 1, 1, 56, 1), (128, 128, 3, 2, 56, 1), (128, 512, 1, 1, 28, 4), (256, 512, 1, 2, 56, 1),
    (512, 128, 1, 1, 28, 3), (128, 128, 3, 1, 28, 3), (512, 256, 1, 1, 28, 1), (256, 256, 3, 2, 28, 1),
    (256, 1024, 1, 1, 14, 6), (512, 1024, 1, 2, 28, 1), (1024, 256, 1, 1, 14, 5), (256, 256, 3, 1, 14, 5),
    (1024, 512, 1, 1, 14, 1), (512, 512, 3, 2, 14, 1), (512, 2048, 1, 1, 7, 3), (1024, 2048, 1, 2, 14, 1),
    (2048, 512, 1, 1, 7, 2), (512, 512, 3, 1, 7, 2)]
HBM_BYTES_PER_US = 4.8e6  # H200 peak (4.8 TB/s)
SE_SHAPES = [  # (N, C, Cr, H=W): PP-LCNet x1.0 cls at bs 8, PP-OCRv4 det neck (640x640 input)
    (8, 256, 64, 7), (8, 512, 128, 7), (1, 192, 48, 20), (1, 384, 96, 20), (1, 96, 24, 40), (1, 96, 24, 160),
    (1, 24, 6, 160)]
GEMM_SHAPES = [  # (M, N, K, epilogue): BERT-base bs1 and ViT-B/16 bs32 projections / FFNs
    (128, 768, 768, None), (128, 2304, 768, None), (128, 3072, 768, "gelu"), (128, 768, 3072, "res"),
    (6304, 768, 768, None), (6304, 3072, 768, "gelu"), (6304, 768, 3072, "res"), (4096, 3072, 768, "gelu")]


def _time_us(fn, iters=50):
    """Mean µs per call, CUDA events around `iters` calls queued behind a sleep (no launch gaps)."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda._sleep(2_000_000 + 100_000 * iters)
    s.record()
    for _ in range(iters):
        fn()
    e.record()
    e.synchronize()
    return s.elapsed_time(e) * 1e3 / iters


def attention(args) -> None:
    """flash_attention configs vs SDPA backends on the model shapes."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from tensorforge.kernels.triton import attention as fa
    from tensorforge.ops.fused.attention import attention_ref
    from tests.gpu.test_triton_attention import model_cases
    for name, (ins, attrs) in model_cases().items():
        row = {}
        for bm, bn, nw, ns in fa.LEVEL3 + fa.LEVEL4:
            params = {"BLOCK_M": bm, "BLOCK_N": bn, "num_warps": nw, "num_stages": ns}
            r = fa.FlashAttentionRunner(attrs, params, None)
            out = [r(ins)[0]]
            row[str((bm, bn, nw, ns))] = _time_us(lambda r=r, out=out: r(ins, out))
        for be in ("CUDNN_ATTENTION", "EFFICIENT_ATTENTION", "FLASH_ATTENTION"):
            try:
                with sdpa_kernel(getattr(SDPBackend, be)):
                    row[be] = _time_us(lambda: attention_ref(*ins, **attrs))
            except RuntimeError:
                row[be] = None
        best = min((v, k) for k, v in row.items() if v is not None and k.startswith("("))
        print(f"{name}: best flash {best[1]} {best[0]:.1f} us; " +
              ", ".join(f"{k} {v:.1f}" for k, v in row.items() if v is not None))


def conv(args) -> None:
    """Best conv_igemm config vs cuDNN conv+bias+ReLU per ResNet-50 conv shape."""
    from tensorforge.kernels.triton import conv as tconv
    from tests.kernels.test_triton_conv import _relu
    for batch in args.batch:
        rows, tot = [], [0.0, 0.0]
        for cin, cout, k, s, hw in RESNET_SHAPES:
            x = torch.randn(batch, cin, hw, hw, device="cuda").half().contiguous(memory_format=CL)
            w = (torch.randn(cout, cin, k, k, device="cuda") * 0.05).half().contiguous(memory_format=CL)
            b = torch.randn(cout, device="cuda").half()
            attrs = {"strides": [s, s], "pads": [k // 2] * 4, "epilogue": _relu()}
            cudnn = _time_us(lambda: torch.cudnn_convolution_relu(x, w, b, [s, s], [k // 2] * 2, [1, 1], 1), 20)
            runs = []
            for c, _ in tconv.configs(cin, cout, batch * (hw // s) ** 2):
                params = dict(zip(("BLOCK_M", "BLOCK_N", "BLOCK_K", "num_warps", "num_stages"), c))
                r = tconv.ConvRunner(attrs, params, None)
                runs.append((_time_us(lambda r=r: r([x, w, b]), 20), c))
            best = min(runs)
            tot[0], tot[1] = tot[0] + cudnn, tot[1] + best[0]
            rows.append(f"{cin:5d}->{cout:5d} k{k} s{s} {hw:3d}: cudnn {cudnn:.1f} us, "
                        f"igemm {best[0]:.1f} us {best[1]}")
        print(f"batch {batch}\n" + "\n".join(rows) + f"\ntotal: cudnn {tot[0]:.1f} us, igemm {tot[1]:.1f} us")


def dwconv(args) -> None:
    """Every dwconv config (reference-checked) vs cuDNN depthwise conv + hardswish, and the HBM floor."""
    import torch.nn.functional as F
    from tensorforge.kernels.triton import dwconv as tdw
    from tests.kernels.test_triton_dwconv import _expr
    for n, c, hw, k, s in DW_SHAPES:
        x = torch.randn(n, c, hw, hw, device="cuda").half().contiguous(memory_format=CL)
        w, b = (torch.randn(c, 1, k, k, device="cuda") * 0.3).half(), torch.randn(c, device="cuda").half()
        attrs = {"group": c, "pads": [k // 2] * 4, "strides": [s, s], "epilogue": _expr("HardSwish")}
        want = F.hardswish(F.conv2d(x, w, b, s, k // 2, 1, c))
        cudnn = _time_us(lambda: F.hardswish(F.conv2d(x, w, b, s, k // 2, 1, c)), 20)
        floor = (x.numel() + want.numel()) * 2 / HBM_BYTES_PER_US
        runs = []
        for cfg, lv in tdw.configs(c):
            r = tdw.DwConvRunner(attrs, dict(zip(("BLOCK_H", "BLOCK_W", "BLOCK_C", "num_warps"), cfg)), None)
            out = torch.empty_like(want, memory_format=CL)
            torch.testing.assert_close(r([x, w, b], [out])[0].float(), want.float(), rtol=1e-2, atol=1e-2)
            runs.append((_time_us(lambda r=r, out=out: r([x, w, b], [out]), 20), lv, cfg))
        best = min(runs)
        print(f"{n}x{c}x{hw}x{hw} k{k} s{s}: floor {floor:.1f} us, cudnn+hardswish {cudnn:.1f} us, "
              f"dwconv best {best[0]:.1f} us (level {best[1]} {best[2]}), all " +
              ", ".join(f"{t:.1f}" for t, _, _ in runs))


def gemm(args) -> None:
    """Every GEMM config (reference-checked) vs cuBLAS addmm (+GELU) on BERT / ViT shapes."""
    from tensorforge.kernels.triton import gemm as tgemm
    from tests.kernels import cases
    from tests.kernels.test_triton_gemm import _gelu_expr, check, rand
    for m, n, k, epi in GEMM_SHAPES:
        a, b, bias = rand((1, m, k), torch.float16, "cuda", 1), rand((k, n), torch.float16, "cuda", 2) * 0.1, \
            rand((n,), torch.float16, "cuda", 3)
        ins, attrs = [a, b, bias], {"alpha": 1.0}
        if epi == "gelu":
            attrs["epilogue"] = _gelu_expr()
        elif epi == "res":
            attrs["epilogue"] = cases.residual_relu_expr()
            ins.append(rand((1, m, n), torch.float16, "cuda", 4))
        ref = torch.nn.functional.gelu if epi == "gelu" else (lambda y: y)
        us_ref = _time_us(lambda: ref(torch.addmm(bias, a[0], b)))
        rows = []
        for t in tgemm.configs(m, n, k):
            run = check("fused.MatMulAct", attrs, ins, t["params"], torch.float16)
            rows.append((_time_us(lambda: run(ins)), t.get("level", 3), t["params"]))
        best = min(rows, key=lambda r: r[0])
        tflops = 2 * m * n * k / best[0] / 1e6
        print(f"{m}x{n}x{k} {epi}: cuBLAS {us_ref:.1f} us, triton best {best[0]:.1f} us ({tflops:.0f} TFLOP/s) "
              f"level {best[1]} {best[2]}")


def qconv(args) -> None:
    """Best qconv config per ResNet-50 conv (INT8 / FP8) vs the FP16 form and cuDNN FP16, summed over the net."""
    from tensorforge.kernels.aten.quant import fp16_form_kernel
    from tensorforge.kernels.triton import qconv as tq
    from tensorforge.runtime.plan import LayerSpec
    from tests.kernels.test_triton_qconv import _q, folded_q_expr
    lay = LayerSpec("q", "fused.QConv", ["x", "w", "b", "ws"], ["y"])
    for batch in args.batch:
        for mode in ("int8", "float8e4m3fn"):
            tot = [0.0, 0.0, 0.0]
            for cin, cout, k, s, hw, count in RESNET50_CONVS:
                x = _q((batch, cin, hw, hw), mode, 0).cuda()
                w, b = _q((cout, cin, k, k), mode, 1).cuda(), torch.randn(cout, device="cuda")
                ws = torch.rand(cout, device="cuda") * 0.01 + 0.001
                attrs = {"x_scale": 0.02, "x_zp": 0, "w_zp": 0, "out_dtype": "float16", "strides": [s, s],
                         "pads": [k // 2] * 4, "epilogue": folded_q_expr(mode)}
                ins, ins_cl = [x, w, b, ws], [x.contiguous(memory_format=CL), w, b, ws]
                form = fp16_form_kernel(lay, attrs, 17, torch.device("cuda"), {})
                want = form(ins)[0]
                us_form = _time_us(lambda: form(ins), 10)  # timed as the builder times it (NCHW in)
                xh, wh = x.half().contiguous(memory_format=CL), w.half().contiguous(memory_format=CL)
                us_cudnn = _time_us(lambda: torch.cudnn_convolution_relu(xh, wh, b.half(), [s, s], [k // 2] * 2,
                                                                         [1, 1], 1), 10)
                runs = []
                for cfg, level in tq.qconv_configs(cin, cout, batch * (hw // s) ** 2):
                    if level > args.level:
                        continue
                    params = dict(zip(("BLOCK_M", "BLOCK_N", "BLOCK_K", "num_warps", "num_stages"), cfg))
                    r = tq.QConvRunner(attrs, params, None)
                    steps = float((r(ins_cl)[0].float() - want.float()).abs().max())  # vs the FP16 form
                    runs.append((_time_us(lambda r=r: r(ins_cl), 10), cfg, steps))
                best = min(runs)
                for i, us in enumerate((us_cudnn, us_form, best[0])):
                    tot[i] += us * count
                print(f"{mode} bs {batch} {cin:5d}->{cout:5d} k{k} s{s} {hw:3d} x{count}: "
                      f"cudnn fp16 {us_cudnn:.1f} us, fp16_form {us_form:.1f} us, qconv {best[0]:.1f} us {best[1]} (max diff vs form {best[2]:g})")
            print(f"== {mode} bs {batch}, convs but the stem: cudnn fp16 {tot[0] / 1e3:.3f} ms, fp16_form "
                  f"{tot[1] / 1e3:.3f} ms, qconv (level <= {args.level}) {tot[2] / 1e3:.3f} ms")


def se(args) -> None:
    """Every se config (reference-checked) vs the reference's torch ops, eager and graph-captured."""
    from tensorforge.kernels.triton import se as tse
    from tensorforge.ops import registry
    ref = registry.get("fused.SqueezeExcite")
    attrs = {"act1": "Relu", "gate": "HardSigmoid", "alpha": 1 / 6, "beta": 0.5}
    for n, c, cr, hw in SE_SHAPES:
        x = torch.randn(n, c, hw, hw, device="cuda").half().contiguous(memory_format=CL)
        ins = [x, (torch.randn(cr, c, 1, 1, device="cuda") * c ** -0.5).half(), torch.randn(cr, device="cuda").half(),
               (torch.randn(c, cr, 1, 1, device="cuda") * cr ** -0.5).half(), torch.randn(c, device="cuda").half()]
        want = ref.run(ins, attrs, 17)[0]
        eager = _time_us(lambda: ref.run(ins, attrs, 17), 20)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            ref.run(ins, attrs, 17)
        captured = _time_us(graph.replay, 20)
        floor = 3 * x.numel() * 2 / HBM_BYTES_PER_US
        runs = []
        for t in tse.configs(n, c, hw * hw):
            r, out = tse.SERunner(attrs, t["params"], None), torch.empty_like(x)
            torch.testing.assert_close(r(ins, [out])[0].float(), want.float(), rtol=1e-2, atol=1e-2)
            runs.append((_time_us(lambda r=r, out=out: r(ins, [out]), 20), t.get("level", 3), t["params"]["GATE"]))
        best = min(runs)
        print(f"{n}x{c}x{hw}x{hw} Cr {cr}: floor {floor:.1f} us, torch ops {eager:.1f} us (graph {captured:.1f}), "
              f"se best {best[0]:.1f} us (level {best[1]} {best[2]}), all " + ", ".join(f"{u:.1f}" for u, _, _ in runs))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("family", choices=("attention", "conv", "dwconv", "gemm", "qconv", "se"))
    p.add_argument("--batch", type=lambda s: [int(x) for x in s.split(",")], default=[128, 4],
                   help="conv, qconv: batch sizes (default 128,4)")
    p.add_argument("--level", type=int, default=3, help="qconv: configs up to this opt level (3 or 4)")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("needs CUDA", file=sys.stderr)
        return 2
    {"attention": attention, "conv": conv, "dwconv": dwconv, "gemm": gemm, "qconv": qconv,
     "se": se}[args.family](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
