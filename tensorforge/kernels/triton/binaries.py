"""Compiled Triton kernels stored in the engine: recorded at build time, installed at load time.

Build: the finished engine runs once per profile at its opt shapes with empty in-memory JIT caches
and a recording Triton cache manager; the cache files it reads or writes (kernel metadata + cubin,
launcher and driver-utility .so modules; no intermediate IR) become the engine's artifacts. Load:
stored files missing from the active Triton cache dir are written there atomically, so the first
inference's compiles are cache hits. The .so files are host code loaded by the first inference:
trust an engine file as you would a shared library.

Blob: MAGIC | u32 version | u64 index bytes | index JSON {"meta", "files": [["KEY/NAME", size]]} |
file data in index order. Group files ("__grp__NAME.json", triton's list of a kernel's files) are
stored with bare names and get absolute paths when installed."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import struct
import sys
import time
import uuid

from ...errors import EngineFormatError

log = logging.getLogger("tensorforge")
MAGIC = b"TFTRITON"
VERSION = 1
_PREFIX = struct.Struct("<8sIQ")
KEEP = (".json", ".cubin", ".hsaco", ".so")  # what loading a cached kernel needs (no IR text)
GROUP = "__grp__"
_KEY = re.compile(r"[A-Za-z0-9_\-]{1,128}\Z")
_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,199}\Z")


# ---- container ---------------------------------------------------------------------------------
def pack(files: dict, meta: dict | None = None) -> bytes:
    """The artifact blob of {"KEY/NAME": bytes}."""
    names = sorted(files)
    index = json.dumps({"meta": meta or {}, "files": [[n, len(files[n])] for n in names]},
                       separators=(",", ":"), sort_keys=True).encode()
    return b"".join([_PREFIX.pack(MAGIC, VERSION, len(index)), index, *(files[n] for n in names)])


def unpack(blob: bytes, source: str = "<bytes>") -> tuple[dict, dict]:
    """(meta, {"KEY/NAME": bytes}) of a blob; a one-line EngineFormatError when it is malformed."""
    def bad(why):
        return EngineFormatError(f"{source}: the engine's Triton kernel binaries are corrupt ({why})")
    if len(blob) < _PREFIX.size or bytes(blob[:len(MAGIC)]) != MAGIC:
        raise bad("unknown artifacts section")
    _, version, n_index = _PREFIX.unpack_from(blob)
    if version != VERSION:
        raise EngineFormatError(f"{source}: Triton kernel binaries format version {version} is not "
                                f"supported (this tensorforge reads version {VERSION}); rebuild the engine")
    end = _PREFIX.size + n_index
    try:
        index = json.loads(bytes(blob[_PREFIX.size:end]))
        meta, entries = index["meta"], [(str(p), int(n)) for p, n in index["files"]]
    except (ValueError, KeyError, TypeError):
        raise bad("bad index") from None
    if end > len(blob) or sum(n for _, n in entries) != len(blob) - end or any(n < 0 for _, n in entries):
        raise bad("sizes do not match the index")
    files, pos = {}, end
    for path, n in entries:
        if not _valid_path(path) or path in files:
            raise bad(f"bad file name {path[:80]!r}")
        files[path], pos = bytes(blob[pos:pos + n]), pos + n
    for path, data in files.items():
        if _is_group(path) and not _valid_group(path, data, files):
            raise bad(f"bad group file {path!r}")
    return meta if isinstance(meta, dict) else {}, files


def _valid_path(path: str) -> bool:
    parts = path.split("/")
    return len(parts) == 2 and bool(_KEY.match(parts[0])) and bool(_NAME.match(parts[1]))


def _is_group(path: str) -> bool:
    return path.rsplit("/", 1)[-1].startswith(GROUP)


def _valid_group(path: str, data: bytes, files: dict) -> bool:
    """A stored group lists bare names of files stored in its own key dir."""
    key = path.split("/")[0]
    try:
        children = json.loads(data)["child_paths"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(children, dict) and all(
        isinstance(v, str) and k == v and f"{key}/{v}" in files for k, v in children.items())


# ---- load side -----------------------------------------------------------------------------------
def triton_version() -> str | None:
    """The installed triton's version (without importing triton unless it is imported already)."""
    mod = sys.modules.get("triton")
    if mod is not None:
        return getattr(mod, "__version__", None)
    from importlib import metadata
    try:
        return metadata.version("triton")
    except metadata.PackageNotFoundError:
        return None


