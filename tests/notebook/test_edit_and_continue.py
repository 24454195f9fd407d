"""Edit and continue in a real kernel: a launch notices that the code changed since its run.

Each test drives one real ipykernel kernel through jupyter_client (:mod:`tests.support.kernels`,
as :mod:`tests.notebook.test_launch` does) on a DuckDB file of its own (``NBFLOW_DATABASE``). Every
step appends a line to a side-effect file, so the test counts what really ran; a report cell
prints, as JSON, what the launch found, the result, and which checkpoints of the new run were
taken from the old one (``StepInfo.cached_from``).

- A 100-step pipeline fails at step 41; the cell that defines ``process`` (and the helper that
  made its input wrong) is fixed and run again; the same launch runs the call again as
  ``<id>.2``: the 40 calls before the failure are taken from the first run, the other 60 run once.
  ``on_change="replay"`` shows the failed run instead. After a kernel restart the same cells run
  nothing: the launch shows the newest run.
- ``fetch`` then ``parse`` for every item: ``parse`` is fixed and every ``parse`` runs again,
  while no ``fetch`` does. Then a comment and a docstring are edited: nothing runs, and the launch
  shows the finished run.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.notebook.test_launch import Kernel, ok
from tests.support.kernels import venv_kernel

pytestmark = pytest.mark.kernel

SETUP = """\
import collections
import json

import nbflow
from nbflow.notebook import launch

SIDE = {side!r}


def note(what, item):
    with open(SIDE, "a") as f:
        f.write(f"{{what}} {{item}}\\n")
"""

# -- a. a 100-step pipeline that fails at step 41 --------------------------------------------------

PROCESS = """\
def prepare(i):
    return None if i == 40 else f"item {i}"   # the bug: item 40 lost its text


@nbflow.step
def process(i, text):
    note("process", i)
    return len(text.upper())                   # raises at i == 40 (step 41)
"""

PROCESS_FIXED = """\
def prepare(i):
    return f"item {i}"


@nbflow.step
def process(i, text):
    note("process", i)
    return len(text.upper())                   # raises at i == 40 (step 41)
"""

HUNDRED = """\
@nbflow.workflow(name="hundred")
def hundred(n):
    total = 0
    for i in nbflow.track(range(n)):
        total += process(i, prepare(i))
    return total
"""

# -- b, c. fetch then parse ------------------------------------------------------------------------

FETCH = """\
@nbflow.step
def fetch(i):
    note("fetch", i)
    return f"<p>page {i}</p>"
"""

PARSE = """\
@nbflow.step
def parse(page):
    note("parse", page)
    return page.removeprefix("<p>")
"""

PARSE_FIXED = """\
@nbflow.step
def parse(page):
    note("parse", page)
    return page.removeprefix("<p>").removesuffix("</p>")
"""

PARSE_COMMENTED = '''\
@nbflow.step
def parse(page):
    """The text of a page: its paragraph without the tags."""

    note("parse", page)   # one line per call: the test counts them
    # strip the opening and the closing tag
    return page.removeprefix("<p>").removesuffix(  "</p>"  )
'''

CRAWL = """\
@nbflow.workflow(name="crawl")
def crawl(n):
    return [parse(fetch(i)) for i in range(n)]
"""

CRAWL_COMMENTED = '''\
@nbflow.workflow(name="crawl")
def crawl(n):
    """Fetch and parse n pages."""
    # one fetch and one parse per page
    return [parse(fetch(i))
            for i in range(n)]
'''

# -- the report of a launch ------------------------------------------------------------------------

REPORT = """\
try:
    result = handle.result(timeout=60)
except Exception as exc:
    result = type(exc).__name__
