"""Compiled device code in an engine file: cubins plus their launch metadata, and nothing else.

Blob: MAGIC | u32 version | u64 index bytes | index JSON | cubin data in index order.
Index: {"triton_version": str, "kernels": [{"file", "size", "key", "spec", "name", "params",
"num_warps", "shared", "global_scratch", "profile_scratch"}]}; `params` lists every parameter of
the kernel function as [name, type] with type "constexpr" for what Triton compiled in (constexprs,
ints equal to 1, None), so launch arguments are packed from the call's arguments without Triton.

Refused with one line: a blob from the previous format (Triton cache files, launcher .so modules:
host code), an artifact that is not a CUDA ELF image (an x86/ARM ELF .so, a script, anything else),
an artifact name that is a path, unknown parameter types. Nothing from the blob is imported,
executed or written anywhere: the driver (kernels.driver) loads the cubins from memory."""
from __future__ import annotations

import json
import re
import struct
from dataclasses import asdict, dataclass

from ..errors import EngineFormatError

MAGIC = b"TFCUBINS"
OLD_MAGIC = b"TFTRITON"  # format 1: Triton cache files incl. launcher .so modules (host code)
VERSION = 1
_PREFIX = struct.Struct("<8sIQ")
EM_CUDA = 190  # ELF e_machine of NVIDIA device code
SCALARS = {"i1": "b", "i8": "b", "i16": "h", "i32": "i", "i64": "q", "u1": "B", "u8": "B", "u16": "H",
           "u32": "I", "u64": "Q", "fp16": "e", "bf16": "H", "fp32": "f", "f32": "f", "fp64": "d"}
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}\Z")


@dataclass(frozen=True)
class Binary:
    """One compiled kernel: the cubin of `key` (source) specialized as `spec`, and how to launch it."""
    key: str
    spec: str
    name: str  # the kernel's symbol in the cubin
    params: tuple  # ((name, type), ...) over every parameter of the kernel function
    num_warps: int
    shared: int  # dynamic shared memory bytes
    cubin: bytes
    global_scratch: tuple = (0, 1)  # (bytes per program, alignment): Triton 3.6's scratch pointer
    profile_scratch: tuple = (0, 1)

    @property
    def file(self) -> str:
        """The artifact name (never a path)."""
        import hashlib
        return f"{self.name[:80]}.{hashlib.sha1((self.key + '|' + self.spec).encode()).hexdigest()[:16]}.cubin"


def is_cuda_elf(data: bytes) -> bool:
    """A CUDA device-code ELF image (cubins are ELF with e_machine EM_CUDA; a host .so is not)."""
    return len(data) >= 20 and data[:4] == b"\x7fELF" and struct.unpack_from("<H", data, 18)[0] == EM_CUDA


def pack(binaries, triton_version: str | None = None) -> bytes:
    """The artifact blob of `binaries` (b"" when there are none)."""
    bins = sorted({(b.key, b.spec): b for b in binaries}.values(), key=lambda b: b.file)
    if not bins:
        return b""
    rows = []
    for b in bins:
        d = asdict(b)
        d.pop("cubin")
        rows.append(dict(d, file=b.file, size=len(b.cubin)))
    index = json.dumps({"triton_version": triton_version, "kernels": rows}, separators=(",", ":"),
                       sort_keys=True).encode()
    return b"".join([_PREFIX.pack(MAGIC, VERSION, len(index)), index, *(b.cubin for b in bins)])