def cache_dir() -> str:
    """Triton's active cache dir (knobs.cache.dir; its environment rules when triton is not imported)."""
    if "triton" in sys.modules:
        from triton import knobs
        return knobs.cache.dir
    if os.environ.get("TRITON_CACHE_DIR"):
        return os.environ["TRITON_CACHE_DIR"]
    home = os.environ.get("TRITON_HOME") or os.path.expanduser("~/")
    return os.path.join(home, ".triton", "cache")


def install(meta: dict, files: dict, root: str | None = None) -> dict:
    """Write the stored files missing from the Triton cache dir; OS errors only log a warning."""
    stats = {"installed": 0, "present": 0, "dir": None}
    if not files:
        return stats
    have, built = triton_version(), meta.get("triton_version")
    if have != built:
        log.warning("engine's Triton kernel binaries were built with Triton %s, this is %s; the first "
                    "inference compiles its kernels", built, have or "not installed")
        return stats
    root = stats["dir"] = root or cache_dir()
    try:
        for path in sorted(files, key=lambda p: (_is_group(p), p)):  # a group only after its files
            dst = os.path.join(root, *path.split("/"))
            if os.path.exists(dst):
                stats["present"] += 1
                continue
            data = _absolute_group(files[path], os.path.dirname(dst)) if _is_group(path) else files[path]
            _atomic_write(dst, data)
            stats["installed"] += 1
    except OSError as e:
        log.warning("cannot install the engine's Triton kernel binaries into %s (%s); the first inference "
                    "compiles its kernels", root, e.strerror or e)
    log.debug("Triton kernel binaries: %d files installed into %s, %d already there",
              stats["installed"], root, stats["present"])
    return stats


def _absolute_group(data: bytes, key_dir: str) -> bytes:
    children = json.loads(data)["child_paths"]
    return json.dumps({"child_paths": {k: os.path.join(key_dir, v) for k, v in children.items()}}).encode()


