"""`--help` stays fast: the report, debug and monitor modules import nothing heavy at module level
(torch, numpy, onnx, matplotlib, NVML); heavy work is imported when a command runs."""
from __future__ import annotations

import ast
import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEAVY = {"torch", "numpy", "onnx", "onnxruntime", "matplotlib", "pynvml", "sympy", "triton"}
HEAVY_TF = ("builder", "runtime", "frontend", "passes", "kernels", "ops", "testing", "debug")
LIGHT = ["tensorforge/cli/report_cmd.py", "tensorforge/cli/debug_cmd.py", "tensorforge/cli/forgeexec/monitor.py",
         "tensorforge/progress.py", *sorted(glob.glob("tensorforge/report/*.py", root_dir=ROOT))]


def _top_level_imports(path: str):
    """Modules imported by the module-level statements of a file (not inside functions)."""
    with open(os.path.join(ROOT, path)) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield ("." * node.level) + (node.module or "")


def test_new_command_modules_import_lazily():
    bad = []
    for path in LIGHT:
        for mod in _top_level_imports(path):
            name = mod.lstrip(".")
            if name.split(".")[0] in HEAVY or any(name.split(".")[0] == h for h in HEAVY_TF if mod.startswith(".")):
                bad.append(f"{path}: imports {mod} at module level")
    assert not bad, "\n".join(bad)


def _probe(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}).stdout.strip()


def test_help_of_new_subcommands_loads_no_torch():
    if _probe("import sys, tensorforge.cli.main; print('torch' in sys.modules)") == "True":
        pytest.skip("importing the tensorforge CLI itself loads torch here (the lazy package import is not "
                    "merged); the module-level check above still holds")
    code = ("import sys, contextlib, io\nfrom tensorforge.cli.main import main\n"
            "for argv in (['report', '--help'], ['debug', 'precision', '--help']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "        main(argv)\n"
            "print(sorted(m for m in ('torch', 'numpy', 'matplotlib', 'onnx') if m in sys.modules))")
    assert _probe(code) == "[]"
