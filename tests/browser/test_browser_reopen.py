"""Browser tests of a live view in a notebook saved while it ran, and of its "Show all".

With the parts of :mod:`tests.support.browser`:

- in JupyterLab and Notebook 7, a notebook saved while a view runs, its kernel shut down, then
  reopened (a new kernel, which has none of the old widgets) shows the view's last state: its
  status, count and last lines, and that the workflow was interrupted with how to resume it;
  never "Error displaying widget: model not found";
- in JupyterLab, "Show all" shows what its note says (every item read, when all are kept), the
  opened list follows new lines while the workflow runs, and the static rendering left at the
  end keeps its last lines in sight and the earlier ones folded, with exact numbers.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import browser
from tests.support.browser import (
    VIEW_HAS,
    Lab,
    cell,
    open_notebook,
    run_cells,
    wait_executed,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MS = 1000
SHOTS = Path("/tmp/i22-shots")  # where the screenshots of issue 22 are copied

DEFINE = (
    "import time\n"
    "import nbflow\n"
    "from nbflow.notebook import LiveView\n"
    "nbflow.configure('{NAME}.duckdb')\n"
    "@nbflow.workflow()\n"
    "def rows(burst, n, pause):\n"
    "    for i in range(burst):\n"
    "        nbflow.write_stream('rows', f'row {i}')\n"
    "    for i in range(burst, burst + n):\n"
    "        time.sleep(pause)\n"
    "        nbflow.progress(i + 1, burst + n)\n"
    "        nbflow.write_stream('rows', f'row {i}')\n"
    "    return n\n"
)

SAVED = """(i) => {
  const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
  if (!c) return null;
  const saved = c.querySelector('.nbflow-saved');
  const shown = (el) => !!el && el.getClientRects().length > 0;
  const widget = c.querySelector('.jp-OutputArea-output.lm-Panel');  // the widget renderer
  return {saved: shown(saved) ? saved.innerText : '',
          widget: shown(widget) ? widget.innerText : '',
          error: !!widget && widget.textContent.includes('model not found'),
          all: c.querySelector('.jp-OutputArea').innerText};
}"""


@pytest.fixture(scope="module", params=["lab", "notebook"])
def lab(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Lab]:
    with browser.serve(request.param, tmp_path_factory, request) as served:
        yield served


def keep_shot(path: Path, name: str) -> None:
    """Copy a screenshot to :data:`SHOTS` as ``name``."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, SHOTS / name)


def test_a_notebook_saved_mid_run_and_reopened_shows_the_view_s_last_state(lab: Lab) -> None:
    name = "saved-mid-run.ipynb"
    follow = (
        "v = LiveView.follow(nbflow.start(rows, 0, 400, 0.1).workflow_id, ['progress', 'rows'])"
    )
    write_notebook(lab, name, [DEFINE.replace("{NAME}", "saved"), follow])
    title = lab.title.replace(" ", "-")
    with open_notebook(lab, name, "saved-mid-run") as page:
        run_cells(lab, page, 0, 2)
        wait_executed(page, [0, 1])
        page.wait_for_function(VIEW_HAS, arg=[1, "row 30"], timeout=60 * MS)
        live = page.evaluate(SAVED, 1)
        page.wait_for_timeout(1500)  # the saved state follows about once a second
        saved = browser.save_notebook(lab, page, name)
        browser.shut_kernel_down(lab, page)
    outputs = [o["data"] for o in saved["cells"][1]["outputs"] if "data" in o]
    lab.say(f"saved outputs of the view's cell: {[sorted(d) for d in outputs]}")
    last = "".join(outputs[-1].get("text/plain", ""))
    with open_notebook(lab, name, "saved-reopened") as page:  # a new kernel: no old widgets
        settled = "(i) => { const s = (" + SAVED + ")(i); "
        settled += "return !!s && s.error; }"  # the widget's renderer gave up
        page.wait_for_function(settled, arg=1, timeout=30 * MS)
        state = page.evaluate(SAVED, 1)
        shot = lab.artifacts / f"reopened-{title}.png"
        cell(page, 1).screenshot(path=shot)
        keep_shot(shot, f"item2-reopened-{title}.png")
    lab.say(f"live: {live}; reopened: {state}")
    assert "model not found" not in state["all"], state
    assert live is not None and live["saved"] == "", live  # hidden under the live widget
    assert "interrupted" in last and "nbflow.recover()" in last, last  # in the file too
    assert state["widget"] == "", state  # the widget's error is hidden
    text = state["saved"]
    assert "interrupted" in text and "nbflow.recover()" in text, text
    assert re.search(r"\b\d+/400\b", text), text  # the count the view had
    assert re.search(r"row \d+", text), text  # its last lines


