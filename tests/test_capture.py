"""Output capture: printed lines as unrecorded stream items, and the notebook's router.

The first part checks the core (``WorkflowContext.write_output``) on both stores: a line takes no
function id, a replay drops the body's lines the stream already holds, a step's lines are credited
to its attempt, and fork and resume keep a sensible stream. The second part runs real kernels
through nbclient: a launched workflow's prints, logging and tqdm go to its ``stdout`` stream and
to no other cell, and a resumed workflow does not print its replayed lines twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import nbflow
from nbflow import _context
from tests.helpers import Gate, interrupt, sql

OUT = "stdout"


def out(text: str) -> None:
    """Print ``text`` as the notebook's router does: one unrecorded line on ``stdout``."""
    ctx = _context.current()
    assert ctx is not None
    ctx.write_output(OUT, text)


def stream_rows(runtime: nbflow.Runtime, workflow_id: str) -> list[tuple[Any, ...]]:
    """``(value_json, function_id, attempt, is_end)`` of the ``stdout`` rows, in offset order."""
    return sql(
        runtime,
        'select value_json, function_id, attempt, is_end from streams where workflow_id = ? '
        'and key = ? order by "offset"',
        workflow_id,
        OUT,
    )


def lines(workflow_id: str) -> list[Any]:
    return list(nbflow.read_stream(workflow_id, OUT, timeout=10))


def step_ids(runtime: nbflow.Runtime, workflow_id: str) -> list[tuple[int, str]]:
    rows = sql(
        runtime,
        "select function_id, name from steps where workflow_id = ? order by function_id",
        workflow_id,
    )
    return [(int(r[0]), r[1]) for r in rows]


# -- the core: unrecorded lines ---------------------------------------------------------------


@pytest.mark.contract
def test_lines_take_no_position_and_steps_credit_their_attempt(rt: nbflow.Runtime) -> None:
    """A body line has neither function id nor attempt; a step's line has the step's; the steps'
    function ids are those of the same workflow printing nothing."""

    @nbflow.step(name="tests.capture.shout")
    def shout(text: str) -> str:
        out(f"step says {text}")
        return text

    @nbflow.workflow(name="tests.capture.printer")
    def printer(loud: bool) -> str:
        if loud:
            out("body 1")
        a = shout("a")
        nbflow.write_stream("other", a)
        if loud:
            out("body 2")
        return shout("b")

    loud = nbflow.start(printer, True)
    quiet = nbflow.start(printer, False)
    assert loud.result(timeout=10) == quiet.result(timeout=10) == "b"
    assert step_ids(rt, loud.workflow_id) == step_ids(rt, quiet.workflow_id)
    assert step_ids(rt, loud.workflow_id) == [
        (1, "tests.capture.shout"),
        (3, "tests.capture.shout"),
    ]
    assert lines(loud.workflow_id) == ["body 1", "step says a", "body 2", "step says b"]
    assert stream_rows(rt, loud.workflow_id) == [
        ('"body 1"', None, None, False),
        ('"step says a"', 1, 1, False),
        ('"body 2"', None, None, False),
        ('"step says b"', 3, 1, False),
        (None, None, None, True),
    ]


@pytest.mark.contract
def test_a_replay_drops_the_lines_the_body_printed_before(
    rt: nbflow.Runtime, database: str, gate: Callable[[], Gate]
) -> None:
    """Interrupted after lines printed both before and after its last checkpoint, a recovered
    workflow has each body line once; the step cut short prints again (at least once)."""
    g = gate()

    @nbflow.step(name="tests.capture.first")
    def first() -> int:
        return 1

    @nbflow.step(name="tests.capture.wait")
    def wait() -> None:
        out("waiting")
        g.wait()

    @nbflow.workflow(name="tests.capture.crashing")
    def crashing() -> None:
        out("before")
        first()
        out("after")
        wait()
        out("end")

    handle = nbflow.start(crashing)
    g.reached()
    interrupt(rt, g)
    nbflow.configure(database)
    [resumed] = nbflow.recover()
    resumed.result(timeout=10)
    assert lines(handle.workflow_id) == ["before", "after", "waiting", "waiting", "end"]


