"""Refit speed: a refit of a zoo model against a warm-cache build of the same model, and a check
that the refitted engine's outputs equal a fresh build's with the new weights (bitwise).

  python bench/refit.py [--models resnet50,bert_base] [--device cpu|cuda] [--fp16] [--opt-level 3]
                        [--repeat 3] [--profile FILE]

Per model: build once to fill a timing cache, time a warm build (best of --repeat), draw new random
weights (every refittable initializer scaled by U(0.5, 1.5)), time Refitter.refit() and
`tensorforge refit` (load + refit + save, in-process) best of --repeat, print refit / warm build.
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import re
import sys
import tempfile
import time
from types import SimpleNamespace

import onnx
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tensorforge as tf  # noqa: E402
from tensorforge import frontend, zoo  # noqa: E402
from tensorforge.cli.refit_cmd import refit as refit_cmd  # noqa: E402
from tensorforge.testing import scaled_weights  # noqa: E402




def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def best(fn, repeat, device):
    """(smallest wall time, smallest process CPU time) of fn() over repeat runs (s). CPU time is
    shown too: on a shared CPU machine other processes inflate wall times at random."""
    wall, cpu = [], []
    for _ in range(repeat):
        sync(device)
        t, c = time.perf_counter(), time.process_time()
        fn()
        sync(device)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return min(wall), min(cpu)


def same_outputs(a, b, name) -> bool:
    """Bitwise-equal outputs of two engines on the zoo's random inputs (batch 1)."""
    feed = {k: torch.from_numpy(v) for k, v in zoo.random_inputs(name, batch=1).items()}
    ra, rb = a.create_execution_context().infer(feed), b.create_execution_context().infer(feed)
    return all(_bits(ra[k]).equal(_bits(rb[k])) for k in rb)


def _bits(t):
    """A float tensor's bit patterns (NaNs compare equal when their bits are)."""
    t = t.detach().cpu().contiguous()
    return t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()]) if t.is_floating_point() else t


def bench(name, args, tmp):
    proto = frontend.load_model_proto(f"zoo:{name}")
    new, arrays = scaled_weights(proto)
    cache = os.path.join(tmp, f"{name}.cache")
    cfg = dict(opt_level=args.opt_level, device=args.device, fp16=args.fp16, timing_cache=cache)
    tf.Builder(tf.BuilderConfig(**cfg)).build(proto)  # fills the timing cache
    warm, warm_cpu = best(lambda: tf.Builder(tf.BuilderConfig(**cfg)).build(proto), args.repeat, args.device)
    engine = tf.Builder(tf.BuilderConfig(refit=True, **cfg)).build(proto)
    path = os.path.join(tmp, f"{name}.engine")
    engine.save(path)

    def refit_api():
        r = tf.Refitter(engine)
        for k, v in arrays.items():
            r.set_named_weights(k, v)
        return r.refit()
    refit_api()  # warm-up (first-use imports, allocator)
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(refit_api)
        prof.dump_stats(f"{args.profile}.{name}")
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    t_api, c_api = best(refit_api, args.repeat, args.device)
    new_path = os.path.join(tmp, f"{name}.new.onnx")
    onnx.save(new, new_path)
    cli = SimpleNamespace(engine=path, model=new_path, output=os.path.join(tmp, f"{name}.refit.engine"),
                          device=args.device, verbose=False)
    said = []

    def run_cli():  # the command prints the seconds of its refit step (between load and save)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            refit_cmd(cli)
        said.append(float(re.search(r" in ([0-9.]+) s ", buf.getvalue()).group(1)))
    t_cli, c_cli = best(run_cli, args.repeat, args.device)
    fresh = tf.Builder(tf.BuilderConfig(**cfg)).build(new)
    same_tactics = [x.tactic for x in engine.plan.layers] == [x.tactic for x in fresh.plan.layers]
    equal = same_outputs(engine, fresh, name)
    equal_cli = same_outputs(tf.Engine.load(cli.output, device=args.device), fresh, name)
    print(f"{name:10s} wall: warm build {warm:7.3f} s | "
          f"Refitter.refit {t_api:6.3f} s ({100 * t_api / warm:5.1f} %) | "
          f"tensorforge refit {t_cli:6.3f} s ({100 * t_cli / warm:5.1f} %), of which its refit step "
          f"{min(said):6.3f} s ({100 * min(said) / warm:5.1f} %; the rest: engine load and save)\n"
          f"{'':10s} cpu:  warm build {warm_cpu:7.3f} s | Refitter.refit {c_api:6.3f} s "
          f"({100 * c_api / warm_cpu:5.1f} %) | tensorforge refit {c_cli:6.3f} s "
          f"({100 * c_cli / warm_cpu:5.1f} %)\n"
          f"{'':10s} same tactics {same_tactics} | outputs bitwise equal to a fresh build: "
          f"api {equal}, cli {equal_cli}")
    return equal and equal_cli and same_tactics


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet50,bert_base")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--fp16", action="store_true")
    ap.add_argument("--opt-level", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", default=None, help="cProfile one refit per model into FILE.MODEL")
    args = ap.parse_args()
    print(f"tensorforge refit bench: device {args.device}, fp16 {args.fp16}, opt level {args.opt_level}, "
          f"torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    with tempfile.TemporaryDirectory() as tmp:
        ok = [bench(m, args, tmp) for m in args.models.split(",")]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
