"""Text transformers as the legacy torch.onnx exporter emits HF BERT and GPT-2.

Constant nodes for literals, decomposed LayerNorm, erf/tanh GELU, and head reshapes whose target
shapes are computed at run time (Shape -> Gather -> Unsqueeze -> Concat -> Reshape).
"""
from __future__ import annotations

import math

import numpy as np

from .builder import BATCH, GraphBuilder


def _split_heads(b: GraphBuilder, x, heads, hd, perm):
    """x.view(x.size()[:-1] + (heads, hd)).permute(perm), shape computed symbolically."""
    shape = b.shape_of([b.dim(x, 0), b.dim(x, 1), heads, hd])
    return b.transpose(b.reshape(x, shape), perm)


def _merge_heads(b: GraphBuilder, ctx, hidden):
    """ctx.permute(0, 2, 1, 3).view(ctx.size()[:-2] + (hidden,))."""
    ctx = b.transpose(ctx, [0, 2, 1, 3])
    return b.reshape(ctx, b.shape_of([b.dim(ctx, 0), b.dim(ctx, 1), hidden]))


def _extended_mask(b: GraphBuilder, mask):
    """mask[:, None, None, :] -> float -> (1 - m) * -10000."""
    m = b.node("Cast", [b.unsqueeze(mask, [1, 2])], to=1)
    return b.mul(b.sub(b.const(1.0), m), b.const(-10000.0))


def bert(b: GraphBuilder, vocab=30522, hidden=768, layers=12, heads=12, ffn=3072, max_pos=512,
         type_vocab=2, seq=128):
    """HF BertModel: embeddings + post-norm encoder + tanh pooler."""
    ids = b.input("input_ids", "int64", [BATCH, seq])
    mask = b.input("attention_mask", "int64", [BATCH, seq])
    with b.scope("embeddings"):
        x = _bert_embeddings(b, ids, vocab, hidden, max_pos, type_vocab)
    ext = _extended_mask(b, mask)
    for i in range(layers):
        with b.scope(f"encoder.layer.{i}"):
            x = _bert_layer(b, x, ext, hidden, heads, ffn)
    with b.scope("pooler"):
        p = b.gemm(b.gather(x, 0, axis=1), hidden, hidden, "dense", std=0.02)
        p = b.node("Tanh", [p], "activation")
    b.output(x, "last_hidden_state", "float32", [BATCH, seq, hidden])
    b.output(p, "pooler_output", "float32", [BATCH, hidden])


def _bert_embeddings(b: GraphBuilder, ids, vocab, hidden, max_pos, type_vocab):
    """word + token_type (buffered zeros) + position (buffered arange), sliced to the length."""
    length = b.unsqueeze(b.dim(ids, 1), [0])
    pos_ids = b.param("position_ids", np.arange(max_pos, dtype=np.int64)[None])
    type_ids = b.param("token_type_ids", np.zeros((1, max_pos), np.int64))
    zero, one = b.const([0], "int64"), b.const([1], "int64")
    pos_ids = b.node("Slice", [pos_ids, zero, length, one])  # position_ids[:, :seq_len]
    type_ids = b.node("Slice", [type_ids, zero, length, one])
    type_ids = b.node("Expand", [type_ids, b.node("Shape", [ids])])
    word = b.param("word_embeddings.weight", b.init((vocab, hidden), 0.02))
    pos = b.param("position_embeddings.weight", b.init((max_pos, hidden), 0.02))
    typ = b.param("token_type_embeddings.weight", b.init((type_vocab, hidden), 0.02))
    x = b.add(b.gather(word, ids, local="word_embeddings"),
              b.gather(typ, type_ids, local="token_type_embeddings"))
    x = b.add(x, b.gather(pos, pos_ids, local="position_embeddings"))
    return b.layernorm_decomposed(x, hidden, "LayerNorm", eps=1e-12)