@pytest.mark.contract
def test_printing_on_or_off_never_changes_a_replay(
    rt: nbflow.Runtime, database: str, gate: Callable[[], Gate]
) -> None:
    """A workflow interrupted while printing is resumed by a process that prints nothing (no
    router): the same positions, no NondeterminismError."""
    g = gate()
    printing = {"on": True}

    @nbflow.step(name="tests.capture.add")
    def add(x: int) -> int:
        return x + 1

    @nbflow.step(name="tests.capture.block")
    def block() -> None:
        g.wait()

    @nbflow.workflow(name="tests.capture.toggled")
    def toggled() -> int:
        total = 0
        for i in range(3):
            if printing["on"]:
                out(f"line {i}")
            total += add(i)
        block()
        return total

    handle = nbflow.start(toggled)
    g.reached()
    interrupt(rt, g)
    printing["on"] = False
    nbflow.configure(database)
    [resumed] = nbflow.recover()
    assert resumed.result(timeout=10) == 6
    assert lines(handle.workflow_id) == ["line 0", "line 1", "line 2"]


@pytest.mark.contract
def test_a_fork_prints_its_body_again_and_keeps_the_copied_steps_lines(
    rt: nbflow.Runtime,
) -> None:
    """A fork holds no body line of its source (their positions are unknown): its replayed body
    prints them again, into its own stream; the lines of the steps it copies come with them."""

    @nbflow.step(name="tests.capture.s")
    def s(n: int) -> int:
        out(f"step {n}")
        return n

    @nbflow.workflow(name="tests.capture.forked")
    def forked() -> int:
        out("A")
        s(1)
        out("B")
        s(2)
        out("C")
        return 3

    source = nbflow.start(forked)
    source.result(timeout=10)
    assert lines(source.workflow_id) == ["A", "step 1", "B", "step 2", "C"]
    fork = nbflow.fork(source.workflow_id, from_step=2)
    assert fork.result(timeout=10) == 3
    assert lines(fork.workflow_id) == ["step 1", "A", "B", "step 2", "C"]
    assert lines(source.workflow_id) == ["A", "step 1", "B", "step 2", "C"]


@pytest.mark.contract
def test_resuming_a_failed_workflow_keeps_each_body_line_once(rt: nbflow.Runtime) -> None:
    """Resume runs a failed workflow on: its body's earlier lines are not printed twice; the step
    that failed prints again (its new attempt)."""
    broken = {"yes": True}

    @nbflow.step(name="tests.capture.fragile")
    def fragile() -> None:
        out("trying")
        if broken["yes"]:
            raise ValueError("broken")

    @nbflow.workflow(name="tests.capture.failing")
    def failing() -> None:
        out("start")
        fragile()
        out("done")

    handle = nbflow.start(failing)
    with pytest.raises(ValueError, match="broken"):
        handle.result(timeout=10)
    assert lines(handle.workflow_id) == ["start", "trying"]
    broken["yes"] = False
    nbflow.resume(handle.workflow_id).result(timeout=10)
    assert lines(handle.workflow_id) == ["start", "trying", "trying", "done"]
    assert [r[1:3] for r in stream_rows(rt, handle.workflow_id)][:4] == [
        (None, None),
        (1, 1),
        (1, 2),
        (None, None),
    ]


@pytest.mark.contract
def test_a_line_after_the_stream_closed_or_a_cancel_is_dropped(rt: nbflow.Runtime) -> None:
    """Printing never raises: a line on a closed stream, or after a cancel, is dropped."""

    @nbflow.workflow(name="tests.capture.closing")
    def closing() -> str:
        out("one")
        nbflow.close_stream(OUT)
        out("two")
        return "ok"

    handle = nbflow.start(closing)
    assert handle.result(timeout=10) == "ok"
    assert lines(handle.workflow_id) == ["one"]
