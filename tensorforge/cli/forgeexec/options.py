"""Command-line parsing: `--name=value` split at the first '=', the flag table, leftovers -> Unknown option."""
from __future__ import annotations

import math
from types import SimpleNamespace

from .flags import BY_NAME, Flag, defaults
from .shapes import UsageError

_PROFILE_DESTS = ("profile", "minShapes", "optShapes", "maxShapes")


class UnknownOptions(Exception):
    """Arguments that no flag consumed: [(name, value), ...]."""

    def __init__(self, items: list[tuple[str, str]]):
        super().__init__(", ".join(f"{n} {v}" for n, v in items))
        self.items = items


class Options(SimpleNamespace):
    """Parsed flag values (attribute per flag dest) plus derived fields filled by validate()."""


def split_argv(argv: list[str]) -> list[tuple[str, str | None]]:
    """Split each argument at its first '='; no '=' means a boolean switch (value None)."""
    out = []
    for arg in argv:
        name, eq, value = arg.partition("=")
        out.append((name, value if eq else None))
    return out


def wants_help(argv: list[str]) -> bool:
    """True for no arguments, --help or -h (checked before anything else is parsed)."""
    return not argv or any(name in ("--help", "-h") for name, _ in split_argv(argv))


def convert(flag: Flag, value: str | None):
    """Convert a raw value for flag; raise ValueError when it is malformed."""
    if flag.kind == "bool":
        if value is not None:
            raise ValueError("boolean switches take no value")
        return True
    if value is None or value.strip() == "":
        raise ValueError("missing value")
    if flag.kind == "int":
        return int(value, 10)
    if flag.kind == "float":
        v = float(value)
        if not math.isfinite(v):
            raise ValueError("not finite")
        return v
    return value


def parse(argv: list[str]) -> Options:
    """Parse argv into Options; raise UnknownOptions for unknown, malformed or repeated flags."""
    opts = Options(**defaults())
    opts.given, opts.argv = [], list(argv)
    unknown: list[tuple[str, str]] = []
    seen: set[str] = set()
    profile_items: list[tuple[str, object, str | None]] = []
    for name, value in split_argv(argv):
        flag = BY_NAME.get(name)
        try:
            v = convert(flag, value) if flag else None
        except ValueError:
            flag = None
        if flag is None or (not flag.repeat and flag.dest in seen):
            unknown.append((name, value or ""))
            continue
        seen.add(flag.dest)
        opts.given.append(name)
        if flag.dest in _PROFILE_DESTS:
            profile_items.append((flag.dest, v, value))
        elif flag.repeat:
            getattr(opts, flag.dest).append(v)
        else:
            setattr(opts, flag.dest, v)
    unknown += _group_profiles(opts, profile_items)
    if unknown:
        raise UnknownOptions(unknown)
    return opts


def _group_profiles(opts: Options, items) -> list[tuple[str, str]]:
    """Group min/opt/max shape flags by the --profile=N that precedes them; return repeated ones."""
    repeated: list[tuple[str, str]] = []
    groups: dict[int, dict[str, str]] = {}
    explicit = any(dest == "profile" for dest, _, _ in items)
    current = None if explicit else 0
    if not explicit and items:
        groups[0] = {}
    for dest, v, raw in items:
        if dest == "profile":
            if v in groups:
                raise UsageError(f"Optimization profile index {v} is given more than once with --profile")
            groups[v], current = {}, v
        elif current is None:
            raise UsageError(f"--{dest} must follow --profile=N when --profile is used")
        elif dest in groups[current]:
            repeated.append((f"--{dest}", raw or ""))
        else:
            groups[current][dest] = v
    if sorted(groups) != list(range(len(groups))):
        raise UsageError("Optimization profile indices given with --profile must be unique and contiguous from 0")
    for i, g in groups.items():
        if not g:
            raise UsageError(f"Optimization profile {i} has no --minShapes/--optShapes/--maxShapes")
    opts.profile_specs = [groups[i] for i in range(len(groups))]
    return repeated


def notes(opts: Options) -> list[str]:
    """Return the info lines for flags that are accepted but do little or nothing today."""
    out = []
    for name in dict.fromkeys(opts.given):
        if BY_NAME[name].note:
            out.append(f"{name}: {BY_NAME[name].note}.")
    return out


def noop_warnings(opts: Options) -> list[str]:
    """One warning per used flag that has no effect."""
    return [f"{n} {BY_NAME[n].noop}." for n in dict.fromkeys(opts.given) if BY_NAME[n].noop]


def deprecations(opts: Options) -> list[str]:
    """Return the warnings for deprecated aliases that were used."""
    return [BY_NAME[n].deprecated for n in dict.fromkeys(opts.given) if BY_NAME[n].deprecated]
