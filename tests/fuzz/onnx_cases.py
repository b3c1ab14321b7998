"""ONNX model mutations (>= 20 kinds) over zoo small models and ONNX conformance (node test) models."""
from __future__ import annotations

import os

import onnx

from .harness import Case
from .onnx_mutations import MUTATIONS, _pick

ZOO = ("vit_b16_small", "mobilenetv2_small", "bert_base_small", "resnet50_small", "gpt2_small_small")
CONFORMANCE = ("conv", "gemm", "reshape", "gather", "softmax", "slice", "transpose", "matmul")
TARGETS = ("forgeexec", "inspect", "api_build")


def models(conformance: bool = True) -> list:
    """[(name, ModelProto)]: zoo small models, then single-op conformance models."""
    from tensorforge import zoo
    out = [(f"zoo:{n}", zoo.get_model(n)) for n in ZOO]
    if conformance:
        import warnings
        warnings.filterwarnings("ignore")
        from tests.conformance.run_node_tests import load_module_cases
        for mod, cs in load_module_cases(CONFORMANCE).items():
            out += [(c.name, c.model) for c in cs[:3]]
    return out


BYTE_KINDS = ("file_truncate", "file_bitflip")


def _argv(target: str, path: str) -> list:
    if target == "forgeexec":
        return [f"--onnx={path}", "--builderOptimizationLevel=0", "--iterations=1", "--duration=0", "--warmUp=0"]
    return [path]


def cases(workdir: str, rng, n: int, conformance: bool = True, kinds=None):
    """n ONNX cases: kinds in turn (all of them first), random model and target each."""
    pool = models(conformance)
    kinds = list(kinds or MUTATIONS) + list(BYTE_KINDS)
    made = 0
    attempt = 0
    while made < n and attempt < n * 5:
        kind = kinds[attempt % len(kinds)]
        attempt += 1
        name, base = _pick(rng, pool)
        m = onnx.ModelProto()
        m.CopyFrom(base)
        path = os.path.join(workdir, f"m{attempt}_{kind}.onnx")
        if kind in BYTE_KINDS:
            data = bytearray(m.SerializeToString())
            if kind == "file_truncate":
                data = data[:int(rng.integers(1, len(data)))]
            else:
                for _ in range(int(rng.integers(1, 16))):
                    data[int(rng.integers(0, len(data)))] ^= 0xFF
            must_fail = False
        else:
            fn, must_fail = MUTATIONS[kind]
            try:
                if not fn(m, rng):
                    continue
            except (IndexError, ValueError, TypeError):
                continue
            data = m.SerializeToString()
        with open(path, "wb") as f:
            f.write(data)
        target = TARGETS[made % len(TARGETS)]
        yield Case("onnx", kind, target, _argv(target, path),
                   must_fail=must_fail and target != "inspect", protected=[path])
        made += 1
