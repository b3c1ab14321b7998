"""Full garden run: `python3 -m tests.garden.run [NAME ...] [--json OUT]` prints the status table."""
from __future__ import annotations

import argparse
import json
import sys

from .check import check_model
from .fetch import GardenUnavailable, load_manifest, model_path
from .report import markdown


def _agreement(r, entry) -> str:
    if not r.ran:
        return "-"
    s = f"rel {r.max_rel:.1e}, cos {r.min_cosine:.6f}"
    if r.top1 is not None:
        s += f", top1 {r.top1:.0%}"
    return s


def _verdict(r, entry) -> str:
    """pass / FAIL / xfail / XPASS relative to the manifest's expected status."""
    expected = entry.get("status", "pass")
    if expected == "xfail":
        if r.agrees:
            return "XPASS (fixed: update the manifest)"
        same = r.error == entry.get("error")
        return "xfail" if same else f"xfail (error changed: {r.error or 'disagrees'})"
    return "pass" if r.agrees else "FAIL"


def main(argv=None) -> int:
    """Fetch, build, run and compare every (or each named) model; exit 1 on an unexpected result."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("names", nargs="*", help="model names (default: all)")
    ap.add_argument("--json", help="write per-model results here")
    ap.add_argument("--opt-level", type=int, default=0)
    ap.add_argument("--markdown", help="also write the status page (docs/model_garden.md) here")
    args = ap.parse_args(argv)
    entries = [m for m in load_manifest() if not args.names or m["name"] in args.names]
    rows, out, bad = [], [], 0
    hdr = ("model", "package", "ops", "builds?", "agreement vs ORT (max rel err, cosine)", "time s", "status")
    for e in entries:
        try:
            path = model_path(e)
        except GardenUnavailable as ex:
            print(f"{e['name']}: skipped ({ex})", file=sys.stderr)
            continue
        r = check_model(e, path, opt_level=args.opt_level)
        verdict = _verdict(r, e)
        bad += verdict.startswith(("FAIL", "XPASS")) or "changed" in verdict
        built = "yes" if r.ran else ("built, run failed" if r.built else "no")
        rows.append((e["name"], f"{e['package']}=={e['version']}", str(e["ops"]), built,
                     _agreement(r, e), f"{r.seconds:.1f}", verdict))
        out.append({"name": e["name"], "built": r.built, "ran": r.ran, "error": r.error, "max_rel": r.max_rel,
                    "min_cosine": r.min_cosine, "top1": r.top1, "seconds": r.seconds, "verdict": verdict})
        print(f"{e['name']}: {verdict} {r.error}", file=sys.stderr, flush=True)
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(hdr)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    print(line(hdr))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
    for o in out:
        if o["error"]:
            print(f"  {o['name']}: {o['error']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown(entries, {o["name"]: o for o in out}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
