"""The report page: one self-contained HTML file (inline CSS, JS and SVG; nothing fetched)."""
from __future__ import annotations

import html

from . import plots
from .data import ReportData
from .peaks import compute_peak, lookup

CSS = """body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px}td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}
th{cursor:pointer;background:#f4f4f4;position:sticky;top:0}th:hover{background:#e4e4e4}
td.num{text-align:right;font-variant-numeric:tabular-nums}.note{color:#555;font-size:13px}
.plot svg{max-width:100%;height:auto}.kv td:first-child{color:#555}"""
# click a header to sort by it (numbers by data-v, text otherwise); again to reverse
JS = """document.querySelectorAll('table.sortable th').forEach(function(th,col){th.addEventListener('click',function(){
var tb=th.closest('table').tBodies[0],rows=Array.from(tb.rows),asc=th.dataset.dir!=='asc';
th.closest('tr').querySelectorAll('th').forEach(function(h){delete h.dataset.dir});th.dataset.dir=asc?'asc':'desc';
rows.sort(function(a,b){var x=a.cells[col].dataset.v,y=b.cells[col].dataset.v,c;
if(x!==undefined&&y!==undefined){c=parseFloat(x)-parseFloat(y)}
else{c=a.cells[col].textContent.localeCompare(b.cells[col].textContent)}
return asc?c:-c});rows.forEach(function(r){tb.appendChild(r)})})});"""
COLUMNS = ("#", "layer", "type", "tactic", "precision", "stream", "time (ms)", "share", "GFLOP", "MB",
           "floor (ms)", "of floor", "bound")


def _esc(x) -> str:
    return html.escape(str(x))


def floor_ms(row, peaks, tf32: bool):
    """(floor in ms, 'compute' or 'memory') of a layer on a known GPU, or (None, 'n/a')."""
    if peaks is None or not row.bytes:
        return None, "n/a"
    t_mem = row.bytes / peaks.bandwidth * 1e3
    t_flop = row.flops / compute_peak(peaks, row.precision, tf32) * 1e3 if row.flops else 0.0
    return max(t_mem, t_flop), "compute" if t_flop > t_mem else "memory"


def _num(v, fmt: str) -> str:
    """A numeric cell with its sort key."""
    return f'<td class="num" data-v="{v}">{format(v, fmt)}</td>'


def layer_table(data: ReportData, peaks) -> str:
    """The sortable per-layer table."""
    total = data.total_ms or 1.0
    out = ['<table class="sortable" id="layers"><thead><tr>'
           + "".join(f"<th>{c}</th>" for c in COLUMNS) + "</tr></thead><tbody>"]
    for i, r in enumerate(data.layers):
        fl, bound = floor_ms(r, peaks, data.tf32)
        frac = (fl / r.time_ms) if fl is not None and r.time_ms > 0 else None
        cells = [_num(i, "d"), f"<td>{_esc(r.name)}</td>", f"<td>{_esc(r.type)}</td>", f"<td>{_esc(r.tactic)}</td>",
                 f"<td>{_esc(r.precision)}</td>", _num(r.stream, "d"), _num(r.time_ms, ".4f"),
                 _num(r.time_ms / total * 100, ".1f").replace("</td>", " %</td>"),
                 _num(r.flops / 1e9, ".3f"), _num(r.bytes / 1e6, ".3f"),
                 _num(fl, ".4f") if fl is not None else '<td class="num" data-v="-1">n/a</td>',
                 _num(frac * 100, ".1f").replace("</td>", " %</td>") if frac is not None
                 else '<td class="num" data-v="-1">n/a</td>', f"<td>{bound}</td>"]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _kv(d: dict) -> str:
    """A two-column table of facts (lists shown one item a line)."""
    rows = []
    for k, v in d.items():
        v = "<br>".join(_esc(x) for x in v) if isinstance(v, list) else _esc(v)
        rows.append(f"<tr><td>{_esc(k)}</td><td>{v or 'none'}</td></tr>")
    return '<table class="kv">' + "".join(rows) + "</table>"


def render(data: ReportData) -> str:
    """The whole page."""
    peaks = lookup(data.device)
    rows = data.layers
    share_svg, share = plots.gemm_share(rows)
    peak_note = (f"Floors use the {peaks.name} peaks ({peaks.note}): "
                 + ", ".join(f"{k} {v / 1e12:g} TFLOP/s" for k, v in peaks.flops.items())
                 + f", HBM {peaks.bandwidth / 1e12:g} TB/s." if peaks else
                 f"No peak numbers for device '{data.device}': floors and their fractions are n/a.")
    timeline_note = ("Per-layer start/end times measured in one inference." if data.has_times else
                     "The profile has no per-layer start/end times: the timeline lays each layer's average time "
                     "end to end in execution order, one lane per stream (profiled runs launch layers one at a "
                     "time, so streams do not overlap here).")
    run = data.run
    summary = {"device": data.device, "layers": len(rows), "profiled inferences": data.iterations,
               "sum of layer times (ms)": round(data.total_ms, 4),
               "conv/GEMM/attention share": f"{share:.1%} (target ≥ {plots.TARGET_SHARE:.0%})"}
    summary.update({k.replace("_", " "): round(v, 4) if isinstance(v, float) else v for k, v in run.items()})
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_esc(data.title)}</title>",
             f"<style>{CSS}</style></head><body>", f"<h1>tensorforge report: {_esc(data.title)}</h1>",
             '<h2 id="summary">Summary</h2>', _kv(summary),
             '<h2 id="build">Build</h2>', _kv(data.build),
             '<h2 id="share">GEMM/conv share</h2>',
             '<p class="note">Share of layer time in tensor-core layers (conv, GEMM/MatMul, attention); the '
             'optimization guides aim at ≥ 90 %, everything else fused away.</p>',
             f'<div class="plot" id="plot-share">{share_svg}</div>',
             '<h2 id="types">Time by layer type</h2>',
             f'<div class="plot" id="plot-types">{plots.time_by_type(rows)}</div>',
             '<h2 id="roofline">Roofline</h2>', f'<p class="note">{_esc(peak_note)}</p>',
             f'<div class="plot" id="plot-roofline">{plots.roofline(rows, peaks, data.tf32)}</div>',
             '<h2 id="timeline">Timeline</h2>', f'<p class="note" id="timeline-note">{_esc(timeline_note)}</p>',
             f'<div class="plot" id="plot-timeline">{plots.timeline(rows, data.has_times)}</div>',
             '<h2 id="precision">Precision</h2>',
             f'<div class="plot" id="plot-precision">{plots.precision_plot(rows)}</div>',
             '<h2 id="table">Layers</h2>', '<p class="note">Click a column to sort. Floor: the time the layer '
             'needs at the GPU peak (max of FLOPs / compute peak and bytes / bandwidth); "of floor" is floor / '
             'measured time.</p>', layer_table(data, peaks)]
    if data.notes:
        parts += ['<h2 id="notes">Notes</h2>', "<ul>" + "".join(f"<li>{_esc(n)}</li>" for n in data.notes) + "</ul>"]
    parts.append(f"<script>{JS}</script></body></html>")
    return "\n".join(parts)


def write(data: ReportData, path: str) -> None:
    """Render and write the page."""
    from ..fileio import atomic_write
    atomic_write(path, render(data).encode("utf-8"), "report")
