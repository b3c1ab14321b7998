"""Per-weight conversions done once (e.g. a weight laid out channels-last on a kernel's first call)."""
from __future__ import annotations


def cached(convert):
    """Memoize a per-weight conversion by storage pointer and version (done once, on first call)."""
    memo = {}

    def get(t):
        key = (t.data_ptr(), t._version, tuple(t.shape), t.dtype)
        hit = memo.get(key)
        if hit is None:
            hit = memo[key] = convert(t)
        return hit
    return get