FLOOD = "v = LiveView.follow(nbflow.start(rows, 2000, 80, 0.1).workflow_id, ['progress', 'rows'])"

OUTPUT = """(i) => {
  const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
  const out = c && c.querySelector('.widget-output');
  const pre = out && out.querySelector('pre');
  if (!pre) return null;
  const o = out.getBoundingClientRect(), p = pre.getBoundingClientRect();
  return {lines: pre.innerText.replace(/\\n+$/, '').split('\\n').length,
          first: pre.innerText.split('\\n')[0], end_below: p.bottom - o.bottom,
          height: o.height};
}"""

STATIC = """(i) => {
  const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
  const snap = c && c.querySelector('.nbflow-liveview');
  if (!snap || c.querySelector('.widget-hprogress')) return null;
  const details = snap.querySelector('details');
  const pres = [...snap.children].filter((e) => e.tagName === 'PRE');
  const shown = pres.length ? pres[pres.length - 1].innerText.replace(/\\n+$/, '') : '';
  return {details: !!details, open: !!details && details.open,
          summary: details ? details.querySelector('summary').innerText : '',
          folded: details ? details.querySelector('pre').textContent.replace(/\\n+$/, '')
            .split('\\n').length : 0,
          shown: shown ? shown.split('\\n').length : 0, last: shown.split('\\n').pop(),
          height: snap.getBoundingClientRect().height};
}"""


def test_show_all_says_what_it_shows_follows_new_lines_and_folds_at_the_end(lab: Lab) -> None:
    if lab.kind != "lab":
        pytest.skip("the same widgets in Notebook 7; JupyterLab is enough")
    name = "show-all.ipynb"
    write_notebook(lab, name, [DEFINE.replace("{NAME}", "showall"), FLOOD])
    with open_notebook(lab, name, "show-all") as page:
        run_cells(lab, page, 0, 2)
        wait_executed(page, [0, 1])
        page.wait_for_function(VIEW_HAS, arg=[1, "row 2005"], timeout=60 * MS)
        note = page.evaluate(OUTPUT, 1)["first"]
        lab.say(f"the note: {note!r}")
        claimed = re.fullmatch(r"… ([\d,]+) earlier items \(Show all shows all ([\d,]+)\)", note)
        assert claimed, note
        cell(page, 1).get_by_role("button", name="Show all").click()
        page.wait_for_function(VIEW_HAS, arg=[1, "row 0\n"], timeout=30 * MS)
        opened = page.evaluate(OUTPUT, 1)
        assert opened["first"] == "row 0" and opened["lines"] >= 2000, opened
        seen = opened["lines"]
        page.wait_for_function(VIEW_HAS, arg=[1, f"row {seen + 20}"], timeout=30 * MS)
        following = page.evaluate(OUTPUT, 1)
        shot = lab.artifacts / "show-all-live.png"
        cell(page, 1).screenshot(path=shot)
        keep_shot(shot, "item5-show-all-live-follows.png")
        lab.say(f"opened: {opened}; later: {following}")
        assert following["end_below"] <= 2, following  # its end in sight: it follows
        page.wait_for_function(STATIC, arg=1, timeout=60 * MS)
        static = page.evaluate(STATIC, 1)
        shot = lab.artifacts / "show-all-static.png"
        cell(page, 1).screenshot(path=shot)
        keep_shot(shot, "item5-static-folded.png")
    lab.say(f"static: {static}")
    assert static["details"] and not static["open"], static  # folded
    assert static["shown"] == 20 and static["last"] == "row 2079", static
    numbers = re.fullmatch(
        r"Show ([\d,]+) earlier items \(([\d,]+) earlier items before them not kept\)",
        static["summary"],
    )
    assert numbers, static
    folded, dropped = (int(n.replace(",", "")) for n in numbers.groups())
    assert folded == static["folded"] == 980 and folded + dropped + 20 == 2080, static