def unpack(blob: bytes, source: str = "<bytes>") -> dict:
    """{(key, spec): Binary} of a blob; a one-line EngineFormatError when it is not device code only."""
    if not blob:
        return {}
    head = bytes(blob[:len(MAGIC)])
    if head == OLD_MAGIC:
        raise EngineFormatError(f"{source}: engine stores Triton cache files with host code (previous "
                                "format); rebuild this engine")
    if len(blob) < _PREFIX.size or head != MAGIC:
        raise EngineFormatError(f"{source}: engine's compiled kernels are not cubins (unknown artifacts "
                                "section); refused")
    _, version, n_index = _PREFIX.unpack_from(blob)
    if version != VERSION:
        raise EngineFormatError(f"{source}: compiled-kernel format version {version} is not supported "
                                f"(this tensorforge reads {VERSION}); rebuild this engine")
    end = _PREFIX.size + n_index
    try:
        index = json.loads(bytes(blob[_PREFIX.size:end]))
        rows = index["kernels"]
        sizes = [int(r["size"]) for r in rows]
    except (ValueError, KeyError, TypeError):
        raise EngineFormatError(f"{source}: engine's compiled-kernel index is corrupt") from None
    if end > len(blob) or any(n < 0 for n in sizes) or sum(sizes) != len(blob) - end:
        raise EngineFormatError(f"{source}: engine's compiled-kernel sizes do not match its index")
    out, pos = {}, end
    for row, n in zip(rows, sizes):
        b = _binary(row, bytes(blob[pos:pos + n]), source)
        pos += n
        out[(b.key, b.spec)] = b
    return out


def _binary(row: dict, data: bytes, source: str) -> Binary:
    """A Binary from an index row and its bytes, checked to be device code with a plain name."""
    name = str(row.get("file", ""))
    if "/" in name or "\\" in name or ".." in name or not _NAME.match(name):
        raise EngineFormatError(f"{source}: artifact name {name[:80]!r} is a path or not a plain file name; "
                                "refused")
    if not is_cuda_elf(data):
        raise EngineFormatError(f"{source}: artifact {name!r} is not a cubin (the engine contains host "
                                "code or unknown data); refused")
    try:
        params = tuple((str(p), str(t)) for p, t in row["params"])
        b = Binary(str(row["key"]), str(row["spec"]), str(row["name"]), params, int(row["num_warps"]),
                   int(row["shared"]), data, tuple(int(v) for v in row.get("global_scratch", (0, 1))),
                   tuple(int(v) for v in row.get("profile_scratch", (0, 1))))
    except (KeyError, TypeError, ValueError):
        raise EngineFormatError(f"{source}: launch metadata of artifact {name!r} is corrupt") from None
    bad = [t for _, t in params if t != "constexpr" and t not in SCALARS and not t.startswith("*")]
    if bad or not 1 <= b.num_warps <= 32 or b.shared < 0 or b.file != name:
        raise EngineFormatError(f"{source}: launch metadata of artifact {name!r} is invalid; refused")
    return b


_META: dict = {}  # meta items -> their spec text (launch sites pass the same few dicts)
_DTYPES: dict = {}


def spec_of(args, meta) -> str:
    """What Triton specializes a launch on, from the call's arguments (a refinement of Triton's own
    key: equal specs compile to the same code). Tensors: dtype and 16-byte alignment; ints: width,
    == 1, divisible by 16; None; floats; bools by value; meta (constexprs, options) verbatim."""
    parts = []
    for a in args:
        if hasattr(a, "data_ptr"):
            dt = _DTYPES.get(a.dtype)
            if dt is None:
                dt = _DTYPES[a.dtype] = str(a.dtype)[6:]
            parts.append(dt + "D" if a.data_ptr() % 16 == 0 else dt)
        elif a is None:
            parts.append("N")
        elif isinstance(a, bool):
            parts.append("b1" if a else "b0")
        elif isinstance(a, int):
            w = "i32" if -2**31 <= a < 2**31 else "i64" if -2**63 <= a < 2**63 else "iu"
            parts.append(w + "1" if a == 1 else w + "D" if a % 16 == 0 else w)
        elif isinstance(a, float):
            parts.append("f")
        else:
            parts.append(type(a).__name__)
    try:
        key = tuple(meta.items())
        m = _META.get(key)
    except TypeError:  # an unhashable meta value
        key, m = None, None
    if m is None:
        m = ",".join(f"{k}={meta[k]!r}" for k in sorted(meta))
        if key is not None and len(_META) < 4096:
            _META[key] = m
    return ",".join(parts) + "|" + m