assert handle.view.wait(30), "the view did not finish"
steps = [s for s in nbflow.list_steps(handle.workflow_id) if s.code is not None]
print(json.dumps({
    "id": handle.workflow_id,
    "state": handle.previous.state,
    "result": result,
    "reused": collections.Counter(s.name for s in steps if s.cached_from is not None),
    "ran": collections.Counter(s.name for s in steps if s.cached_from is None),
    "reused_from": sorted({s.cached_from for s in steps if s.cached_from is not None}),
}))
"""


class Notebook(Kernel):
    """A real kernel whose cells also report the text of the displays they updated."""

    def cell(self, code: str, timeout: float = 90) -> dict[str, Any]:
        """Run one cell (it must not raise): see :meth:`Kernel.run`."""
        return ok(self.run(code, timeout))

    def report(self) -> tuple[dict[str, Any], str]:
        """What :data:`REPORT` prints about ``handle``, and the text of its view's last
        rendering (the view sends it again at the next cell, where every client sees it)."""
        reported = self.cell(REPORT)
        after = self.cell("pass")
        views = [t for t in reported["texts"] + after["texts"] if t.startswith("nbflow view")]
        return json.loads(reported["stdout"].splitlines()[-1]), views[-1] if views else ""


@pytest.fixture
def notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Notebook]:
    """A real kernel on a DuckDB file of its own, set up with :data:`SETUP`."""
    venv_kernel(tmp_path, monkeypatch)
    monkeypatch.setenv("NBFLOW_DATABASE", str(tmp_path / "edit.duckdb"))
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "edit.ipynb"))
    kernel = Notebook(tmp_path)
    try:
        kernel.cell(SETUP.format(side=str(tmp_path / "side.txt")))
        yield kernel
    finally:
        kernel.stop(now=True)


def ran(side: Path) -> collections.Counter[str]:
    """How often each call ran: ``"process 7"`` → its count."""
    lines = side.read_text().splitlines() if side.exists() else []
    return collections.Counter(lines)


def changed_line(what: str, old: str) -> str:
    return (
        f"nbflow: {what} changed since {old} ran; running it again as {old}.2, reusing every "
        "step whose code and arguments are the same.\n"
    )


def test_a_fixed_pipeline_runs_again_from_the_step_that_failed_and_not_after_a_restart(
    notebook: Notebook, tmp_path: Path
) -> None:
    side = tmp_path / "side.txt"
    total = sum(len(f"item {i}") for i in range(100))
    notebook.cell(PROCESS)
    notebook.cell(HUNDRED)
    notebook.cell("handle = launch(hundred, 100)")
    failed, _ = notebook.report()
    old = failed["id"]
    assert failed["result"] == "AttributeError" and failed["state"] == "new", failed
    assert ran(side) == {f"process {i}": 1 for i in range(41)}  # it failed at step 41

    notebook.cell(PROCESS_FIXED)  # the cell is fixed and run again
    replay = notebook.cell('handle = launch(hundred, 100, on_change="replay")')
    replayed, _ = notebook.report()
    assert f"nbflow: {old} already failed at" in replay["said"], replay
    assert replayed["id"] == old and replayed["state"] == "finished", replayed
    assert sum(ran(side).values()) == 41  # "replay": the failed run is shown, nothing ran

    again = notebook.cell("handle = launch(hundred, 100)")
    rerun, view = notebook.report()
    assert again["said"] == changed_line("the workflow's code", old), again
    assert rerun["id"] == f"{old}.2" and rerun["state"] == "changed", rerun
    assert rerun["result"] == total, rerun
    process = "__main__.process"
    assert rerun["reused"] == {process: 40} and rerun["ran"] == {process: 60}, rerun
    assert rerun["reused_from"] == [old], rerun
    counts = ran(side)
    assert counts == {f"process {i}": 2 if i == 40 else 1 for i in range(100)}, counts
    assert "the workflow's code changed since the last run: 60 calls run again, 40 reused" in view

    notebook.km.restart_kernel(now=True)  # a new process: the same cells, as Run All runs them
    notebook.client.wait_for_ready(timeout=60)
    notebook.cell(SETUP.format(side=str(side)))
    notebook.cell(PROCESS_FIXED)
    notebook.cell(HUNDRED)
    restarted = notebook.cell("handle = launch(hundred, 100)")
    shown, _ = notebook.report()
    assert f"nbflow: {old}.2 already succeeded at" in restarted["said"], restarted
    assert "showing that run without running it again" in restarted["said"], restarted
    assert shown["id"] == f"{old}.2" and shown["state"] == "finished", shown
    assert shown["result"] == total, shown
    assert ran(side) == counts  # nothing ran after the restart


def test_a_fixed_parse_runs_again_for_every_item_and_a_comment_runs_nothing(
    notebook: Notebook, tmp_path: Path
) -> None:
    side = tmp_path / "side.txt"
    pages = [f"page {i}" for i in range(10)]
    for cell in (FETCH, PARSE, CRAWL):
        notebook.cell(cell)
    notebook.cell("handle = launch(crawl, 10)")
    first, _ = notebook.report()
    old = first["id"]
    assert first["result"] == [f"{p}</p>" for p in pages], first  # the bug
    fetches = {f"fetch {i}": 1 for i in range(10)}
    assert ran(side) == {**fetches, **{f"parse <p>{p}</p>": 1 for p in pages}}

    notebook.cell(PARSE_FIXED)
    replay = notebook.cell('handle = launch(crawl, 10, on_change="replay")')
    replayed, _ = notebook.report()
    assert f"nbflow: {old} already succeeded at" in replay["said"], replay
    assert replayed["id"] == old and replayed["result"] == first["result"], replayed
    assert sum(ran(side).values()) == 20  # "replay": the old run is shown, nothing ran

    again = notebook.cell("handle = launch(crawl, 10)")
    rerun, view = notebook.report()
    assert again["said"] == changed_line("step 'parse'", old), again
    assert rerun["id"] == f"{old}.2" and rerun["state"] == "changed", rerun
    assert rerun["result"] == pages, rerun
    assert rerun["reused"] == {"__main__.fetch": 10}, rerun  # no fetch ran again
    assert rerun["ran"] == {"__main__.parse": 10}, rerun  # every parse did
    assert ran(side) == {**fetches, **{f"parse <p>{p}</p>": 2 for p in pages}}
    assert "step 'parse' changed since the last run: 10 calls run again, 10 reused" in view

    notebook.cell(PARSE_COMMENTED)  # comments, a docstring, blank lines, spaces: no change
    notebook.cell(CRAWL_COMMENTED)
    docs = notebook.cell("print(parse.__doc__ is not None, crawl.__doc__ is not None)")
    assert docs["stdout"].split() == ["True", "True"], docs  # (the edited cells did run)
    shown = notebook.cell("handle = launch(crawl, 10)")
    same, _ = notebook.report()
    assert f"nbflow: {old}.2 already succeeded at" in shown["said"], shown
    assert "changed since" not in shown["said"], shown
    assert same["id"] == f"{old}.2" and same["state"] == "finished", same
    assert same["result"] == pages, same
    assert sum(ran(side).values()) == 30  # nothing ran
