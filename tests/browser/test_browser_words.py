"""Browser tests of the words a person reads for a workflow's status, and of ``%nbflow steps``.

In JupyterLab and Notebook 7, with the parts of :mod:`tests.support.browser`:

- a ``WorkflowHandle`` shown as a cell's result says its status in the views' words, its name
  and its progress (``<WorkflowHandle '…' score_all: succeeded, 5/5>``), not only its id;
- ``%nbflow list --status failed`` is accepted (the views' word) and lists the failed workflow;
- ``%nbflow steps`` of a 40-step workflow numbers its steps from 1, shows each call's place
  among its step's calls and a short form of its argument, and folds the table with "… N more".

Screenshots go to ``browser-artifacts/`` (``handle-status-*.png``, ``steps-table-*.png``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import browser
from tests.support.browser import Lab, cell, open_notebook, run_cells, wait_executed, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DEFINE = (
    "import nbflow\n"
    "%load_ext nbflow\n"
    "nbflow.configure('words.duckdb')\n"
    "@nbflow.step()\n"
    "def score(city):\n"
    "    return len(city)\n"
    "@nbflow.workflow()\n"
    "def score_all(cities):\n"
    "    return nbflow.map(score, cities)\n"
    "@nbflow.workflow()\n"
    "def broken():\n"
    "    raise ValueError('no such city')\n"
)
HANDLE = "h = nbflow.start(score_all, ['Oslo', 'Lima', 'Rome', 'Kyiv', 'Bern'])\nh.result()\nh"
FAILED = (
    "import contextlib\n"
    "with contextlib.suppress(ValueError):\n"
    "    nbflow.start(broken).result()\n"
    "%nbflow list --status failed"
)
STEPS = (
    "w40 = nbflow.start(score_all, [f'city {i}' for i in range(40)])\n"
    "w40.result()\n"
    "%nbflow steps {w40.workflow_id}"
)


@pytest.fixture(scope="module", params=["lab", "notebook"])
def lab(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Lab]:
    with browser.serve(request.param, tmp_path_factory, request) as served:
        yield served


def test_a_handle_says_its_status_word_and_list_takes_the_views_words(lab: Lab) -> None:
    name = "words.ipynb"
    write_notebook(lab, name, [DEFINE, HANDLE, FAILED, STEPS])
    with open_notebook(lab, name, "words") as page:
        run_cells(lab, page, 0, 2)
        wait_executed(page, [0, 1], timeout=120)
        shown = cell(page, 1).locator(".jp-OutputArea").inner_text()
        cell(page, 1).screenshot(path=lab.artifacts / f"handle-status-{lab.title}.png")
        assert "WorkflowHandle" in shown and "score_all" in shown, shown
        assert "succeeded" in shown and "5/5" in shown, shown
        run_cells(lab, page, 2)
        wait_executed(page, [2], timeout=120)
        listed = cell(page, 2).locator(".jp-OutputArea").inner_text()
        cell(page, 2).screenshot(path=lab.artifacts / f"list-failed-{lab.title}.png")
        assert "UsageError" not in listed and "(failed)" in listed, listed
        assert "broken" in listed and "score_all" not in listed, listed
        run_cells(lab, page, 3)
        wait_executed(page, [3], timeout=120)
        steps = cell(page, 3).locator(".jp-OutputArea")
        cell(page, 3).screenshot(path=lab.artifacts / f"steps-table-{lab.title}.png")
        text = steps.inner_text()
        rows = steps.locator("tbody tr")
        first = rows.first.inner_text()
        assert first.split()[0] == "1", first  # a person's count, not the internal position
        assert "1 of 40" in first, first  # the first of the map's 40 calls of score
        assert "'city 0'" in first, first  # and its argument, the map's item, in short
        assert "more" in text and rows.count() < 30, text  # folded
        browser.shut_kernel_down(lab, page)
