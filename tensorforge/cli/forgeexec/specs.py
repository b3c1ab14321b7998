"""Parsers for build-flag values: memory pools, tactic sources, layer precisions, percentiles."""
from __future__ import annotations

import re

from .shapes import UsageError, split_list

POOLS = ("workspace", "dlaSRAM", "dlaLocalDRAM", "dlaGlobalDRAM", "tacticSharedMem")
TACTIC_SOURCES = ("CUBLAS", "CUBLAS_LT", "CUDNN", "EDGE_MASK_CONVOLUTIONS", "JIT_CONVOLUTIONS", "ATEN", "TRITON")
LAYER_TYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int32": "int32", "int8": "int8"}
_UNITS = {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([BKMGbkmg]?)\s*$")


def parse_size(text: str) -> int:
    """Parse a pool size: MiB without a suffix, B/K/M/G suffixes (powers of two), decimals allowed."""
    m = _SIZE.match(text)
    if not m:
        raise UsageError(f"Invalid memory pool size '{text}': expected a number with an optional B/K/M/G suffix")
    unit = _UNITS[m.group(2).upper()] if m.group(2) else _UNITS["M"]
    return int(float(m.group(1)) * unit)


def parse_mem_pools(spec: str) -> dict[str, int]:
    """Parse `--memPoolSize=pool:size,...` into {pool: bytes}."""
    out = {}
    for name, value in split_list(spec):
        if name not in POOLS:
            raise UsageError(f"Unknown memory pool '{name}' in --memPoolSize (pools: {', '.join(POOLS)})")
        out[name] = parse_size(value)
    return out


def parse_tactic_sources(spec: str) -> dict[str, bool]:
    """Parse `--tacticSources=+A,-B` into {NAME: enabled}; every entry needs a sign."""
    out = {}
    for entry in spec.split(","):
        entry = entry.strip()
        if len(entry) < 2 or entry[0] not in "+-":
            raise UsageError(f"Invalid tactic source '{entry}': each entry needs a + or - sign (e.g. -CUDNN)")
        name = entry[1:].upper()
        if name not in TACTIC_SOURCES:
            raise UsageError(f"Unknown tactic source '{entry[1:]}' (known: {', '.join(TACTIC_SOURCES)})")
        out[name] = entry[0] == "+"
    return out


def _layer_type(value: str, flag: str) -> str:
    """Map a trtexec precision name to a canonical dtype name."""
    if value not in LAYER_TYPES:
        raise UsageError(f"Invalid precision '{value}' in {flag} (expected one of {', '.join(LAYER_TYPES)})")
    return LAYER_TYPES[value]


def _check_wildcard(name: str, flag: str) -> None:
    """Raise if a layer name has more than one '*'."""
    if name.count("*") > 1:
        raise UsageError(f"Invalid layer name '{name}' in {flag}: at most one '*' wildcard is allowed")


def parse_layer_precisions(spec: str) -> dict[str, str]:
    """Parse `--layerPrecisions=name:prec,...`; later entries win."""
    out = {}
    for name, value in split_list(spec):
        _check_wildcard(name, "--layerPrecisions")
        out.pop(name, None)
        out[name] = _layer_type(value, "--layerPrecisions")
    return out


def parse_layer_output_types(spec: str) -> dict[str, list[str]]:
    """Parse `--layerOutputTypes=name:type[+type],...`; later entries win."""
    out = {}
    for name, value in split_list(spec):
        _check_wildcard(name, "--layerOutputTypes")
        out.pop(name, None)
        out[name] = [_layer_type(v, "--layerOutputTypes") for v in value.split("+")]
    return out


def parse_percentiles(spec: str) -> list[float]:
    """Parse `--percentile=P1,P2,...`, each in [0, 100]."""
    out = []
    for p in spec.split(","):
        try:
            v = float(p)
        except ValueError:
            raise UsageError(f"Invalid percentile '{p}': expected a number in [0, 100]") from None
        if not 0.0 <= v <= 100.0:
            raise UsageError(f"Percentile {p} is not in [0, 100]")
        out.append(v)
    return out