def _atomic_write(dst: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    tmp = f"{dst}.tmp.pid_{os.getpid()}_{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ---- build side ----------------------------------------------------------------------------------
def uses_triton(plan) -> bool:
    return any((lay.tactic or {}).get("source") == "triton" for lay in plan.layers)


def capture(engine) -> bytes:
    """The artifact blob of the Triton cache files a warm-up of `engine` uses (b"" if none)."""
    if engine.device.type != "cuda" or not uses_triton(engine.plan):
        return b""
    t0 = time.perf_counter()
    try:
        import triton
        files = record(lambda: warm_up(engine))
    except Exception as e:  # noqa: BLE001 - the engine is still valid; its first inference compiles
        log.warning("Triton kernel binaries not stored in the engine (%s: %s); the first inference after "
                    "a load compiles its kernels", type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "")
        return b""
    blob = pack(files, {"triton_version": triton.__version__}) if files else b""
    log.info("Stored %d Triton kernel files (%.2f MiB) in the engine in %.3f sec", len(files),
             len(blob) / 2**20, time.perf_counter() - t0)
    return blob


def record(run) -> dict:
    """Run `run()` with empty in-memory JIT caches; the Triton cache files it read or wrote."""
    from triton import knobs
    root = os.path.realpath(knobs.cache.dir)
    seen: set = set()
    with _fresh_jit(), _recording(seen):
        run()
        _cuda_utils()
    return collect(seen, root)


def collect(paths, root: str) -> dict:
    """{"KEY/NAME": bytes} of the kept files among `paths` under `root`, plus their group files."""
    by_key: dict = {}
    for p in paths:
        key_dir, name = os.path.split(os.path.realpath(p))
        if os.path.dirname(key_dir) != root or name.startswith(GROUP) or not name.endswith(KEEP):
            continue
        with open(p, "rb") as f:
            by_key.setdefault(os.path.basename(key_dir), {})[name] = f.read()
    files = {}
    for key, named in by_key.items():
        files.update({f"{key}/{n}": d for n, d in named.items()})
        group = json.dumps({"child_paths": {n: n for n in sorted(named)}}).encode()
        files.update({f"{key}/{GROUP}{n}": group for n in named if n.endswith(".json")})
    return files


@contextlib.contextmanager
def _recording(seen: set):
    """Triton's cache manager, noting every cache file path it returns or writes."""
    from triton import knobs
    from triton.runtime.cache import FileCacheManager
    base = knobs.cache.manager_class or FileCacheManager
    if not issubclass(base, FileCacheManager):
        raise RuntimeError(f"custom Triton cache manager {base.__name__}")

    class Recorder(base):
        def get_file(self, filename):
            p = super().get_file(filename)
            seen.update([p] if p else [])
            return p

        def get_group(self, filename):
            g = super().get_group(filename)
            seen.update((g or {}).values())
            return g

        def put(self, data, filename, binary=True):
            p = super().put(data, filename, binary)
            seen.add(p)
            return p
    with knobs.cache.scope():
        knobs.cache.manager_class = Recorder
        yield


@contextlib.contextmanager
def _fresh_jit():
    """Empty the in-memory kernel caches of our JIT functions (restored after), so launches go
    through triton's cache lookup again."""
    from collections import defaultdict
    fns = jit_functions()
    saved = [(f, f.device_caches) for f in fns]
    try:
        for f in fns:
            f.device_caches = defaultdict(f.create_binder)
        yield
    finally:
        for f, caches in saved:
            f.device_caches = caches


def jit_functions() -> list:
    """JIT functions of generated sources and of tensorforge's kernel modules (autotuners unwrapped)."""
    from triton.runtime.jit import JITFunction
    from . import launch
    found = list(launch._COMPILED.values())
    for name, mod in list(sys.modules.items()):
        if name.startswith("tensorforge.kernels") and mod is not None:
            found += list(vars(mod).values())
    out = {}
    for v in found:
        for _ in range(4):  # Autotuner / Heuristics wrap the JITFunction in .fn
            if isinstance(v, JITFunction) or not hasattr(v, "fn"):
                break
            v = v.fn
        if isinstance(v, JITFunction):
            out[id(v)] = v
    return list(out.values())


def _cuda_utils() -> None:
    """Look triton's CUDA driver-utility module up in the cache (built once per cache dir)."""
    try:
        import sysconfig

        from triton.backends.nvidia import driver
        from triton.runtime.build import platform_key
        from triton.runtime.cache import get_cache_manager
        with open(os.path.join(driver.dirname, "driver.c")) as f:
            src = f.read()
        key = hashlib.sha256((src + platform_key()).encode("utf-8")).hexdigest()
        get_cache_manager(key).get_file("cuda_utils" + sysconfig.get_config_var("EXT_SUFFIX"))
    except Exception as e:  # noqa: BLE001 - then the first inference builds it (one C compile)
        log.debug("triton cuda_utils module not recorded: %s", e)


def warm_up(engine) -> None:
    """One inference per optimization profile at its opt shapes."""
    import torch
    ctx = engine.create_execution_context()
    for i, feed in enumerate(feeds(engine.plan)):
        ctx.set_optimization_profile(i)
        ctx.infer(feed)
    if engine.device.type == "cuda":
        torch.cuda.synchronize(engine.device)


def feeds(plan) -> list:
    """A feed per profile at opt shapes: floats in [-1, 1), other dtypes zero (valid indices),
    shape-tensor inputs their opt values."""
    import torch

    from ... import dtypes
    from ...runtime.plan import ProfileSpec
    g = torch.Generator().manual_seed(0)
    out = []
    for prof in plan.profiles or [ProfileSpec({})]:
        feed = {}
        for n in plan.inputs:
            spec = plan.tensors[n]
            dt = dtypes.to_torch(spec.dtype)
            if n in (prof.values or {}):
                feed[n] = torch.tensor(prof.values[n][1], dtype=dt).reshape(tuple(spec.shape))
                continue
            shape = tuple(prof.shapes[n][1]) if n in prof.shapes else \
                tuple(d if isinstance(d, int) else 1 for d in spec.shape)
            feed[n] = (torch.rand(shape, generator=g) * 2 - 1).to(dt) if dt.is_floating_point else \
                torch.zeros(shape, dtype=dt)
        out.append(feed)
    return out
