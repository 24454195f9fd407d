"""Browser tests of the Timeline: ``%nbflow timeline`` after a ``map`` workflow, in JupyterLab and
Notebook 7 (the parts of :mod:`tests.support.browser`), then in JupyterLab's dark theme.

The chart must be visible with its bars, read in both themes (its text takes the page's text
colour), and stay what it is in the saved notebook (plain SVG in the HTML output). The light
theme's screenshot is ``docs/timeline.png``: written there when ``NBFLOW_DOCS_SHOTS=1`` (the
screenshots always go to the browser artifacts).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator

import pytest

from tests.support import browser
from tests.support.browser import Lab, cell, open_notebook, run_cells, wait_executed, write_notebook
from tests.support.processes import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MS = 1000

DEFINE = (
    "import time\n"
    "import nbflow\n"
    "nbflow.configure('{NAME}.duckdb')\n"
    "tries = {}\n"
    "@nbflow.step(retries=2, interval=0.05)\n"
    "def download(source):\n"
    "    tries[source] = tries.get(source, 0) + 1\n"
    "    if tries[source] == 1:\n"
    "        raise ConnectionError('timed out')\n"
    "    return source\n"
    "@nbflow.step()\n"
    "def score(i):\n"
    "    time.sleep(0.002 * (i % 7))\n"
    "    nbflow.write_stream('scores', i)\n"
    "    return i * i\n"
    "@nbflow.workflow()\n"
    "def summarize(values):\n"
    "    return score(len(values))\n"
    "@nbflow.workflow()\n"
    "def pipeline(n):\n"
    "    download('s3://bucket/data.csv')\n"
    "    values = nbflow.map(score, range(n), concurrency=4)\n"
    "    for i in range(0, n, 10):\n"
    "        nbflow.progress(i + 10, n)\n"
    "    return summarize(values)\n"
    "h = nbflow.start(pipeline, {N})\n"
    "h.result()"
)
SHOW = "%load_ext nbflow\n%nbflow timeline {h.workflow_id}"
DARK = {"theme": "JupyterLab Dark"}
THEMES = "@jupyterlab/apputils-extension/themes.jupyterlab-settings"
CHART = r"""(i) => {
  const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
  const svg = c && c.querySelector('svg.nbflow-timeline');
  if (!svg) return null;
  const box = svg.getBoundingClientRect();
  const label = svg.querySelector('text.nbflow-label');
  let el = svg, bg = 'rgba(0, 0, 0, 0)';  // the background it is drawn on: the nearest one set
  while (el && /^(transparent|rgba\(0, 0, 0, 0\))$/.test(bg)) {
    bg = getComputedStyle(el).backgroundColor;
    el = el.parentElement;
  }
  return {width: box.width, height: box.height, bars: svg.querySelectorAll('rect.nbflow-bar').length,
          retries: svg.querySelectorAll('.nbflow-retry-mark').length,
          ticks: svg.querySelectorAll('.nbflow-tick').length,
          text: getComputedStyle(label).fill, background: bg};
}"""


@pytest.fixture(scope="module", params=["lab", "notebook"])
def lab(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Lab]:
    with browser.serve(request.param, tmp_path_factory, request) as served:
        yield served


def brightness(css: str) -> float:
    """The mean of a CSS ``rgb(…)`` colour's channels (0 black … 255 white)."""
    channels = [float(v) for v in re.findall(r"[\d.]+", css)[:3]]
    return sum(channels) / 3


