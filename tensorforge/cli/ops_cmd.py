"""`tensorforge ops`: the supported ONNX ops by domain; the optimizer's internal fused ops apart."""
from __future__ import annotations

import collections

FUSED_PREFIX = "fused."  # internal ops the passes create (fused.ConvAct, ...): never in an ONNX file


def split_ops(names: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """({domain: ONNX ops}, internal fused ops) from registry names ('domain::Op' or 'Op')."""
    by_domain: dict[str, list[str]] = collections.defaultdict(list)
    fused = []
    for name in names:
        if name.startswith(FUSED_PREFIX):
            fused.append(name)
            continue
        dom, _, op = name.rpartition("::")
        by_domain[dom or "ai.onnx"].append(op)
    return dict(by_domain), fused


def ops_listing() -> str:
    """The text `tensorforge ops` prints: a count of ONNX ops only, then each domain's ops."""
    from ..ops import supported_ops
    by_domain, fused = split_ops(supported_ops())
    total = sum(len(v) for v in by_domain.values())
    counts = ", ".join(f"{d} {len(v)}" for d, v in sorted(by_domain.items(), key=lambda kv: kv[0] != "ai.onnx"))
    lines = [f"{total} supported ONNX ops ({counts}):"]
    for dom in sorted(by_domain, key=lambda d: (d != "ai.onnx", d)):
        lines.append(f"[{dom}]")
        lines += sorted(by_domain[dom])
    lines.append(f"internal fused ops (created by the optimizer, not ONNX ops): {len(fused)}")
    lines += sorted(fused)
    return "\n".join(lines)
