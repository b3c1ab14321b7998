"""The zoo's catalogue: each model's generator, its arguments, and its input/output specs."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from . import cnn, detector, transformers, vit
from .builder import BATCH

# input spec: name -> (dtype, shape with "N" for the batch, (low, high) value range);
# integer ranges are half-open [low, high), like numpy's integers()


@dataclass(frozen=True)
class ZooModel:
    name: str
    fn: Callable
    kwargs: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)  # name -> (dtype, shape)
    const_nodes: bool = False  # legacy-exporter style Constant nodes for literals
    doc: str = ""


def _image(name, size, out_shape, **kw):
    return dict(inputs={name: ("float32", [BATCH, 3, size, size], (-1.0, 1.0))},
                outputs={"output": ("float32", out_shape)}, **kw)


def _text(vocab, seq):
    return {"input_ids": ("int64", [BATCH, seq], (0, vocab)),
            "attention_mask": ("int64", [BATCH, seq], (0, 2))}


_MBV2_SMALL = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 2, 2], [6, 64, 1, 2]]
_BERT_SMALL = dict(vocab=1000, hidden=64, layers=2, heads=2, ffn=128, max_pos=64, seq=16)
_GPT2_SMALL = dict(vocab=1000, hidden=64, layers=2, heads=2, ctx=64, seq=16)
_YOLO_SMALL = dict(widths=(8, 16, 32, 64, 128), depths=(1, 1, 1, 1), image=64,
                   calib=(64, 32))


def _yolo_out(image):
    return [BATCH, 144, sum((image // s) ** 2 for s in (8, 16, 32))]


def _catalogue() -> dict[str, ZooModel]:
    models = [
        ZooModel("resnet50", cnn.resnet, {}, **_image("input", 224, [BATCH, 1000]),
                 doc="torchvision ResNet-50 v1.5, Conv + BatchNormalization (unfolded) + Relu"),
        ZooModel("mobilenetv2", cnn.mobilenetv2, {}, **_image("input", 224, [BATCH, 1000]),
                 doc="torchvision MobileNetV2 1.0: Conv + BN + Clip(0, 6), depthwise convs"),
        ZooModel("vit_b16", vit.vit, {}, **_image("input", 224, [BATCH, 1000]),
                 doc="ViT-B/16 224: LayerNormalization, fused QKV, erf GELU"),
        ZooModel("bert_base", transformers.bert, {}, inputs=_text(30522, 128),
                 outputs={"last_hidden_state": ("float32", [BATCH, 128, 768]),
                          "pooler_output": ("float32", [BATCH, 768])}, const_nodes=True,
                 doc="BERT-base uncased, legacy torch.onnx layout (decomposed LayerNorm)"),
        ZooModel("gpt2_small", transformers.gpt2, {}, inputs=_text(50257, 128),
                 outputs={"logits": ("float32", [BATCH, 128, 50257])}, const_nodes=True,
                 doc="GPT-2 small (124M), causal mask via Where, tanh GELU, tied lm_head"),
        ZooModel("yolo_det", detector.yolo, {}, **_image("images", 640, _yolo_out(640)),
                 doc="YOLOv8n-style detector: C2f, SPPF, FPN/PAN, 3 heads -> [N, 144, 8400]"),
        # small variants: same constructs, sized for quick CPU tests
        ZooModel("resnet50_small", cnn.resnet, dict(layers=(1, 1, 1, 1), width=16, image=64),
                 **_image("input", 64, [BATCH, 1000]), doc="ResNet-50 layout, [1,1,1,1], /4"),
        ZooModel("mobilenetv2_small", cnn.mobilenetv2,
                 dict(settings=_MBV2_SMALL, last=256, image=64),
                 **_image("input", 64, [BATCH, 1000]), doc="MobileNetV2 layout, 5 blocks"),
        ZooModel("vit_b16_small", vit.vit,
                 dict(image=32, patch=8, hidden=64, layers=2, heads=2, mlp=256),
                 **_image("input", 32, [BATCH, 1000]), doc="ViT layout, 2 layers, hidden 64"),
        ZooModel("bert_base_small", transformers.bert, _BERT_SMALL, inputs=_text(1000, 16),
                 outputs={"last_hidden_state": ("float32", [BATCH, 16, 64]),
                          "pooler_output": ("float32", [BATCH, 64])}, const_nodes=True,
                 doc="BERT layout, 2 layers, hidden 64, seq 16"),
        ZooModel("gpt2_small_small", transformers.gpt2, _GPT2_SMALL, inputs=_text(1000, 16),
                 outputs={"logits": ("float32", [BATCH, 16, 1000])}, const_nodes=True,
                 doc="GPT-2 layout, 2 layers, hidden 64, seq 16"),
        ZooModel("yolo_det_small", detector.yolo, _YOLO_SMALL,
                 **_image("images", 64, _yolo_out(64)), doc="YOLOv8n layout, 64x64, narrow"),
    ]
    return {m.name: m for m in models}


CATALOGUE = _catalogue()
