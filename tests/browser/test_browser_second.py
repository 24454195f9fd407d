"""Real-browser test of issue 22, item 7: a second notebook on the database file of another.

In JupyterLab, ``first.ipynb`` opens ``shared.duckdb`` and runs a workflow; its kernel keeps the
file. ``second.ipynb``, open in another tab, points at the same file with ``%nbflow db`` and with
``nbflow.configure(...).list_workflows()``: each cell shows an error naming ``first.ipynb`` (the
notebook jupyter-server started the holding kernel for) and that kernel's id as the server knows
it, and saying what to do: use that
notebook, shut down its kernel, or PostgreSQL for several notebooks. The screenshot of the second
notebook goes to ``browser-artifacts/second-notebook.png``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.browser import (
    Lab,
    open_notebook,
    outputs_text,
    reporting,
    run_cells,
    serve,
    wait_executed,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    with serve("lab", tmp_path_factory, request) as lab:
        yield lab


@pytest.fixture
def lab(server: Lab, capsys: pytest.CaptureFixture[str]) -> Iterator[Lab]:
    with reporting(server, capsys) as lab:
        yield lab


FIRST = """\
import nbflow

nbflow.configure("shared.duckdb")

@nbflow.workflow(name="second_notebook.double")
def double(x):
    return 2 * x

print("first notebook: result", nbflow.start(double, 21).result(timeout=60))
"""

SECOND = [
    "%load_ext nbflow",
    "%nbflow db shared.duckdb",
    'import nbflow\nnbflow.configure("shared.duckdb").list_workflows()',
]


def test_a_second_notebook_is_told_which_notebook_holds_the_file(lab: Lab) -> None:
    write_notebook(lab, "first.ipynb", [FIRST])
    write_notebook(lab, "second.ipynb", SECOND)
    with open_notebook(lab, "first.ipynb", "second-first") as first:
        run_cells(lab, first, 0)
        wait_executed(first, [0])
        assert "first notebook: result 42" in outputs_text(first, 0)
        sessions = lab.api("GET", "/api/sessions") or []
        kernel = next(s["kernel"]["id"] for s in sessions if s["path"] == "first.ipynb")
        with open_notebook(lab, "second.ipynb", "second-second") as second:
            for index in range(len(SECOND)):  # one by one: an error stops a queued run
                run_cells(lab, second, index)
                wait_executed(second, [index])
            shot = lab.artifacts / "second-notebook.png"
            second.screenshot(path=shot, full_page=True)
            lab.say(f"screenshot: {shot}")
            holder = "first.ipynb"  # as seen from the second notebook's folder, beside it
            for index, starts in ((1, "UsageError: %nbflow db: "), (2, "DatabaseLockedError")):
                shown = outputs_text(second, index)
                lab.say(f"cell {index}: {shown!r}")
                assert starts in shown, shown
                assert f"in use by the notebook {holder!r} (kernel {kernel}, " in shown, shown
                assert "Use that notebook" in shown and "shut down its kernel" in shown, shown
                assert "cannot list its history either" in shown, shown
                assert "PostgreSQL" in shown, shown
