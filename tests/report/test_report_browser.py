"""The report page rendered by headless Chromium (Debian's `chromium`): scripts run, the table
sorts, and every plot region of a screenshot holds a drawing. Skipped without chromium."""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from tensorforge.report import data, page
from tests.report import exports

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser")) if p), None)
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"),
              pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                 reason="matplotlib not installed (pip install 'tensorforge[report]')")]
PLOTS = ("plot-share", "plot-types", "plot-roofline", "plot-timeline", "plot-precision")
# runs after the page's own script: plot boxes in page pixels, then the table sorted by time (ms)
PROBE = """<script>window.addEventListener('load', function () {
  var out = {plots: {}, height: document.documentElement.scrollHeight};
  document.querySelectorAll('div.plot').forEach(function (d) {
    var r = d.querySelector('svg').getBoundingClientRect();
    out.plots[d.id] = [r.left + scrollX, r.top + scrollY, r.width, r.height]; });
  var th = document.querySelectorAll('#layers th')[6], first = function () {
    return document.querySelector('#layers tbody tr').cells[1].textContent; };
  th.click(); out.asc = first(); th.click(); out.desc = first();
  var pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre); });</script>"""


def _chromium(tmp_path, *args) -> subprocess.CompletedProcess:
    """Run headless Chromium with a fresh profile and nothing phoning home."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", "--force-device-scale-factor=1", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """(the folder of probe.html, the probe's findings) for the fixed exports on an H200; the screenshot
    is taken of the same page (the probe changes nothing above the table)."""
    tmp = tmp_path_factory.mktemp("report")
    p = exports.write(tmp)
    html = page.render(data.from_exports(p["profile"], p["layer_info"], p["times"], "net", "NVIDIA H200"))
    (tmp / "probe.html").write_text(html.replace("</body>", PROBE + "</body>"))
    res = _chromium(tmp, "--virtual-time-budget=5000", "--dump-dom", (tmp / "probe.html").as_uri())
    m = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout, re.S)
    assert m, f"the probe did not run: {res.stderr[-2000:]}"
    return tmp, json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_scripts_run_and_the_table_sorts(rendered):
    _, probe = rendered
    assert probe["asc"] == "attn" and probe["desc"] == "softmax"  # fastest / slowest layer first
    for plot in PLOTS:
        x, y, w, h = probe["plots"][plot]
        assert w > 200 and h > 40, f"{plot} is not laid out: {probe['plots'][plot]}"


def test_screenshot_plots_are_drawn(rendered):
    image = pytest.importorskip("PIL.Image")
    tmp, probe = rendered
    shot = tmp / "shot.png"
    height = int(min(probe["height"] + 50, 12000))
    res = _chromium(tmp, f"--window-size=1280,{height}", f"--screenshot={shot}", (tmp / "probe.html").as_uri())
    assert shot.exists(), res.stderr[-2000:]
    img = np.asarray(image.open(shot).convert("RGB")).astype(int)
    for plot in PLOTS:
        x, y, w, h = (int(v) for v in probe["plots"][plot])
        px = img[y:y + h, x:x + w].reshape(-1, 3)
        inked = float((px.sum(axis=1) < 700).mean())  # clearly darker than the white background
        colors = len(np.unique(px, axis=0))
        assert inked > 0.01 and colors > 8, f"{plot}: {inked:.3%} inked pixels, {colors} colors"
    blank = img[height - 30:height - 5].reshape(-1, 3)  # below the page: background only
    assert len(np.unique(blank, axis=0)) == 1
