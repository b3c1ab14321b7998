"""Shape strings (`name:AxBxC,...`), name:value lists, wildcard matching and profile completion."""
from __future__ import annotations

from typing import Callable


class UsageError(Exception):
    """A flag value that cannot be used; printed after the help text."""


def split_name_value(item: str) -> tuple[str, str]:
    """Split `name:value` at the last ':', or `'name':value` when the name is quoted."""
    if "'" in item:
        parts = item.split("'")
        if len(parts) != 3:
            raise UsageError(f"Found invalid number of 's when parsing {item}. Expected: 2, received: "
                             f"{len(parts) - 1}.")
        if not parts[2].startswith(":"):
            raise UsageError(f"Expected ':' after the quoted name in {item}")
        return parts[0] + parts[1], parts[2][1:]
    if ":" not in item:
        raise UsageError(f"Invalid specification '{item}': expected name:value")
    name, _, value = item.rpartition(":")
    return name, value


def split_list(spec: str) -> list[tuple[str, str]]:
    """Split a comma-separated list of name:value pairs."""
    if spec is None or spec == "":
        raise UsageError("Empty specification")
    return [split_name_value(item) for item in spec.split(",")]


def parse_dims(text: str, where: str = "") -> tuple[int, ...]:
    """Parse `AxBxC` (or `scalar`/empty for a scalar) into a tuple of non-negative ints."""
    if text in ("", "scalar"):
        return ()
    dims = []
    for d in text.split("x"):
        if not d.strip().isdigit():
            raise UsageError(f"Invalid shape '{text}'{where}: dimensions must be non-negative integers joined by 'x'")
        dims.append(int(d))
    return tuple(dims)


def parse_shapes(spec: str, flag: str = "--shapes") -> dict[str, tuple[int, ...]]:
    """Parse a shape list; names must be unique and contain at most one '*'."""
    out: dict[str, tuple[int, ...]] = {}
    for name, value in split_list(spec):
        if name.count("*") > 1:
            raise UsageError(f"Invalid tensor name '{name}' in {flag}: at most one '*' wildcard is allowed")
        if name in out:
            raise UsageError(f"Duplicate tensor name '{name}' in {flag}")
        out[name] = parse_dims(value, f" for tensor '{name}' in {flag}")
    return out


def fmt_dims(dims) -> str:
    """Format dims as `AxBxC` (empty for scalars)."""
    return "x".join(str(d) for d in dims)


def wildcard_match(pattern: str, name: str) -> bool:
    """Match name against a pattern with at most one '*'."""
    if "*" not in pattern:
        return pattern == name
    head, tail = pattern.split("*")
    return len(name) >= len(head) + len(tail) and name.startswith(head) and name.endswith(tail)


def lookup(table: dict, name: str):
    """Find name in table: exact key first, then the first wildcard key that matches; None if none."""
    if name in table:
        return table[name]
    for pattern, value in table.items():
        if "*" in pattern and wildcard_match(pattern, name):
            return value
    return None


def check_names(table: dict, names, what: str) -> None:
    """Raise if a key of table matches none of names."""
    for pattern in table:
        if not any(wildcard_match(pattern, n) for n in names):
            raise UsageError(f'Cannot find {what} tensor with name "{pattern}" in the network inputs! Please make '
                             f"sure the input tensor names are correct.")


def complete_profile(mins: dict, opts: dict, maxs: dict, warn: Callable[[str], None]) -> dict:
    """Return {name: (min, opt, max)}, filling a missing selector as trtexec does (with a warning)."""
    out = {}
    for name in list(dict.fromkeys([*mins, *opts, *maxs])):
        mn, op, mx = mins.get(name), opts.get(name), maxs.get(name)
        src = {"minShapes": mn, "optShapes": op, "maxShapes": mx}
        order = {"minShapes": ("optShapes", "maxShapes"), "optShapes": ("maxShapes", "minShapes"),
                 "maxShapes": ("optShapes", "minShapes")}
        final = {}
        for key, fallbacks in order.items():
            if src[key] is not None:
                final[key] = src[key]
                continue
            donor = next(k for k in fallbacks if src[k] is not None)
            warn(f"{donor} is being broadcasted to {key} for tensor {name}")
            final[key] = src[donor]
        triple = (final["minShapes"], final["optShapes"], final["maxShapes"])
        if not (len(triple[0]) == len(triple[1]) == len(triple[2])):
            raise UsageError(f"Shapes of tensor {name} in the profile must have the same rank")
        if any(not (a <= b <= c) for a, b, c in zip(*triple)):
            raise UsageError(f"Invalid profile for tensor {name}: each dimension needs min <= opt <= max "
                             f"(min={fmt_dims(triple[0])}, opt={fmt_dims(triple[1])}, max={fmt_dims(triple[2])})")
        out[name] = triple
    return out


def parse_name_files(spec: str) -> dict[str, str]:
    """Parse `--loadInputs=name:file,...` into {name: file}."""
    out = {}
    for name, value in split_list(spec):
        if not value:
            raise UsageError(f"Missing file name for input '{name}' in --loadInputs")
        out[name] = value
    return out
