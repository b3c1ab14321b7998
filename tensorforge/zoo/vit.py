"""Vision Transformer (torchvision ViT-B/16 layout, opset-17 LayerNormalization, fused QKV)."""
from __future__ import annotations

import math

from .builder import BATCH, GraphBuilder


def vit(b: GraphBuilder, image=224, patch=16, hidden=768, layers=12, heads=12, mlp=3072,
        classes=1000):
    """Patch conv -> tokens -> [cls] + pos -> pre-norm encoder blocks -> LN -> head(cls)."""
    x = b.input("input", "float32", [BATCH, 3, image, image])
    tokens = (image // patch) ** 2
    seq = tokens + 1
    # lecun-style init (gain 1), as torchvision's conv_proj
    x = b.conv(x, hidden, patch, patch, 0, bias=True, local="conv_proj", gain=1.0)
    x = b.reshape(x, [0, hidden, tokens])  # 0: copy the (dynamic) batch dim
    x = b.transpose(x, [0, 2, 1])
    # class_token.expand(n, -1, -1) with n from the input's shape: the batch stays dynamic
    cls = b.param("class_token", b.init((1, 1, hidden), 0.02))
    shape = b.shape_of([b.dim("input", 0), 1, hidden])
    x = b.concat([b.node("Expand", [cls, shape]), x], axis=1)
    with b.scope("encoder"):
        pos = b.param("pos_embedding", b.init((1, seq, hidden), 0.02))
        x = b.add(x, pos)
        for i in range(layers):
            with b.scope(f"layers.encoder_layer_{i}"):
                x = _encoder_block(b, x, seq, hidden, heads, mlp)
        x = b.layernorm(x, hidden, "ln")
    x = b.gather(x, 0, axis=1)  # the class token
    y = b.gemm(x, hidden, classes, "heads.head", std=0.02, bias_std=0.01)
    b.output(y, "output", "float32", [BATCH, classes])


def _xavier(cin, cout):
    return math.sqrt(2.0 / (cin + cout))


def _encoder_block(b: GraphBuilder, x, seq, hidden, heads, mlp):
    """x + attn(ln_1(x)); then + mlp(ln_2(x)), with GELU in erf form."""
    hd = hidden // heads
    h = b.layernorm(x, hidden, "ln_1")
    with b.scope("self_attention"):
        qkv = b.linear(h, hidden, 3 * hidden, "in_proj", std=_xavier(hidden, hidden))
        qkv = b.reshape(qkv, [0, seq, 3, heads, hd])
        qkv = b.transpose(qkv, [2, 0, 3, 1, 4])  # [3, N, heads, seq, hd]
        q, k, v = (b.gather(qkv, i, axis=0) for i in range(3))
        s = b.matmul(q, b.transpose(k, [0, 1, 3, 2]))
        s = b.softmax(b.mul(s, b.const(1.0 / math.sqrt(hd))), axis=-1)
        o = b.transpose(b.matmul(s, v), [0, 2, 1, 3])
        o = b.reshape(o, [0, seq, hidden])
        o = b.linear(o, hidden, hidden, "out_proj", std=_xavier(hidden, hidden))
    x = b.add(x, o)
    h = b.layernorm(x, hidden, "ln_2")
    with b.scope("mlp"):
        h = b.linear(h, hidden, mlp, "0", std=_xavier(hidden, mlp))
        h = b.gelu_erf(h, "1")
        h = b.linear(h, mlp, hidden, "3", std=_xavier(mlp, hidden))
    return b.add(x, h)
