"""Engine-file mutations: truncation, bit flips, overwrites, and crafted headers with a valid checksum."""
from __future__ import annotations

import json
import os
import struct
import zlib

from tensorforge.runtime.format import FORMAT_VERSION

from .harness import Case

PREFIX = struct.Struct("<8sIQQQI")
TARGETS = ("forgeexec", "inspect", "api_load")


def base_engine(workdir: str) -> str:
    """A small real engine (vit_b16_small, level 0, CPU, batch 1..2) written once into workdir."""
    path = os.path.join(workdir, "base.engine")
    if not os.path.exists(path):
        import tensorforge as tf
        prof = tf.OptimizationProfile()
        prof.set_shape("input", (1, 3, 32, 32), (1, 3, 32, 32), (2, 3, 32, 32))
        cfg = tf.BuilderConfig(opt_level=0, device="cpu", profiles=[prof])
        tf.Builder(cfg).build("zoo:vit_b16_small").save(path)
    return path


def split(data: bytes):
    """(header dict, weights blob, artifacts blob) of engine bytes."""
    _, _, nh, nw, na, _ = PREFIX.unpack_from(data)
    body = data[PREFIX.size:]
    return json.loads(body[:nh]), body[nh:nh + nw], body[nh + nw:nh + nw + na]


def repack(header, weights: bytes, artifacts: bytes = b"", raw_header: bytes | None = None) -> bytes:
    """Engine bytes with a recomputed checksum (what a deliberate attacker writes)."""
    hdr = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    body = hdr + weights + artifacts
    return PREFIX.pack(b"TFENGINE", FORMAT_VERSION, len(hdr), len(weights), len(artifacts), zlib.crc32(body)) + body


def _strip_weight(weights: bytes, name: str) -> bytes:
    """The safetensors blob without tensor `name` (offsets of the others kept valid)."""
    n = struct.unpack_from("<Q", weights)[0]
    meta = json.loads(weights[8:8 + n])
    meta.pop(name)
    hdr = json.dumps(meta).encode()
    return struct.pack("<Q", len(hdr)) + hdr + weights[8 + n:]


def _set_dim(header, value, kind="input"):
    t = next(t for t in header["plan"]["tensors"] if t["kind"] == kind)
    t["shape"][0] = value
    return header


def _crafted(header, weights, rng):
    """[(kind, bytes, must_fail)] crafted files with a valid checksum."""
    import copy
    H = lambda: copy.deepcopy(header)  # noqa: E731
    out = []
    for expr in ("9**9**9", "2**10**10", "10**100", "(2**62)*(2**62)", "N**N**N**N"):
        bounded = expr == "N**N**N**N"  # 2**16 at N=2: legal, if odd, for a view's declared shape
        out.append(("dim_power", repack(_set_dim(H(), expr, "activation"), weights), not bounded))
        out.append(("dim_power_input", repack(_set_dim(H(), expr), weights), True))
        out.append(("dim_power_output", repack(_set_dim(H(), f"N+{expr}", "output"), weights), not bounded))
    out.append(("dim_huge_int", repack(_set_dim(H(), 2**62), weights), True))
    out.append(("dim_negative", repack(_set_dim(H(), -7, "activation"), weights), True))
    out.append(("dim_code", repack(_set_dim(H(), "__import__('os').getpid()", "activation"), weights), True))
    out.append(("dim_long", repack(_set_dim(H(), "+".join(["N"] * 20000), "activation"), weights), True))
    out.append(("dim_float", repack(_set_dim(H(), 1.5), weights), True))
    out.append(("dim_list", repack(_set_dim(H(), [1, 2]), weights), True))
    h = H(); h["plan"]["tensors"][0] = "input"
    out.append(("tensor_not_dict", repack(h, weights), True))
    h = H(); h["plan"]["tensors"][0]["name"] = 12
    out.append(("name_not_str", repack(h, weights), True))
    h = H(); del h["plan"]["layers"]
    out.append(("missing_layers", repack(h, weights), True))
    h = H(); del h["device"]
    out.append(("missing_device", repack(h, weights), True))
    h = H(); h["plan"] = []
    out.append(("plan_not_dict", repack(h, weights), True))
    h = H(); h["plan"]["tensors"][0]["dtype"] = "float99"
    out.append(("bad_dtype", repack(h, weights), True))
    h = H(); h["plan"]["layers"][1]["inputs"][0] = "no_such_tensor"
    out.append(("layer_input_unknown", repack(h, weights), True))
    h = H(); h["plan"]["layers"][1]["type"] = "NoSuchOp"
    out.append(("layer_unknown_op", repack(h, weights), True))
    h = H(); h["plan"]["device_memory_size"] = 2**62
    out.append(("arena_huge", repack(h, weights), True))
    h = H(); h["plan"]["profiles"] = [{"shapes": {"input": [[1], [1]]}, "values": {}}]
    out.append(("profile_malformed", repack(h, weights), True))
    h = H(); h["plan"]["profiles"][0]["shapes"]["input"][2][0] = 2**40
    out.append(("profile_huge", repack(h, weights), True))
    h = H(); h["device"] = {"type": "cuda", "name": "x", "capability": "zz"}
    out.append(("device_bad", repack(h, weights), True))
    h = H(); h["plan"]["inputs"] = ["input", "ghost"]
    out.append(("io_unknown", repack(h, weights), True))
    out.append(("deep_json", repack(None, weights, raw_header=b"[" * 100000 + b"]" * 100000), True))
    out.append(("header_not_json", repack(None, weights, raw_header=b"\xff\xfe{not json"), True))
    out.append(("header_scalar", repack(None, weights, raw_header=b"42"), True))
    wname = next(t["name"] for t in header["plan"]["tensors"] if t["kind"] == "weight" and not t["host"])
    out.append(("weight_missing", repack(H(), _strip_weight(weights, wname)), True))
    h = H(); next(t for t in h["plan"]["tensors"] if t["name"] == wname)["shape"] = [7, 7, 7]
    out.append(("weight_shape_mismatch", repack(h, weights), True))
    bad = bytearray(weights); bad[8:16] = b"{\"x\":[1]"  # safetensors header broken, checksum valid
    out.append(("weights_corrupt", repack(H(), bytes(bad)), True))
    big = struct.pack("<Q", 2**60) + weights[8:]
    out.append(("weights_header_huge", repack(H(), big), True))
    return out


