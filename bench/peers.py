"""Peer side of bench/compare.py: the torch architectures (torchvision / timm / transformers, random
weights, nothing downloaded), their ONNX export, and the torch runners (eager, eager + CUDA graph,
torch.compile max-autotune). Also the GPU timer every runner shares."""
from __future__ import annotations

import copy
import statistics
import time

import numpy as np
import torch

SEQ = 128


def gpu_time(fn, target_ms: float = 150.0, repeats: int = 7) -> float:
    """Median ms per call of back-to-back calls timed with CUDA events, after warm-up."""
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    est = max((time.perf_counter() - t0) * 1e3 / 5, 1e-3)
    iters = int(min(2000, max(10, target_ms / est)))
    out = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(iters):
            fn()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b) / iters)
    return statistics.median(out)


def graph_time(call, n=20, repeats=5) -> float:
    """Median ms per call of n calls captured in one CUDA graph (GPU time, no Python launch overhead;
    how the builder times tactics and the runtime runs them)."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            call()
    s.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, stream=s):
        for _ in range(n):
            call()
    g.replay()
    torch.cuda.synchronize()
    return gpu_time(g.replay, repeats=repeats) / n


def engine_graph(ctx, feeds: dict, first: dict):
    """(replay, outputs) of one inference of `ctx` captured in a CUDA graph (runtime.graphs.context_graph)."""
    from tensorforge.runtime.graphs import context_graph
    return context_graph(ctx, feeds, first)


# ---- architectures ------------------------------------------------------------------------
class _Bert(torch.nn.Module):
    """BertModel with tensor outputs (last_hidden_state, pooler_output)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask):
        o = self.m(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        return o.last_hidden_state, o.pooler_output


def torch_model(arch: str, for_export: bool = False, state=None):
    """A random-weight torch model on CUDA in eval mode (for_export: the plain-attention variant)."""
    torch.manual_seed(0)
    if arch == "resnet50":
        import torchvision
        m = torchvision.models.resnet50(weights=None)
    elif arch == "vit_b16":
        import timm
        m = timm.create_model("vit_base_patch16_224", pretrained=False)
        if for_export:  # unfused attention exports as MatMul/Softmax (what the ONNX path sees)
            for mod in m.modules():
                if hasattr(mod, "fused_attn"):
                    mod.fused_attn = False
    elif arch == "bert_base":
        from transformers import BertConfig, BertModel
        cfg = BertConfig(attn_implementation="eager") if for_export else BertConfig()
        if for_export:  # plain MatMul/Softmax attention in the exported graph
            cfg._attn_implementation = "eager"
        m = _Bert(BertModel(cfg, add_pooling_layer=True))
    else:
        raise ValueError(arch)
    if state is not None:
        m.load_state_dict(state)
    return m.cuda().eval()


def torch_inputs(arch: str, batch: int, seed: int = 0) -> dict:
    """Named CUDA inputs for an architecture (fp32 images; BERT ids and a mask with padding)."""
    g = torch.Generator().manual_seed(seed)
    if arch in ("resnet50", "vit_b16"):
        return {"input": (torch.rand(batch, 3, 224, 224, generator=g) * 2 - 1).cuda()}
    ids = torch.randint(0, 30522, (batch, SEQ), generator=g)
    mask = torch.ones(batch, SEQ, dtype=torch.int64)
    for r in range(batch):
        mask[r, SEQ - int(torch.randint(1, SEQ // 4, (1,), generator=g)):] = 0
    return {"input_ids": ids.cuda(), "attention_mask": mask.cuda()}


def output_names(arch: str) -> list:
    return ["last_hidden_state", "pooler_output"] if arch == "bert_base" else ["output"]


def export_onnx(arch: str, model, path: str) -> str:
    """Export with a dynamic batch (batch-2 example inputs); TorchScript exporter, else dynamo."""
    ins = torch_inputs(arch, 2, seed=1)
    names, outs = list(ins), output_names(arch)
    args = tuple(ins.values())
    axes = {n: {0: "N"} for n in names + outs}
    with torch.no_grad():
        try:
            torch.onnx.export(model, args, path, input_names=names, output_names=outs, dynamic_axes=axes,
                              opset_version=17, dynamo=False)
            return "torchscript"
        except Exception as e:  # noqa: BLE001 - TorchScript exporter gone: try the dynamo one
            first = e
        try:
            n = torch.export.Dim("N", min=2, max=1024)
            torch.onnx.export(model, args, path, input_names=names, output_names=outs, opset_version=17,
                              dynamo=True, external_data=False,
                              dynamic_shapes={k: {0: n} for k in names})
            return "dynamo"
        except Exception as e:  # noqa: BLE001
            raise RuntimeError(f"ONNX export failed: {first}; dynamo: {e}") from None


# ---- runners ------------------------------------------------------------------------------
def half_copy(model):
    return copy.deepcopy(model).half()


def cast_inputs(ins: dict, dtype) -> tuple:
    return tuple(v.to(dtype) if v.is_floating_point() else v for v in ins.values())


def first_output(y):
    return y[0] if isinstance(y, (tuple, list)) else y


def run_eager(model, args):
    """(fn, output) for eager torch."""
    def fn():
        with torch.inference_mode():
            return model(*args)
    return fn, first_output(fn())


def run_graph(model, args):
    """(fn, output) for eager torch captured in one CUDA graph (static inputs)."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s), torch.inference_mode():
        for _ in range(3):
            model(*args)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(g):
        out = model(*args)
    g.replay()
    return g.replay, first_output(out)


def run_compiled(model, args):
    """(fn, output, compile seconds) for torch.compile(mode="max-autotune")."""
    c = torch.compile(model, mode="max-autotune")
    t0 = time.perf_counter()
    with torch.inference_mode():
        for _ in range(3):
            c(*args)
    torch.cuda.synchronize()
    secs = time.perf_counter() - t0

    def fn():
        with torch.inference_mode():
            return c(*args)
    return fn, first_output(fn()).clone(), secs


def agreement(got, ref) -> tuple[float, float]:
    """(max abs error, cosine) of an output against the reference."""
    g = np.asarray(got.detach().float().cpu().numpy(), dtype=np.float64).ravel()
    r = np.asarray(ref.detach().float().cpu().numpy() if isinstance(ref, torch.Tensor) else ref,
                   dtype=np.float64).ravel()
    if g.shape != r.shape:
        return float("nan"), float("nan")
    cos = float(g @ r / max(np.linalg.norm(g) * np.linalg.norm(r), 1e-30))
    return float(np.abs(g - r).max()), cos
