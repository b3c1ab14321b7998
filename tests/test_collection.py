"""Every test folder is collected by the README's command (pytest skips folders named `build`,
`dist`, dot-folders, ...: a folder whose count drops to 0 would silently never run)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")


def _folders_with_tests() -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(TESTS):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        if any(f.startswith("test_") and f.endswith(".py") for f in filenames):
            out.add(os.path.relpath(dirpath, ROOT).replace(os.sep, "/"))
    return out


def test_every_test_folder_is_collected():
    res = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          "tests"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    counts = {f: 0 for f in _folders_with_tests()}
    for line in res.stdout.splitlines():
        if "::" in line:
            folder = os.path.dirname(line.split("::", 1)[0]).replace(os.sep, "/")
            counts[folder] = counts.get(folder, 0) + 1
    empty = sorted(f for f, n in counts.items() if n == 0)
    assert not empty, f"test folders with no collected test: {empty}"
    assert counts.get("tests/builder", 0) > 50
