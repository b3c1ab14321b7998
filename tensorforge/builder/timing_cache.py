"""The timing cache: per layer signature and environment, the time of every tactic tried.

File format (JSON): {"version": 1, "entries": {key: {"tactic": {source, name, params}, "ms": best,
"timings": {tactic_key: ms | null (failed its check)}, "layer": short description}}}.
key = "0x" + 32 hex digits of sha256(layer signature + GPU name + compute capability + torch /
triton / cuDNN versions), so entries from other GPUs or library versions never match.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os

import torch

from ..errors import TensorforgeError
from ..fileio import atomic_write, regular_file

log = logging.getLogger("tensorforge")
VERSION = 1


def environment(device) -> dict:
    """What a tactic timing depends on besides the layer: GPU and library versions."""
    from importlib import metadata
    try:
        triton_v = metadata.version("triton")
    except metadata.PackageNotFoundError:
        triton_v = None
    env = {"torch": torch.__version__, "triton": triton_v, "gpu": "cpu", "capability": None, "cudnn": None}
    if getattr(device, "type", str(device)) == "cuda" and torch.cuda.is_available():
        idx = device.index if getattr(device, "index", None) is not None else torch.cuda.current_device()
        p = torch.cuda.get_device_properties(idx)
        env.update(gpu=p.name, capability=[p.major, p.minor], cudnn=torch.backends.cudnn.version())
    return env


def make_key(signature: dict, env: dict) -> str:
    """Stable cache key of a layer signature in an environment."""
    blob = json.dumps({"layer": signature, "env": env}, sort_keys=True, separators=(",", ":"), default=str)
    return "0x" + hashlib.sha256(blob.encode()).hexdigest()[:32]


class TimingCache:
    """Tactic timings keyed by layer signature + environment; JSON-serializable, combinable."""

    def __init__(self, entries: dict | None = None):
        self.entries: dict[str, dict] = dict(entries or {})

    def __len__(self):
        return len(self.entries)

    def lookup(self, key: str) -> dict | None:
        return self.entries.get(key)

    def update(self, key: str, entry: dict) -> None:
        """Add or refresh one entry; timings already known for other tactics are kept."""
        old = self.entries.get(key)
        if old is not None:
            entry = dict(entry, timings={**old.get("timings", {}), **entry.get("timings", {})})
        self.entries[key] = _settle(entry)

    def combine(self, other: "TimingCache") -> int:
        """Merge another cache into this one (entries present here win); returns entries added."""
        added = 0
        for k, e in other.entries.items():
            if k not in self.entries:
                self.entries[k] = e
                added += 1
            else:
                mine = self.entries[k]
                mine["timings"] = {**e.get("timings", {}), **mine.get("timings", {})}
                self.entries[k] = _settle(mine)
        return added

    def serialize(self) -> bytes:
        return json.dumps({"version": VERSION, "entries": self.entries}, sort_keys=True, indent=1).encode()

    @classmethod
    def deserialize(cls, data: bytes) -> "TimingCache":
        """Parse cache bytes; ValueError if they are not a timing cache of this version."""
        d = json.loads(data.decode() if isinstance(data, (bytes, bytearray)) else data)
        if not isinstance(d, dict) or d.get("version") != VERSION or not isinstance(d.get("entries"), dict):
            raise ValueError("not a tensorforge timing cache (version %s)" % VERSION)
        return cls(d["entries"])

    @classmethod
    def load(cls, path: str) -> "TimingCache":
        """Read a cache file; a missing or empty file gives an empty cache and a warning. A file that
        holds something else (text, other JSON, a model, an engine) is refused: it is never overwritten."""
        path = os.path.expanduser(str(path))
        if not os.path.exists(path) or (os.path.isfile(path) and os.path.getsize(path) == 0):
            log.warning("Could not read cache from: %s. A new cache will be generated and written.", path)
            return cls()
        regular_file(path, "timing cache file")
        with open(path, "rb") as f:
            return cls(_parse_file(f.read(), path).entries)

    def save(self, path: str) -> int:
        """Combine with the file on disk under a lock and replace it atomically; returns bytes written.
        Refuses (TensorforgeError) when the file holds something that is not a timing cache."""
        path = os.path.expanduser(str(path))
        with _locked(path) as old:
            disk = _parse_file(old, path) if old else TimingCache()
            merged = TimingCache(self.entries)
            merged.combine(disk)
            data = merged.serialize()
            atomic_write(path, data, "timing cache file")
        self.entries = merged.entries
        log.info("Saved %d bytes of timing cache to %s", len(data), path)
        return len(data)


def _parse_file(data: bytes, path: str) -> "TimingCache":
    """A cache from file bytes; a one-line error naming the file when they are not a timing cache."""
    try:
        return TimingCache.deserialize(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise TensorforgeError(f"--timingCacheFile {path}: the file is not a tensorforge timing cache "
                               f"(version {VERSION}); refusing to overwrite it") from None


def _settle(entry: dict) -> dict:
    """Make an entry's tactic/ms the fastest of its timings (what selection would pick)."""
    from .autotune import choose, parse_tactic_key
    best = choose(entry.get("timings", {}))
    if best is not None:
        entry = dict(entry, tactic=parse_tactic_key(best), ms=entry["timings"][best])
    return entry


@contextlib.contextmanager
def _locked(path: str):
    """Hold an exclusive fcntl lock on the cache file (created empty if missing) and yield its bytes.
    The file is replaced by rename while locked, so a waiter re-checks that it locked the current file."""
    import fcntl
    while True:
        if os.path.lexists(path):
            regular_file(path, "timing cache file")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise TensorforgeError(f"cannot open timing cache file {path}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except OSError:
                same = False
            if same:
                with os.fdopen(os.dup(fd), "rb") as f:
                    data = f.read()
                yield data
                return
        finally:
            os.close(fd)
