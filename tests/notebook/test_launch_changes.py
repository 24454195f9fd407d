"""``launch`` after the code changed: it runs the call again, reusing what still holds (in
process, on both stores; tests/notebook/test_edit_and_continue.py does it in a real kernel)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import nbflow
from nbflow.notebook._launch import launch
from tests.notebook.test_launch_identity import finished
from tests.support.notebook_code import CodeCells, Tally

pytestmark = pytest.mark.contract

PIPELINE = """
import nbflow

@nbflow.step
def fetch(url):
    calls(("fetch", url))
    return url * 2

@nbflow.step
def parse(page):
    calls(("parse", page))
    return page.upper()

@nbflow.workflow
def pipeline(urls):
    return [parse(fetch(u)) for u in urls]
"""


def said(captured: Any) -> str:
    """What a launch printed and the lines it said (shown as displays, ``nbflow.notebook._say``)."""
    return str(captured.stdout) + "".join(
        f"{o.data.get('text/plain', '')}\n" for o in captured.outputs
    )


@pytest.fixture
def nb() -> Iterator[CodeCells]:
    InteractiveShell.instance()
    cells = CodeCells(f"nblaunch_{uuid.uuid4().hex[:8]}", calls=Tally())
    cells.run(PIPELINE)
    yield cells
    cells.close()


def _count(nb: CodeCells, name: str) -> int:
    return sum(n for (step, _), n in nb.calls.counts.items() if step == name)


def test_a_changed_step_runs_again_and_the_rest_is_reused(
    rt: nbflow.Runtime, nb: CodeCells
) -> None:
    urls = ["a", "b", "c"]
    with capture_output():
        first = launch(nb.pipeline, urls, watch=None)
        assert finished(first) == ["AA", "BB", "CC"]
    nb.calls.clear()
    nb.run(PIPELINE.replace("return page.upper()", "return page.upper() + '!'"))
    with capture_output() as captured:
        again = launch(nb.pipeline, urls, watch=None)
        assert finished(again) == ["AA!", "BB!", "CC!"]
    assert again.previous.state == "changed"
    assert again.workflow_id == f"{first.workflow_id}.2"
    assert f"step '{nb.name}.parse' changed since {first.workflow_id} ran" in said(captured)
    assert (_count(nb, "fetch"), _count(nb, "parse")) == (0, 3)
    assert again.view.ending_note is not None
    note = again.view.ending_note()
    assert note is not None and note.endswith("since the last run: 3 calls run again, 3 reused")
    # Only a comment changes: the newest run is shown, nothing runs.
    nb.calls.clear()
    nb.run(PIPELINE.replace("return page.upper()", "return page.upper() + '!'  # louder"))
    with capture_output():
        shown = launch(nb.pipeline, urls, watch=None)
        finished(shown)
    assert shown.previous.state == "finished" and shown.workflow_id == again.workflow_id
    assert nb.calls.total == 0


def test_on_change_replay_keeps_the_old_run(rt: nbflow.Runtime, nb: CodeCells) -> None:
    with capture_output():
        first = launch(nb.pipeline, ["a"], watch=None)
        finished(first)
    nb.run(PIPELINE.replace("return url * 2", "return url * 3"))
    nb.calls.clear()
    with capture_output():
        shown = launch(nb.pipeline, ["a"], watch=None, on_change="replay")
        assert finished(shown) == ["AA"]
    assert shown.previous.state == "finished" and nb.calls.total == 0
    with pytest.raises(nbflow.InvalidValueError, match="on_change"):
        launch(nb.pipeline, ["a"], watch=None, on_change="sometimes")


def test_the_magic_start_runs_changed_code_again(rt: nbflow.Runtime, nb: CodeCells) -> None:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "nbflow")
    shell.user_ns["pipeline"] = nb.pipeline
    with capture_output():
        shell.run_line_magic("nbflow", "start pipeline(['a'])")
    first = nbflow.list_workflows()[0]
    nbflow.get_workflow(first.workflow_id).result(timeout=30)
    nb.run(PIPELINE.replace("return page.upper()", "return page.lower()"))
    shell.user_ns["pipeline"] = nb.pipeline
    with capture_output() as captured:
        shell.run_line_magic("nbflow", "start pipeline(['a'])")
    assert "running it again as" in said(captured)
    newest = nbflow.list_workflows()[0]
    assert newest.workflow_id == f"{first.workflow_id}.2"
    assert nbflow.get_workflow(newest.workflow_id).result(timeout=30) == ["aa"]


FLAKY = """
import os
import nbflow

@nbflow.step
def fetch(url):
    calls(("fetch", url))
    if os.path.exists(os.path.join(DOWN, url)):
        raise ConnectionError(f"cannot reach {url}")
    return url * 2

@nbflow.workflow
def pipeline(urls):
    return [fetch(u) for u in urls]
"""


def test_a_failed_run_is_resumed_by_launch_and_the_magic_unless_replay(
    rt: nbflow.Runtime, tmp_path: Path
) -> None:
    """Unchanged code: a launch (or ``%nbflow start``) of a failed run resumes it from the step
    that failed; ``on_change="replay"`` shows it, naming ``nbflow.resume`` first."""
    InteractiveShell.instance()
    (tmp_path / "b").touch()  # a site that is down (outside the code)
    nb = CodeCells(f"nbfail_{uuid.uuid4().hex[:8]}", calls=Tally(), DOWN=str(tmp_path))
    try:
        nb.run(FLAKY)
        with capture_output():
            first = launch(nb.pipeline, ["a", "b", "c"], watch=None)
            with pytest.raises(ConnectionError):
                finished(first)
        with capture_output() as captured:
            shown = launch(nb.pipeline, ["a", "b", "c"], watch=None, on_change="replay")
            with pytest.raises(ConnectionError):
                finished(shown)
        wid = first.workflow_id
        assert shown.previous.state == "finished" and nb.calls.total == 2
        assert (
            f"({'nbflow.resume(' + repr(wid) + ')'} re-runs only what failed; "
            "launch(..., rerun=True) runs it anew)." in said(captured)
        ), said(captured)
        (tmp_path / "b").unlink()  # the site is back
        with capture_output() as captured:
            resumed = launch(nb.pipeline, ["a", "b", "c"], watch=None)
            assert finished(resumed) == ["aa", "bb", "cc"]
        assert resumed.previous.state == "resumed" and resumed.workflow_id == wid
        assert "failed at" in said(captured) and "from the step that failed" in said(captured)
        assert nb.calls.counts == {("fetch", "a"): 1, ("fetch", "b"): 2, ("fetch", "c"): 1}

        (tmp_path / "d").touch()  # the magic does the same
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "nbflow")
        shell.user_ns["pipeline"] = nb.pipeline
        with capture_output():
            shell.run_line_magic("nbflow", "start pipeline(['d'])")
        failed = nbflow.list_workflows(limit=1)[0]
        with pytest.raises(ConnectionError):
            nbflow.get_workflow(failed.workflow_id).result(timeout=30)
        (tmp_path / "d").unlink()
        with capture_output() as captured:
            shell.run_line_magic("nbflow", "start pipeline(['d'])")
        assert "resuming it from the step that failed" in said(captured), said(captured)
        assert nbflow.get_workflow(failed.workflow_id).result(timeout=30) == ["dd"]
    finally:
        nb.close()