def _raw(data: bytes, rng):
    """[(kind, bytes, must_fail)] accidental corruption (checksum not fixed)."""
    out = []
    cut = int(rng.integers(0, len(data)))
    out.append(("truncate", data[:cut], True))
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 8))):
        i = int(rng.integers(0, len(b)))
        b[i] ^= 1 << int(rng.integers(0, 8))
    out.append(("bitflip", bytes(b), True))
    b = bytearray(data)
    i = int(rng.integers(0, len(b)))
    n = int(rng.integers(1, 256))
    b[i:i + n] = rng.integers(0, 256, n, dtype="uint8").tobytes()
    b = b[:len(data)]
    if b == data:  # random bytes equal to the old ones: still a change, or "must fail" is wrong
        b[i] ^= 1
    out.append(("overwrite", bytes(b), True))
    b = bytearray(data)
    field = int(rng.integers(2, 5))  # nh / nw / na
    vals = list(PREFIX.unpack_from(data))
    vals[field] = int(rng.choice([2**63, 2**40, 0, vals[field] + 1]))
    if vals[field] == PREFIX.unpack_from(data)[field]:
        vals[field] += 1  # a real change: the same value is no mutation
    out.append(("prefix_sizes", PREFIX.pack(*vals) + data[PREFIX.size:], True))
    return out


def sparse_engine(workdir: str) -> str:
    """A 3 GiB sparse file with the right magic and a prefix claiming it all as weights."""
    path = os.path.join(workdir, "sparse3g.engine")
    if not os.path.exists(path):
        size = 3 << 30
        with open(path, "wb") as f:
            f.write(PREFIX.pack(b"TFENGINE", FORMAT_VERSION, 2, size - PREFIX.size - 2, 0, 0) + b"{}")
            f.truncate(size)
    return path


def cases(workdir: str, rng, rounds: int = 1, crafted: bool = True):
    """Engine cases: `rounds` of random raw corruptions, the crafted set once, the sparse file."""
    base = base_engine(workdir)
    with open(base, "rb") as f:
        data = f.read()
    header, weights, _ = split(data)
    muts = []
    for _ in range(rounds):
        muts += [(k, b, f, False) for k, b, f in _raw(data, rng)]
    if crafted:
        muts += [(k, b, f, True) for k, b, f in _crafted(header, weights, rng)]
    for i, (kind, blob, must_fail, every_target) in enumerate(muts):
        path = os.path.join(workdir, f"e{i}_{kind}.engine")
        with open(path, "wb") as f:
            f.write(blob)
        for t in TARGETS if every_target else (TARGETS[i % len(TARGETS)],):
            argv = [f"--loadEngine={path}", "--iterations=1", "--duration=0", "--warmUp=0"] \
                if t == "forgeexec" else [path]
            # inspect describes what a file holds: an op this build lacks is shown, refused only at run time
            refuse = must_fail and not (t == "inspect" and kind == "layer_unknown_op")
            yield Case("engine", kind, t, argv, must_fail=refuse, protected=[path])
    sp = sparse_engine(workdir)
    for t in TARGETS:
        argv = [f"--loadEngine={sp}", "--iterations=1"] if t == "forgeexec" else [sp]
        yield Case("engine", "sparse_3gib", t, argv, must_fail=True)
