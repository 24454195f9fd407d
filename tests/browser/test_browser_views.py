"""Browser tests of the live view's static rendering and of a view whose kernel restarted.

In JupyterLab and Notebook 7, with the parts of :mod:`tests.support.browser`:

- a view's reader thread replaces the view's own cell output by a static rendering (HTML, no
  widget) when the workflow ends, whether another cell runs at that moment or none; the other
  cells' outputs are untouched; saved, the notebook holds that rendering;
- after a kernel restart, a view that was live no longer looks alive: no Cancel button, and a
  line saying it no longer updates (ipywidgets marks the widgets of a restarted kernel
  disconnected; the view's CSS does the rest).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import browser
from tests.support.browser import Lab, cell, open_notebook, run_cells, wait_executed, write_notebook
from tests.support.helpers import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MS = 1000

DEFINE = (
    "import time\n"
    "import nbflow\n"
    "from nbflow.notebook import LiveView\n"
    "nbflow.configure(f'{NAME}.duckdb')\n"
    "@nbflow.workflow()\n"
    "def slow(n, pause):\n"
    "    for i in range(n):\n"
    "        time.sleep(pause)\n"
    "        nbflow.progress(i + 1, n)\n"
    "        nbflow.write_stream('rows', f'row {i}')\n"
    "    return n\n"
)

STATIC = """(i) => {
  const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
  return !!c && !!c.querySelector('.nbflow-liveview') && !c.querySelector('.widget-hprogress');
}"""


@pytest.fixture(scope="module", params=["lab", "notebook"])
def lab(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Lab]:
    with browser.serve(request.param, tmp_path_factory, request) as served:
        yield served


def test_the_reader_thread_leaves_a_static_rendering_in_its_own_cell(lab: Lab) -> None:
    name = "static-view.ipynb"
    write_notebook(
        lab,
        name,
        [
            DEFINE.replace("{NAME}", "static"),
            "v1 = LiveView.follow(nbflow.start(slow, 8, 0.25).workflow_id, ['progress', 'rows'])",
            "time.sleep(6)\nprint('waited')",  # the view of cell 1 ends while this cell runs
            "v2 = LiveView.follow(nbflow.start(slow, 6, 0.25).workflow_id)",  # ends, no cell runs
        ],
    )
    with open_notebook(lab, name, "static-view") as page:
        run_cells(lab, page, 0, 4)
        wait_executed(page, [0, 1, 2, 3], timeout=90)
        for index in (1, 3):
            page.wait_for_function(STATIC, arg=index, timeout=30 * MS)
            view = cell(page, index).locator(".nbflow-liveview")
            text = view.inner_text()
            assert "succeeded" in text and "100%" in text, text
            assert not cell(page, index).locator("button", has_text="Cancel").count()
        assert "row 7" in cell(page, 1).locator(".nbflow-liveview").inner_text()
        assert cell(page, 2).locator(".jp-OutputArea").inner_text().strip() == "waited"
        assert not cell(page, 2).locator(".nbflow-liveview").count()
        page.screenshot(path=lab.artifacts / f"static-view-{lab.title}.png", full_page=True)
        saved = browser.save_notebook(lab, page, name)
        browser.shut_kernel_down(lab, page)
    for index in (1, 3):
        data, kept = [o["data"] for o in saved["cells"][index]["outputs"] if "data" in o]
        assert "application/vnd.jupyter.widget-view+json" not in data, data
        assert "nbflow-saved-done" in "".join(kept["text/html"])  # emptied at the end
        assert "nbflow-liveview" in "".join(data["text/html"])


REPLACE_OLD = (  # after the restart: try to update the old kernel's display id
    "from pathlib import Path\n"
    "from IPython.display import HTML, update_display\n"
    "update_display(HTML('<b class=\"replaced\">replaced</b>'), "
    "display_id=Path('display-id.txt').read_text())\n"
    "print('sent')"
)


def test_a_view_whose_kernel_restarted_does_not_look_alive(lab: Lab) -> None:
    """Its Cancel button goes, a line says it no longer updates, the header says "kernel
    stopped". A new kernel cannot reach the old view's output: JupyterLab forgets display ids at
    a restart (an ``update_display`` of the old id from the new kernel changes nothing)."""
    name = "restart-view.ipynb"
    follow = (
        "from pathlib import Path\n"
        "v = LiveView.follow(nbflow.start(slow, 400, 0.25).workflow_id)\n"
        "_ = Path('display-id.txt').write_text(v.renderer.display_id)"
    )
    write_notebook(lab, name, [DEFINE.replace("{NAME}", "restart"), follow, REPLACE_OLD])
    with open_notebook(lab, name, "restart-view") as page:
        run_cells(lab, page, 0, 2)
        view = cell(page, 1)
        cancel = view.locator("button.nbflow-cancel")
        cancel.wait_for(state="visible", timeout=60 * MS)
        stale = view.locator(".nbflow-stale")
        assert not stale.is_visible()
        browser.restart_kernel(lab, page, name)
        wait_until(lambda: not cancel.is_visible(), timeout=30)
        assert stale.is_visible(), view.inner_text()
        assert "no longer updates" in stale.inner_text()
        header = view.locator(".widget-html").first.inner_text()
        assert "kernel stopped" in header and "running" not in header, header
        run_cells(lab, page, 2)
        wait_executed(page, [2])
        assert "sent" in cell(page, 2).locator(".jp-OutputArea").inner_text()
        assert not page.locator(".replaced").count()  # neither in the old cell nor elsewhere
        assert stale.is_visible()
        page.screenshot(path=lab.artifacts / f"restart-view-{lab.title}.png", full_page=True)
