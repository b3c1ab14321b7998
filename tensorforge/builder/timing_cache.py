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
        """Read a cache file; a missing or unreadable file gives an empty cache and a warning."""
        try:
            with _locked(path, "rb") as f:
                return cls.deserialize(f.read())
        except (OSError, ValueError, UnicodeDecodeError):
            log.warning("Could not read cache from: %s. A new cache will be generated and written.", path)
            return cls()

    def save(self, path: str) -> int:
        """Combine into the file on disk under a lock and write it back; returns bytes written."""
        with _locked(path, "a+b") as f:
            f.seek(0)
            try:
                disk = TimingCache.deserialize(f.read())
            except (ValueError, UnicodeDecodeError):
                disk = TimingCache()
            merged = TimingCache(self.entries)
            merged.combine(disk)
            data = merged.serialize()
            f.seek(0)
            f.truncate()
            f.write(data)
            f.flush()
        self.entries = merged.entries
        log.info("Saved %d bytes of timing cache to %s", len(data), path)
        return len(data)


def _settle(entry: dict) -> dict:
    """Make an entry's tactic/ms the fastest of its timings (what selection would pick)."""
    from .autotune import choose, parse_tactic_key
    best = choose(entry.get("timings", {}))
    if best is not None:
        entry = dict(entry, tactic=parse_tactic_key(best), ms=entry["timings"][best])
    return entry


@contextlib.contextmanager
def _locked(path: str, mode: str):
    """Open a file holding an exclusive fcntl lock (no lock where fcntl is missing)."""
    path = os.path.expanduser(str(path))
    f = open(path, mode)
    try:
        try:
            import fcntl
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        yield f
    finally:
        f.close()