def show_timeline(lab: Lab, name: str, shots: str) -> dict[str, float]:
    """Run the map workflow and ``%nbflow timeline`` in a new notebook; what the chart shows,
    after a screenshot of its cell (in the artifacts, as ``{shots}-{title}.png``)."""
    write_notebook(lab, name, [DEFINE.replace("{NAME}", shots).replace("{N}", "400"), SHOW])
    with open_notebook(lab, name, shots) as page:
        run_cells(lab, page, 0, 2)
        wait_executed(page, [0, 1], timeout=120)
        page.wait_for_function(CHART, arg=1, timeout=30 * MS)
        chart = cell(page, 1).locator("svg.nbflow-timeline")
        chart.wait_for(state="visible", timeout=30 * MS)
        state = page.evaluate(CHART, 1)
        path = lab.artifacts / f"{shots}-{lab.title.replace(' ', '-')}.png"
        cell(page, 1).locator(".jp-OutputArea").screenshot(path=path)
        lab.say(f"timeline screenshot: {path}")
        state["shot"] = str(path)
        assert not browser.errors_shown(page)
        saved = browser.save_notebook(lab, page, name)
        browser.shut_kernel_down(lab, page)
    (data,) = [o["data"] for o in saved["cells"][1]["outputs"] if "data" in o]
    html = "".join(data["text/html"])
    assert "<svg" in html and "<script" not in html and "nbflow-bar" in html
    return state


def test_the_timeline_of_a_map_workflow_shows_in_the_notebook(lab: Lab) -> None:
    state = show_timeline(lab, "timeline.ipynb", "timeline")
    assert state["width"] > 600 and state["height"] > 100, state
    assert state["bars"] >= 4, state  # the workflow, the download, the map's lanes, the child
    assert state["retries"] == 1 and state["ticks"] > 100, state
    assert abs(brightness(state["text"]) - brightness(state["background"])) > 100, state
    if lab.kind == "lab" and os.environ.get("NBFLOW_DOCS_SHOTS") == "1":
        shutil.copyfile(str(state["shot"]), ROOT / "docs" / "timeline.png")


def test_the_timeline_reads_in_jupyterlab_s_dark_theme(lab: Lab) -> None:
    if lab.kind != "lab":
        pytest.skip("the theme is JupyterLab's setting (Notebook 7 shares it; one run is enough)")
    settings = lab.base / "lab-settings" / THEMES
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps(DARK))
    try:
        state = show_timeline(lab, "timeline-dark.ipynb", "timeline-dark")
    finally:
        settings.unlink()
    assert brightness(state["background"]) < 80, state  # the dark theme is on
    assert brightness(state["text"]) > 150, state  # the labels are light on it
    assert state["bars"] >= 4, state


FOLLOW = (
    "from nbflow.notebook import LiveView\n"
    "slow = nbflow.start(pipeline, 3000)\n"
    "v = LiveView.follow(slow.workflow_id)"
)
STATIC_CHART = """(i) => {
  const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
  return !!c && !!c.querySelector('.nbflow-liveview svg.nbflow-timeline')
    && !c.querySelector('.widget-hprogress');
}"""


def test_the_live_view_s_timeline_toggle_shows_the_chart_and_keeps_it(lab: Lab) -> None:
    """Clicking "Timeline" under a running workflow's view shows its chart, redrawn while it
    runs; the static rendering the view leaves at the end holds the chart."""
    name = "timeline-toggle.ipynb"
    define = DEFINE.replace("{NAME}", "toggle").replace("{N}", "5")
    write_notebook(lab, name, [define, FOLLOW])
    with open_notebook(lab, name, "timeline-toggle") as page:
        run_cells(lab, page, 0, 2)
        view = cell(page, 1)
        toggle = view.locator(".nbflow-timeline-toggle")
        toggle.wait_for(state="visible", timeout=60 * MS)
        toggle.click()
        chart = view.locator(".nbflow-timeline-chart svg.nbflow-timeline")
        chart.wait_for(state="visible", timeout=30 * MS)
        assert chart.locator("rect.nbflow-bar").count() >= 1
        page.wait_for_function(STATIC_CHART, arg=1, timeout=120 * MS)
        static = view.locator(".nbflow-liveview svg.nbflow-timeline")
        assert static.is_visible() and static.locator("rect.nbflow-success").count() >= 1
        page.screenshot(path=lab.artifacts / f"timeline-toggle-{lab.title}.png", full_page=True)
        browser.shut_kernel_down(lab, page)