def _bert_layer(b: GraphBuilder, x, ext, hidden, heads, ffn):
    """Self-attention + dense + residual LN, then FFN (GELU) + residual LN."""
    hd = hidden // heads
    with b.scope("attention.self"):
        q = _split_heads(b, b.linear(x, hidden, hidden, "query"), heads, hd, [0, 2, 1, 3])
        k = _split_heads(b, b.linear(x, hidden, hidden, "key"), heads, hd, [0, 2, 3, 1])
        v = _split_heads(b, b.linear(x, hidden, hidden, "value"), heads, hd, [0, 2, 1, 3])
        s = b.div(b.matmul(q, k), b.const(math.sqrt(hd)))
        s = b.softmax(b.add(s, ext), axis=-1)
        ctx = _merge_heads(b, b.matmul(s, v), hidden)
    with b.scope("attention.output"):
        h = b.add(b.linear(ctx, hidden, hidden, "dense"), x)
        x = b.layernorm_decomposed(h, hidden, "LayerNorm", eps=1e-12)
    h = b.linear(x, hidden, ffn, "intermediate.dense")
    h = b.gelu_erf(h, "intermediate.intermediate_act_fn")
    with b.scope("output"):
        h = b.add(b.linear(h, ffn, hidden, "dense"), x)
        return b.layernorm_decomposed(h, hidden, "LayerNorm", eps=1e-12)


def gpt2(b: GraphBuilder, vocab=50257, hidden=768, layers=12, heads=12, ctx=1024, seq=128):
    """HF GPT2LMHeadModel: pre-norm blocks, causal + padding mask, tied lm_head."""
    ids = b.input("input_ids", "int64", [BATCH, seq])
    mask = b.input("attention_mask", "int64", [BATCH, seq])
    with b.scope("transformer"):
        wte = b.param("wte.weight", b.init((vocab, hidden), 0.02))
        wpe = b.param("wpe.weight", b.init((ctx, hidden), 0.01))
        length = b.dim(ids, 1)
        pos = b.node("Range", [b.const(0, "int64"), length, b.const(1, "int64")])
        pos = b.unsqueeze(pos, [0])  # position_ids = arange(seq).unsqueeze(0)
        x = b.add(b.gather(wte, ids, local="wte"), b.gather(wpe, pos, local="wpe"))
        ext = _extended_mask(b, mask)
        # one registered causal buffer (exporters dedupe the per-layer copies)
        tril = b.param("h.0.attn.bias", np.tril(np.ones((ctx, ctx), bool))[None, None])
        for i in range(layers):
            with b.scope(f"h.{i}"):
                x = _gpt2_block(b, x, ext, tril, length, hidden, heads, layers)
        x = b.layernorm_decomposed(x, hidden, "ln_f")
    logits = b.matmul(x, b.transpose(wte, [1, 0], "lm_head.Transpose"), "lm_head")
    b.output(logits, "logits", "float32", [BATCH, seq, vocab])


def _gpt2_block(b: GraphBuilder, x, ext, tril, length, hidden, heads, layers):
    """x + attn(ln_1(x)); x + mlp(ln_2(x)), gelu_new (tanh form)."""
    hd = hidden // heads
    proj_std = 0.02 / math.sqrt(2 * layers)  # GPT-2's scaled init of residual projections
    h = b.layernorm_decomposed(x, hidden, "ln_1")
    with b.scope("attn"):
        q, k, v = b.split(b.linear(h, hidden, 3 * hidden, "c_attn"), [hidden] * 3, axis=2)
        q = _split_heads(b, q, heads, hd, [0, 2, 1, 3])
        k = _split_heads(b, k, heads, hd, [0, 2, 3, 1])
        v = _split_heads(b, v, heads, hd, [0, 2, 1, 3])
        w = b.div(b.matmul(q, k), b.const(math.sqrt(hd)))
        # bias[:, :, key_len - query_len : key_len, :key_len]; no past here, so [:L, :L]
        end = b.unsqueeze(length, [0])
        causal = b.node("Slice", [tril, b.const([0, 0], "int64"), b.concat([end, end], axis=0),
                                  b.const([2, 3], "int64")])
        w = b.node("Where", [causal, w, b.const(np.finfo(np.float32).min)])
        w = b.softmax(b.add(w, ext), axis=-1)
        a = _merge_heads(b, b.matmul(w, v), hidden)
        a = b.linear(a, hidden, hidden, "c_proj", std=proj_std)
    x = b.add(x, a)
    h = b.layernorm_decomposed(x, hidden, "ln_2")
    with b.scope("mlp"):
        h = b.gelu_tanh(b.linear(h, hidden, 4 * hidden, "c_fc"), "act")
        h = b.linear(h, 4 * hidden, hidden, "c_proj", std=proj_std)
    return b.add(x, h)
