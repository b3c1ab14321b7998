"""The report's plots as inline SVG text (matplotlib's SVG backend; no files, no network)."""
from __future__ import annotations

import io

from . import cost
from .peaks import Peaks, compute_peak

COLORS = {"FP32": "#4c72b0", "TF32": "#4c72b0", "FP16": "#55a868", "BF16": "#8172b2", "Int8": "#c44e52",
          "FP8": "#dd8452", "n/a": "#999999"}
TARGET_SHARE = 0.90  # the optimization guides' target: >= 90 % of GPU time in GEMM/conv kernels


def _plt():
    """pyplot on the SVG backend (imported here: matplotlib is the optional `report` extra)."""
    import matplotlib
    matplotlib.use("svg", force=True)
    import matplotlib.pyplot as plt
    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "tensorforge", "font.size": 9})
    return plt


def _svg(fig) -> str:
    """The figure as an <svg> element (XML prolog and DOCTYPE dropped), then closed."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    _plt().close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def time_by_type(rows) -> str:
    """Horizontal bars: total time per layer type, largest first."""
    plt = _plt()
    by: dict = {}
    for r in rows:
        by[r.type] = by.get(r.type, 0.0) + r.time_ms
    items = sorted(by.items(), key=lambda kv: kv[1])[-20:]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(items) + 1.0))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#4c72b0")
    ax.set_xlabel("time per inference (ms)")
    ax.set_title("Time by layer type")
    return _svg(fig)


def gemm_share(rows) -> tuple[str, float]:
    """One stacked bar: conv/GEMM/MatMul/attention time vs everything else, with the 90 % target."""
    plt = _plt()
    total = sum(r.time_ms for r in rows) or 1.0
    share = sum(r.time_ms for r in rows if r.type in cost.TENSOR_CORE) / total
    fig, ax = plt.subplots(figsize=(7, 0.9))
    ax.barh([0], [share * 100], color="#55a868", label=f"conv/GEMM/attention {share:.1%}")
    ax.barh([0], [(1 - share) * 100], left=[share * 100], color="#c44e52", label=f"everything else {1 - share:.1%}")
    ax.axvline(TARGET_SHARE * 100, color="black", linestyle="--", label="target ≥ 90 %")
    ax.set_xlim(0, 100)
    ax.set_yticks([])
    ax.set_xlabel("share of layer time (%)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.6), ncol=3, frameon=False)
    return _svg(fig), share


def roofline(rows, peaks: Peaks | None, tf32: bool) -> str:
    """Achieved FLOP/s vs arithmetic intensity per layer, with the GPU's roofs when known."""
    plt = _plt()
    pts = [r for r in rows if r.flops and r.bytes and r.time_ms > 0]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for prec in sorted({r.precision for r in pts}):
        sel = [r for r in pts if r.precision == prec]
        ax.scatter([r.flops / r.bytes for r in sel], [r.flops / (r.time_ms * 1e-3) / 1e12 for r in sel],
                   s=18, color=COLORS.get(prec, "#333333"), label=prec, zorder=3)
    xs = [r.flops / r.bytes for r in pts] or [1.0]
    lo, hi = min(xs) / 4, max(xs) * 4
    if peaks is not None:  # show the knees: compute-bound starts at peak FLOP/s / bandwidth
        hi = max(hi, 2 * max(compute_peak(peaks, p, tf32) for p in {r.precision for r in pts} or {"FP16"})
                 / peaks.bandwidth)
        for prec in sorted({r.precision for r in pts} or {"FP16"}):
            p = compute_peak(peaks, prec, tf32) / 1e12
            knee = p * 1e12 / peaks.bandwidth
            grid = sorted({lo, min(knee, hi), hi, knee})
            ax.plot(grid, [min(p, x * peaks.bandwidth / 1e12) for x in grid], color=COLORS.get(prec, "#333"),
                    linestyle="--", linewidth=1)
        ax.set_title(f"Roofline ({peaks.name}: {peaks.bandwidth / 1e12:.2f} TB/s)")
    else:
        ax.set_title("Achieved FLOP/s (no roofs: no peak numbers for this device)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel("achieved TFLOP/s")
    if pts:
        ax.legend(frameon=False)
    else:
        ax.text(0.5, 0.5, "no conv/GEMM/attention layers with known shapes and times", ha="center",
                transform=ax.transAxes)
    return _svg(fig)


def timeline(rows, measured: bool) -> str:
    """One inference: a lane per stream, a bar per layer (measured start/end, else laid end to end)."""
    plt = _plt()
    streams = sorted({r.stream for r in rows}) or [0]
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(streams) + 1.4))
    t = 0.0
    span = (max(r.end_ms for r in rows) - min(r.start_ms for r in rows)) if measured and rows else \
        sum(r.time_ms for r in rows) or 1.0
    for r in rows:
        if measured:
            start, end = r.start_ms, r.end_ms
        else:
            start, end = t, t + r.time_ms
            t = end
        color = "#55a868" if r.type in cost.TENSOR_CORE else "#4c72b0"
        lane = streams.index(r.stream)
        ax.broken_barh([(start, max(end - start, 1e-6))], (lane - 0.4, 0.8), facecolors=color,
                       edgecolor="white", linewidth=0.3)
        if end - start > 0.08 * span:  # name the layers wide enough to hold a label
            ax.text((start + end) / 2, lane, r.name[:40], ha="center", va="center", fontsize=7, clip_on=True)
    ax.set_yticks(range(len(streams)))
    ax.set_yticklabels([f"stream {s}" for s in streams])
    ax.set_xlabel("time in one inference (ms)")
    ax.set_title("Timeline of one profiled inference" + ("" if measured else " (layers laid end to end)"))
    return _svg(fig)


def precision_plot(rows) -> str:
    """Per-layer precision strip (execution order) and time per precision."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 2.8), gridspec_kw={"height_ratios": [1, 2]})
    for i, r in enumerate(rows):
        ax1.axvspan(i, i + 1, color=COLORS.get(r.precision, "#999999"))
    ax1.set_xlim(0, max(len(rows), 1))
    ax1.set_yticks([])
    ax1.set_xlabel("layers in execution order")
    ax1.set_title("Precision per layer")
    by: dict = {}
    for r in rows:
        n, ms = by.get(r.precision, (0, 0.0))
        by[r.precision] = (n + 1, ms + r.time_ms)
    names = sorted(by)
    ax2.barh(names, [by[n][1] for n in names], color=[COLORS.get(n, "#999999") for n in names])
    for y, n in enumerate(names):
        ax2.text(by[n][1], y, f" {by[n][0]} layers", va="center")
    ax2.set_xlabel("time per inference (ms)")
    fig.tight_layout()
    return _svg(fig)
