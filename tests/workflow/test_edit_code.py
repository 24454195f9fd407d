"""Resumes that notice changed code, re-runs that reuse what still holds, and patches."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator

import pytest

import nbflow
from nbflow import Status
from tests.support.helpers import Gate, interrupt
from tests.support.notebook_code import CodeCells, Tally

pytestmark = pytest.mark.contract

PIPELINE = """
import nbflow

@nbflow.step
def fetch(url):
    calls(("fetch", url))
    return f"<p>{url}</p>"

@nbflow.step
def parse(page):
    calls(("parse", page))
    if page == broken:
        raise ValueError(f"cannot parse {page}")
    return page.removeprefix("<p>").removesuffix("</p>")

@nbflow.workflow
def pipeline(urls):
    rows = []
    for url in urls:
        row = parse(fetch(url))
        nbflow.write_stream("rows", row)
        rows.append(row)
    return rows
"""

FIXED_PARSE = """
@nbflow.step
def parse(page):
    calls(("parse", page))
    return page.removeprefix("<p>").removesuffix("</p>").upper()
"""


@pytest.fixture
def nb() -> Iterator[CodeCells]:
    cells = CodeCells(f"nbedit_{uuid.uuid4().hex[:8]}", calls=Tally(), broken=None)
    cells.run(PIPELINE)
    yield cells
    cells.close()


def _count(nb: CodeCells, name: str) -> int:
    return sum(n for (step, _), n in nb.calls.counts.items() if step == name)


def test_rerun_changed_reruns_the_changed_step_and_reuses_the_rest(
    rt: nbflow.Runtime, nb: CodeCells
) -> None:
    urls = [f"u{i}" for i in range(5)]
    with nbflow.set_workflow_id("edit-1"):
        assert nb.pipeline(urls) == urls
    nb.calls.clear()
    nb.run(FIXED_PARSE)
    handle = nbflow.resume("edit-1", rerun_changed=True)
    assert handle.workflow_id == "edit-1.2"
    assert handle.result() == [u.upper() for u in urls]
    assert (_count(nb, "fetch"), _count(nb, "parse")) == (0, 5)
    assert list(nbflow.read_stream("edit-1.2", "rows")) == [u.upper() for u in urls]
    steps = nbflow.list_steps("edit-1.2")
    assert [s.cached_from for s in steps if "fetch" in s.name] == ["edit-1"] * 5
    assert [s.cached_from for s in steps if "parse" in s.name] == [None] * 5
    assert rt.code_changes("edit-1").steps == (f"{nb.name}.parse",)
    # Nothing changed since edit-1.2: a resume with rerun_changed leaves it as it is.
    assert nbflow.resume("edit-1.2", rerun_changed=True).workflow_id == "edit-1.2"
    assert nbflow.list_workflows()[0].workflow_id == "edit-1.2"


def test_a_failed_run_fixed_keeps_the_checkpoints_before(rt: nbflow.Runtime, nb: CodeCells) -> None:
    """A pipeline fails at item 3; the step is fixed; the re-run keeps what came before."""
    nb.module.broken = "<p>u3</p>"
    urls = [f"u{i}" for i in range(6)]
    with nbflow.set_workflow_id("edit-2"), pytest.raises(ValueError, match="cannot parse"):
        nb.pipeline(urls)
    nb.calls.clear()
    nb.run(FIXED_PARSE)  # parse no longer raises
    handle = nbflow.resume("edit-2", rerun_changed=True)
    assert handle.result() == [u.upper() for u in urls]
    assert _count(nb, "fetch") == 2  # u4 and u5: never fetched before
    assert _count(nb, "parse") == 6


def test_comments_only_change_nothing(rt: nbflow.Runtime, nb: CodeCells) -> None:
    with nbflow.set_workflow_id("edit-3"):
        nb.pipeline(["a"])
    before = nbflow.fingerprint(nb.pipeline)
    nb.run(PIPELINE.replace("rows = []", "rows = []  # collected here\n    # one per url"))
    assert nbflow.fingerprint(nb.pipeline) == before
    assert not rt.code_changes("edit-3")
    assert nbflow.resume("edit-3", rerun_changed=True).workflow_id == "edit-3"


def test_a_plain_resume_replays_and_warns_once(
    rt: nbflow.Runtime, nb: CodeCells, caplog: pytest.LogCaptureFixture
) -> None:
    nb.module.broken = "<p>b</p>"
    with nbflow.set_workflow_id("edit-4"), pytest.raises(ValueError):
        nb.pipeline(["a", "b", "c"])
    nb.module.broken = None
    nb.run(PIPELINE.replace('f"<p>{url}</p>"', 'f"<p>{url.strip()}</p>"'))  # fetch changed
    nb.calls.clear()
    with caplog.at_level(logging.WARNING, logger="nbflow"):
        assert nbflow.resume("edit-4").result() == ["a", "b", "c"]
    warnings = [r.getMessage() for r in caplog.records if "code changed" in r.getMessage()]
    assert len(warnings) == 1
    assert "fetch" in warnings[0] and "rerun_changed=True" in warnings[0]
    assert "parse" not in warnings[0].split("since they ran:")[1].split(".")[0]


def test_a_changed_body_runs_what_it_calls_now(rt: nbflow.Runtime, nb: CodeCells) -> None:
    """The body calls something else now: the re-run simply runs it (no NondeterminismError)."""
    with nbflow.set_workflow_id("edit-5"):
        nb.pipeline(["a", "b"])
    nb.run(
        PIPELINE.replace(
            "row = parse(fetch(url))", "row = parse(fetch(url))\n        nbflow.run_step(len, row)"
        )
    )
    nb.calls.clear()
    handle = nbflow.resume("edit-5", rerun_changed=True)
    assert handle.result() == ["a", "b"]
    assert nb.calls.total == 0  # fetch and parse: all reused
    names = [s.name for s in nbflow.list_steps(handle.workflow_id)]
    assert names.count("builtins.len") == 2
    assert nbflow.get_workflow("edit-5").status() == Status.SUCCESS


def test_an_interrupted_run_is_superseded(
    rt: nbflow.Runtime, database: str, nb: CodeCells, gate: Callable[[], Gate]
) -> None:
    """Re-running an interrupted run cancels it: recover() never runs it too."""
    g = gate()
    nb.module.hold = g
    nb.run(
        PIPELINE.replace(
            '    calls(("parse", page))',
            "    calls((\"parse\", page))\n    if page == '<p>b</p>':\n        hold.wait()",
        )
    )
    with nbflow.set_workflow_id("edit-6"):
        nbflow.start(nb.pipeline, ["a", "b"])
    g.reached()
    interrupt(rt, g)
    nbflow.configure(database)
    nb.run(FIXED_PARSE)
    nb.calls.clear()
    handle = nbflow.resume("edit-6", rerun_changed=True)
    assert handle.workflow_id == "edit-6.2"
    assert handle.result() == ["A", "B"]
    assert _count(nb, "fetch") == 0  # a and b were fetched before the interruption
    assert nbflow.get_workflow("edit-6").status() == Status.CANCELLED
    assert nbflow.recover() == []


PATCHED = """
import nbflow

