"""Browser tests of the live view and the tables in JupyterLab's dark theme, and of the view's
layout when it turns into its static rendering.

One notebook runs in JupyterLab Dark: a view of a workflow that succeeds (its live bar measured,
then its static rendering), a view of one that fails, and ``%nbflow list`` over them and a
running and a cancelled workflow. Measured from the rendered page (computed colours): every
status word (views and table) reads at WCAG contrast 4.5:1 or more against the background it is
drawn on, the static bar's empty track is dark, and the static bar is as wide as the live one
was, its id not boxed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import browser
from tests.support.browser import Lab, cell, open_notebook, run_cells, wait_executed, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MS = 1000
SHOTS = Path("/tmp/i22-shots")
THEMES = "@jupyterlab/apputils-extension/themes.jupyterlab-settings"

DEFINE = (
    "import time\n"
    "import nbflow\n"
    "from nbflow.notebook import LiveView\n"
    "nbflow.configure('dark.duckdb')\n"
    "@nbflow.workflow()\n"
    "def job(n, fail, pause):\n"
    "    for i in range(n):\n"
    "        time.sleep(pause)\n"
    "        nbflow.progress(i + 1, n)\n"
    "        nbflow.write_stream('rows', f'row {i}')\n"
    "    if fail:\n"
    "        raise ValueError('bad row')\n"
    "    return n\n"
)
CELLS = [
    DEFINE,
    "ok = LiveView.follow(nbflow.start(job, 30, False, 0.2).workflow_id, ['progress', 'rows'])",
    "bad = LiveView.follow(nbflow.start(job, 3, True, 0.01).workflow_id)",
    "ok.wait(60); bad.wait(60)\n"
    "running = nbflow.start(job, 1000, False, 0.5)\n"
    "stopped = nbflow.start(job, 1000, False, 0.5)\n"
    "stopped.cancel()\n"
    "try:\n"
    "    stopped.result(timeout=30)\n"
    "except Exception as exc:\n"
    "    print(type(exc).__name__)",
    "%load_ext nbflow\n%nbflow list",
]

# The WCAG contrast of text against the background it is drawn on (the nearest one set).
CONTRAST_JS = r"""
  const parse = (css) => {
    let m = css.match(/^rgba?\(([^)]*)\)/);
    if (m) { const v = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
             return [v[0], v[1], v[2], v.length > 3 ? v[3] : 1]; }
    m = css.match(/^color\(srgb ([^)]*)\)/);
    if (m) { const v = m[1].split(/[ /]+/).filter(Boolean).map(Number);
             return [v[0] * 255, v[1] * 255, v[2] * 255, v.length > 3 ? v[3] : 1]; }
    return null;
  };
  const background = (el) => {
    let layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let out = [255, 255, 255];
    for (const c of layers.reverse()) out = out.map((v, k) => c[k] * c[3] + v * (1 - c[3]));
    return out;
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const contrast = (el) => {
    const bg = background(el);
    const c = parse(getComputedStyle(el).color);
    const fg = c.slice(0, 3).map((v, k) => v * c[3] + bg[k] * (1 - c[3]));
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    return {text: el.innerText.trim(), colour: getComputedStyle(el).color,
            background: 'rgb(' + bg.map(Math.round).join(', ') + ')',
            ratio: Math.round(((a + 0.05) / (b + 0.05)) * 100) / 100};
  };
"""
MEASURE = (
    "() => {"
    + CONTRAST_JS
    + r"""
  const cells = document.querySelectorAll('.jp-Notebook .jp-Cell');
  const words = [];
  for (const i of [1, 2]) {
    const snap = cells[i].querySelector('.nbflow-liveview');
    const word = snap && snap.querySelector('span[style*="font-weight"]');
    if (word) words.push(contrast(word));
  }
  const table = cells[4].querySelector('.nbflow-table table');
  const heads = [...table.querySelectorAll('th')].map((th) => th.innerText.trim());
  const col = heads.indexOf('status');
  const statuses = [...table.querySelectorAll('tbody tr')].map((tr) => contrast(tr.children[col]));
  const snap = cells[1].querySelector('.nbflow-liveview');
  const track = snap.querySelector('span > span[style*="width"]').parentElement;
  const code = snap.querySelector('code');
  return {words, statuses, track: getComputedStyle(track).backgroundColor,
          trackWidth: track.getBoundingClientRect().width,
          code: getComputedStyle(code).backgroundColor};
}"""
)
LIVE_BAR = """() => {
  const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[1];
  const p = c && c.querySelector('.widget-hprogress .progress');
  const code = c && c.querySelector('.widget-html code');
  return p ? {width: p.getBoundingClientRect().width,
              code: code ? getComputedStyle(code).backgroundColor : null} : null;
}"""
STATIC = """(i) => {
  const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
  return !!c && !!c.querySelector('.nbflow-liveview') && !c.querySelector('.widget-hprogress');
}"""


def brightness(css: str) -> float:
    """The mean of a computed ``rgb(…)`` colour's channels (0 black … 255 white)."""
    inner = css[css.index("(") + 1 : css.index(")")].replace(",", " ").split()
    return sum(float(v) for v in inner[:3]) / 3


@pytest.fixture(scope="module")
def measured(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[dict[str, Any]]:
    """Run the notebook in JupyterLab Dark; what the page shows."""
    with browser.serve("lab", tmp_path_factory, request) as lab:
        settings = lab.base / "lab-settings" / THEMES
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(json.dumps({"theme": "JupyterLab Dark"}))
        yield run(lab)


def run(lab: Lab) -> dict[str, Any]:
    name = "dark.ipynb"
    write_notebook(lab, name, CELLS)
    with open_notebook(lab, name, "dark") as page:
        run_cells(lab, page, 0, 2)
        page.wait_for_function(LIVE_BAR, timeout=60 * MS)
        page.wait_for_timeout(500)
        live = page.evaluate(LIVE_BAR)
        shot = lab.artifacts / "dark-live.png"
        cell(page, 1).screenshot(path=shot)
        run_cells(lab, page, 2, 3)
        wait_executed(page, [0, 1, 2, 3, 4], timeout=120)
        for index in (1, 2):
            page.wait_for_function(STATIC, arg=index, timeout=60 * MS)
        state = page.evaluate(MEASURE)
        state["live"] = live
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SHOTS / "item8-dark-live-view.png")
        for index, title in ((1, "static-view"), (2, "failed-view"), (4, "list-table")):
            path = lab.artifacts / f"dark-{title}.png"
            cell(page, index).screenshot(path=path)
            shutil.copyfile(path, SHOTS / f"item8-dark-{title}.png")
        browser.shut_kernel_down(lab, page)
    print(f"\n    dark theme: {json.dumps(state)}")
    return state


def test_status_words_read_in_the_dark_theme(measured: dict[str, Any]) -> None:
    assert brightness(measured["words"][0]["background"]) < 60, measured  # the dark theme is on
    shown = measured["words"] + measured["statuses"]
    words = {s["text"] for s in shown}
    assert {"succeeded", "failed", "running", "cancelled"} <= words, words
    low = [s for s in shown if s["ratio"] < 4.5]
    assert not low, low
    assert brightness(measured["track"]) < 100, measured  # the empty track is dark too


def test_the_static_rendering_keeps_the_live_layout(measured: dict[str, Any]) -> None:
    live = measured["live"]
    assert abs(measured["trackWidth"] - live["width"]) <= 4, measured
    assert measured["code"] == live["code"] or measured["code"] == "rgba(0, 0, 0, 0)", measured
