"""Golden plans: per zoo model, the layer list (name, op, tactic, precision) of a level-0 CPU build.

`python tests/golden_plans/make_golden.py` rewrites the files; test_golden_plans.py checks them.
A refactor that changes no behaviour keeps every file byte-identical."""
from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ("resnet50", "mobilenetv2", "vit_b16", "bert_base", "gpt2_small", "yolo_det",
          "resnet50_small", "mobilenetv2_small", "vit_b16_small", "bert_base_small",
          "gpt2_small_small", "yolo_det_small")
PRECISIONS = ("fp32", "fp16")


def plan_text(model: str, precision: str) -> str:
    """The golden text of one build: one line per layer."""
    import tensorforge as tf
    cfg = tf.BuilderConfig(opt_level=0, device="cpu", fp16=precision == "fp16")
    engine = tf.Builder(cfg).build(f"zoo:{model}")
    lines = []
    for lay in engine.plan.layers:
        tac = json.dumps(lay.tactic, sort_keys=True, separators=(",", ":"))
        ins = ",".join(str(i) for i in lay.inputs)
        outs = ",".join(lay.outputs)
        lines.append(f"{lay.name}\t{lay.type}\t{tac}\t{lay.precision}\t{ins} -> {outs}")
    return "\n".join(lines) + "\n"


def path_of(model: str, precision: str) -> str:
    return os.path.join(HERE, f"{model}.{precision}.txt")


def main(argv) -> int:
    names = [m for m in MODELS if not argv or m in argv]
    for m in names:
        for p in PRECISIONS:
            with open(path_of(m, p), "w") as f:
                f.write(plan_text(m, p))
            print("wrote", path_of(m, p))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