@nbflow.step
def one():
    calls("one")
    hold.wait()
    return 1

@nbflow.step
def two():
    calls("two")
    return 2

@nbflow.workflow
def patched_flow():
    a = one()
    if nbflow.patched("add-ten"):
        a += 10
    return a + two()
"""
UNPATCHED = PATCHED.replace('    if nbflow.patched("add-ten"):\n        a += 10\n', "")


def test_patched(rt: nbflow.Runtime, database: str, gate: Callable[[], Gate]) -> None:
    """New runs take a patch; runs that passed its place before it existed do not; runs that
    had not reached it yet do."""
    nb = CodeCells(f"nbpatch_{uuid.uuid4().hex[:8]}", calls=Tally())
    try:
        free = Gate()
        free.release.set()
        nb.module.hold = free
        nb.run(PATCHED)
        assert nb.patched_flow() == 13  # a new run takes the patch
        nb.run(UNPATCHED)
        with nbflow.set_workflow_id("passed"):
            assert nb.patched_flow() == 3  # ran to its end before the patch existed
        g = gate()
        nb.module.hold = g
        with nbflow.set_workflow_id("not-yet"):
            nbflow.start(nb.patched_flow)  # stops in one(), before the patch's place
        g.reached()
        interrupt(rt, g)
        rt = nbflow.configure(database)
        nb.module.hold = free
        nb.run(PATCHED)
        assert nbflow.resume("not-yet").result() == 13  # it had not reached the patch
        assert rt.fork("passed", 99).result() == 3  # replays all: the patch is not taken
        nb.run(PATCHED.replace('nbflow.patched("add-ten")', 'nbflow.deprecate_patch("add-ten")'))
        assert nb.patched_flow() == 13
        assert rt.fork("not-yet", 99).result() == 13  # recorded the patch: still understood
        assert nbflow.patched("anything") is True  # outside a workflow
        with pytest.raises(nbflow.InvalidValueError):
            nbflow.patched("")
    finally:
        nb.close()


def test_bad_input(rt: nbflow.Runtime, nb: CodeCells) -> None:
    with pytest.raises(nbflow.WorkflowNotFoundError):
        nbflow.resume("no-such-run", rerun_changed=True)
    from tests.support.helpers import sql

    sql(
        rt,
        "insert into workflows (workflow_id, name, status, inputs_json, created_at, updated_at) "
        "values ('ghost', 'tests.no_such_workflow', 'ERROR', '{\"args\":[],\"kwargs\":{}}', 1, 1)",
    )
    with pytest.raises(nbflow.FunctionNotRegisteredError):
        nbflow.resume("ghost", rerun_changed=True)
    assert nb.calls.total == 0
