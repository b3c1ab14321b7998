"""`--help` of every command (forgeexec, `tensorforge` and each of its subcommands, nested ones too)
prints in under a second after Python starts, loading neither torch nor onnx. Measured in a fresh
interpreter per command; 2 s allowed on a loaded CI machine; the times are printed (pytest -s)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIMIT_S = 2.0
HEAVY = ("torch", "onnx", "onnxruntime", "numpy", "triton", "sympy", "matplotlib", "ray")

PROBE = """import time
t0 = time.perf_counter()
import contextlib, io, json, sys
from {module} import main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
    try:
        rc = main({argv!r})
    except SystemExit as e:
        rc = e.code
dt = time.perf_counter() - t0
print(json.dumps({{"s": dt, "rc": rc, "chars": len(out.getvalue()),
                   "heavy": sorted(m for m in {heavy!r} if m in sys.modules)}}))
"""


def _commands() -> list[tuple[str, list[str]]]:
    """(module, argv) of every --help: forgeexec, tensorforge, each subcommand and nested subcommand."""
    import argparse
    from tensorforge.cli.main import parser
    cmds = [("tensorforge.cli.forgeexec.main", ["--help"]), ("tensorforge.cli.main", ["--help"])]

    def walk(p, prefix):
        for a in p._actions:  # argparse keeps subcommands as an action with a name -> parser map
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    cmds.append(("tensorforge.cli.main", [*prefix, name, "--help"]))
                    walk(sub, [*prefix, name])
    walk(parser(), [])
    return cmds


def _probe(module: str, argv: list[str]) -> dict:
    code = PROBE.format(module=module, argv=argv, heavy=HEAVY)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": ROOT})
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_every_help_is_fast_and_light():
    cmds = _commands()
    names = {" ".join(a[:-1]) for m, a in cmds if m.endswith("cli.main")}
    assert {"", "inspect", "compare", "report", "debug", "debug precision", "quantize"} <= names, names
    rows, bad = [], []
    for module, argv in cmds:
        r = _probe(module, argv)
        label = ("forgeexec " if "forgeexec" in module else "tensorforge ") + " ".join(argv)
        rows.append(f"{r['s']:6.3f} s  {label}")
        if r["rc"] not in (0, None) or r["chars"] < 100:
            bad.append(f"{label}: exit {r['rc']}, {r['chars']} characters of help")
        if r["s"] > LIMIT_S:
            bad.append(f"{label}: {r['s']:.2f} s (limit {LIMIT_S} s)")
        if r["heavy"]:
            bad.append(f"{label}: imports {r['heavy']} to print its help")
    print("\n--help times after Python starts:\n" + "\n".join(rows))
    assert not bad, "\n".join(bad + rows)
