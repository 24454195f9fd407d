"""Semantics of workflows, steps, ids, handles, cancel/resume/recover and history (DESIGN.md)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

import nbflow
from nbflow import Status
from tests.support.helpers import Gate, interrupt, nbflow_threads, sql, wait_until

pytestmark = pytest.mark.contract


class BoomError(Exception):
    """A picklable error raised by workflows under test."""


def workflow_threads() -> list[threading.Thread]:
    """The background threads that run workflows."""
    return [t for t in nbflow_threads() if t.name.startswith("nbflow-workflow")]


# -- workflows -------------------------------------------------------------------------------


def test_plain_call_runs_durably_and_returns(rt: nbflow.Runtime) -> None:
    """Calling a workflow runs it in this thread and records name, inputs, status and output."""
    ran_in: list[threading.Thread] = []

    @nbflow.workflow(name="tests.plain")
    def add(a: int, b: int = 0) -> dict[str, int]:
        ran_in.append(threading.current_thread())
        return {"sum": a + b}

    with nbflow.set_workflow_id("plain-1"):
        assert add(2, b=3) == {"sum": 5}
    assert ran_in == [threading.current_thread()]
    [info] = nbflow.list_workflows()
    assert (info.workflow_id, info.name, info.status) == ("plain-1", "tests.plain", Status.SUCCESS)
    [(inputs, output, status)] = sql(
        rt,
        "select inputs_json, output_json, status from workflows where workflow_id = ?",
        "plain-1",
    )
    assert json.loads(inputs) == {"args": [2], "kwargs": {"b": 3}}
    assert json.loads(output) == {"sum": 5}
    assert status == "SUCCESS"


def test_workflows_are_recorded_under_their_registered_name(rt: nbflow.Runtime) -> None:
    """A workflow's name is its module and qualified name, or the name= it was declared with."""

    @nbflow.workflow
    def default_named() -> None:
        return None

    @nbflow.workflow(name="etl")
    def explicitly_named() -> None:
        return None

    expected = (
        f"{__name__}.test_workflows_are_recorded_under_their_registered_name.<locals>.default_named"
    )
    assert default_named.name == expected
    default_named()
    explicitly_named()
    assert [w.name for w in nbflow.list_workflows()] == ["etl", expected]


def test_generated_ids_are_uuid4(rt: nbflow.Runtime) -> None:
    """A workflow started without an id gets a fresh uuid4 string."""

    @nbflow.workflow
    def noop() -> None:
        return None

    first, second = nbflow.start(noop), nbflow.start(noop)
    assert uuid.UUID(first.workflow_id).version == 4
    assert first.workflow_id != second.workflow_id
    assert first.result(timeout=10) is None and second.result(timeout=10) is None


def test_start_returns_at_once_and_result_waits(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    """start() returns while the workflow is still blocked; result() waits for its value."""
    g = gate()

    @nbflow.step(name="tests.start.wait")
    def wait() -> None:
        g.wait()

    @nbflow.workflow
    def slow() -> str:
        wait()
        return "finished"

    handle = nbflow.start(slow)
    g.reached()
    assert isinstance(handle, nbflow.WorkflowHandle)
    assert handle.status() == Status.PENDING
    assert threading.current_thread() not in workflow_threads()
    g.release.set()
    assert handle.result(timeout=10) == "finished"
    assert handle.status() == Status.SUCCESS
    assert nbflow.get_workflow(handle.workflow_id).result() == "finished"


def test_result_reraises_the_workflows_own_exception(rt: nbflow.Runtime) -> None:
    """result() and a plain call re-raise the very exception instance the workflow raised."""
    raised: list[BoomError] = []

    @nbflow.workflow
    def fails(tag: str) -> None:
        raised.append(BoomError(f"boom {tag}"))
        raise raised[-1]

    handle = nbflow.start(fails, "a")
    with pytest.raises(BoomError) as first:
        handle.result(timeout=10)
    assert first.value is raised[0]
    with pytest.raises(BoomError) as again:  # the workflow has surely ended by now
        handle.result(timeout=10)
    assert again.value is raised[0]
    with pytest.raises(BoomError) as called:
        fails("b")
    assert called.value is raised[1]
    assert handle.status() == Status.ERROR
    info = nbflow.list_workflows(status="ERROR", limit=1)[0]
    assert info.error == "BoomError: boom b"


def test_result_called_again_raises_with_the_same_traceback(rt: nbflow.Runtime) -> None:
    """Issue 18, defect 11: each result() re-raised the one exception object, so its traceback
    grew by the caller's frames on every call (three more each time)."""

    @nbflow.workflow(name="tests.result_again.fails")
    def fails() -> None:
        raise BoomError("once")

    def frames(call: Callable[[], Any]) -> list[str]:
        with pytest.raises(BoomError) as raised:
            call()
        return [f.name for f in raised.traceback]

    handle = nbflow.start(fails)
    first = frames(lambda: handle.result(timeout=10))
    assert [frames(lambda: handle.result(timeout=10)) for _ in range(3)] == [first] * 3
    called = frames(fails)
    assert [frames(fails) for _ in range(2)] == [called] * 2  # a plain call: a new run each time
    assert "fails" in first and "fails" in called  # the workflow's own frame is kept


def test_result_after_reopen_rebuilds_the_recorded_exception(
    rt: nbflow.Runtime, database: str
) -> None:
    """In a new runtime, result() raises the recorded exception with its type and message."""

    @nbflow.workflow
    def fails() -> None:
        raise BoomError("recorded", 7)

    handle = nbflow.start(fails)
    with pytest.raises(BoomError):
        handle.result(timeout=10)
    rt.close()
    nbflow.configure(database)
    with pytest.raises(BoomError) as info:
        nbflow.get_workflow(handle.workflow_id).result()
    assert info.value.args == ("recorded", 7)


def test_result_timeout_raises_wait_timeout_while_running(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    """result(timeout) raises WaitTimeoutError while the workflow runs; it goes on running."""
    g = gate()

    @nbflow.step(name="tests.timeout.wait")
    def wait() -> None:
        g.wait()

    @nbflow.workflow
    def slow() -> int:
        wait()
        return 1

    handle = nbflow.start(slow)
    g.reached()
    with pytest.raises(nbflow.WaitTimeoutError) as info:
        handle.result(timeout=0.01)
    assert isinstance(info.value, TimeoutError)
    assert handle.workflow_id in str(info.value)
    assert handle.status() == Status.PENDING
    g.release.set()
    assert handle.result(timeout=10) == 1


def test_existing_finished_id_never_runs_twice(rt: nbflow.Runtime) -> None:
    """set_workflow_id with a finished id returns its recorded outcome without running it."""
    runs: Counter[str] = Counter()

    @nbflow.workflow
    def counted(x: int) -> int:
        runs["ok"] += 1
        return x * 10

    @nbflow.workflow
    def failing() -> None:
        runs["failing"] += 1
        raise BoomError("once")

    with nbflow.set_workflow_id("fixed"):
        assert counted(1) == 10
    with nbflow.set_workflow_id("fixed"):
        assert counted(2) == 10  # the recorded result, not a new run with new inputs
    with nbflow.set_workflow_id("fixed"):
        assert nbflow.start(counted, 3).result(timeout=10) == 10
    for _ in range(2):
        with nbflow.set_workflow_id("fixed-error"), pytest.raises(BoomError):
            failing()
    assert runs == {"ok": 1, "failing": 1}
    assert [w.workflow_id for w in nbflow.list_workflows(name=counted.name)] == ["fixed"]


def test_same_id_started_from_two_threads_runs_once(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    """Two threads starting the same id at the same moment share one run."""
    g = gate()
    runs: Counter[str] = Counter()

    @nbflow.step(name="tests.concurrent.wait")
    def wait() -> None:
        g.wait()

    @nbflow.workflow
    def once() -> str:
        runs["body"] += 1
        wait()
        return "once"

    barrier = threading.Barrier(2)
    handles: list[nbflow.WorkflowHandle] = []

    def starter() -> None:
        barrier.wait(10)
        with nbflow.set_workflow_id("shared"):
            handles.append(nbflow.start(once))

    threads = [threading.Thread(target=starter) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    g.reached()
    g.release.set()
    assert [h.workflow_id for h in handles] == ["shared", "shared"]
    assert [h.result(timeout=10) for h in handles] == ["once", "once"]
    assert runs["body"] == 1
    assert g.calls == 1


def test_same_id_called_from_two_threads_runs_once(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    """A plain call with the id of a workflow running in another thread waits for its result."""
    g = gate()
    runs: Counter[str] = Counter()
    results: list[str] = []

    @nbflow.step(name="tests.concurrent-call.wait")
    def wait() -> None:
        g.wait()

    @nbflow.workflow
    def once() -> str:
        runs["body"] += 1
        wait()
        return "once"

    def caller() -> None:
        with nbflow.set_workflow_id("shared-call"):
            results.append(once())

    first = threading.Thread(target=caller)
    first.start()
    g.reached()
    second = threading.Thread(target=caller)
    second.start()
    g.release.set()
    first.join(10)
    second.join(10)
    assert results == ["once", "once"]
    assert runs["body"] == 1


def test_set_workflow_id_names_only_the_next_workflow(rt: nbflow.Runtime) -> None:
    """Inside set_workflow_id, the first workflow gets the id and the next one a fresh id."""

    @nbflow.workflow
    def noop() -> None:
        return None

    with nbflow.set_workflow_id("named"):
        first = nbflow.start(noop)
        second = nbflow.start(noop)
    assert first.workflow_id == "named"
    assert second.workflow_id != "named"
    first.result(timeout=10)
    second.result(timeout=10)


def test_current_workflow_id_inside_and_outside(rt: nbflow.Runtime) -> None:
    """current_workflow_id is None outside, the id in a body or step, the child's id in a child."""
    seen: dict[str, str | None] = {}

    @nbflow.step
    def in_step() -> str | None:
        return nbflow.current_workflow_id()

    @nbflow.workflow
    def child() -> str | None:
        seen["child"] = nbflow.current_workflow_id()
        return seen["child"]

    @nbflow.workflow
    def parent() -> None:
        seen["body"] = nbflow.current_workflow_id()
        seen["step"] = in_step()
        child()
        seen["after child"] = nbflow.current_workflow_id()

    assert nbflow.current_workflow_id() is None
    with nbflow.set_workflow_id("cur"):
        parent()
    assert nbflow.current_workflow_id() is None
    assert seen == {"body": "cur", "step": "cur", "child": "cur-2", "after child": "cur"}


def test_child_workflow_called_from_a_workflow(rt: nbflow.Runtime) -> None:
    """A child workflow runs durably with its own id, records its parent, and is a step of it."""

    @nbflow.workflow(name="tests.child")
    def child(x: int) -> int:
        return x * 2

    @nbflow.workflow(name="tests.parent")
    def parent(x: int) -> int:
        return child(x) + child(x + 1)

    handle = nbflow.start(parent, 5)
    assert handle.result(timeout=10) == 10 + 12
    wid = handle.workflow_id
    children = nbflow.list_workflows(name="tests.child")
    assert {c.parent_id for c in children} == {wid}
    assert {c.status for c in children} == {Status.SUCCESS}
    assert [s.name for s in nbflow.list_steps(wid)] == ["tests.child", "tests.child"]
    child_ids = {c.workflow_id for c in children}
    assert len(child_ids) == 2 and wid not in child_ids
    assert [nbflow.get_workflow(c).result() for c in sorted(child_ids)] == [10, 12]


def test_child_workflow_is_not_rerun_when_its_parent_replays(
    rt: nbflow.Runtime, database: str, gate: Callable[[], Gate]
) -> None:
    """A parent recovered after an interruption gets its finished child's recorded result."""
    g = gate()
    runs: Counter[str] = Counter()

    @nbflow.step(name="tests.child-replay.wait")
    def wait() -> None:
        g.wait()

    @nbflow.workflow(name="tests.child-replay.child")
    def child() -> str:
        runs["child"] += 1
        return f"child run {runs['child']}"

    @nbflow.workflow(name="tests.child-replay.parent")
    def parent() -> str:
        got = child()
        wait()
        return got

    handle = nbflow.start(parent)
    g.reached()
    interrupt(rt, g)
    nbflow.configure(database)
    [resumed] = nbflow.recover()
    assert resumed.workflow_id == handle.workflow_id
    assert resumed.result(timeout=10) == "child run 1"
    assert runs["child"] == 1


def test_start_needs_a_declared_workflow(rt: nbflow.Runtime) -> None:
    """start() on a plain function raises a TypeError that says to use @nbflow.workflow."""

    def plain() -> None:
        return None

    with pytest.raises(TypeError, match=r"@nbflow\.workflow"):
        nbflow.start(plain)
    assert nbflow.list_workflows() == []


def test_unserializable_inputs_raise_and_write_nothing(rt: nbflow.Runtime) -> None:
    """Inputs that cannot be stored raise SerializationError; nothing is recorded or run."""
    runs: Counter[str] = Counter()

    @nbflow.workflow
    def takes(value: Any) -> None:
        runs["body"] += 1

    with pytest.raises(nbflow.SerializationError) as started:
        nbflow.start(takes, threading.Lock())
    assert isinstance(started.value, TypeError)
    with nbflow.set_workflow_id("bad-input"), pytest.raises(nbflow.SerializationError):
        takes(lambda: None)
    assert runs["body"] == 0
    rt.flush()
    assert sql(rt, "select count(*) from workflows") == [(0,)]
    with pytest.raises(nbflow.WorkflowNotFoundError):
        nbflow.get_workflow("bad-input")


def test_unserializable_result_fails_the_workflow(rt: nbflow.Runtime) -> None:
    """A result that cannot be stored ends the workflow in ERROR with a SerializationError."""

    @nbflow.workflow
    def returns_lock() -> Any:
        return threading.Lock()

    handle = nbflow.start(returns_lock)
    with pytest.raises(nbflow.SerializationError):
        handle.result(timeout=10)
    assert handle.status() == Status.ERROR


# -- steps -----------------------------------------------------------------------------------


def test_recorded_steps_are_not_rerun_after_an_interruption(
    rt: nbflow.Runtime, database: str, gate: Callable[[], Gate]
) -> None:
    """After an interruption, recovery returns recorded step outputs and runs only the rest."""
    g = gate()
    runs: Counter[str] = Counter()

    @nbflow.step(name="tests.replay.token")
    def token() -> str:
        runs["token"] += 1
        return uuid.uuid4().hex

    @nbflow.step(name="tests.replay.wait")
    def wait() -> None:
        g.wait()

    @nbflow.step(name="tests.replay.last")
    def last(value: str) -> str:
        runs["last"] += 1
        return value.upper()

    @nbflow.workflow(name="tests.replay")
    def pipeline() -> list[str]:
        first = token()
        wait()
        return [first, last(first)]

    handle = nbflow.start(pipeline)
    g.reached()
    interrupt(rt, g)
    assert runs == {"token": 1}
    nbflow.configure(database)
    assert nbflow.get_workflow(handle.workflow_id).status() == Status.PENDING
    [resumed] = nbflow.recover()
    first, upper = resumed.result(timeout=10)
    assert upper == first.upper()
    assert runs == {"token": 1, "last": 1}
    assert g.calls == 2  # the interrupted step had no checkpoint: it ran again
    steps = nbflow.list_steps(handle.workflow_id)
    assert [s.name for s in steps] == [
        "tests.replay.token",
        "tests.replay.wait",
        "tests.replay.last",
    ]
    assert [s.function_id for s in steps] == [1, 2, 3]
    assert resumed.status() == Status.SUCCESS


def test_step_retries_until_it_succeeds(rt: nbflow.Runtime) -> None:
    """A step with retries runs again after failures; its attempts are recorded."""
    calls: Counter[str] = Counter()

    @nbflow.step(name="tests.retry.flaky", retries=3, backoff=1.0, interval=0.0)
    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise OSError(f"try {calls['n']}")
        return "ok"

    @nbflow.workflow
    def wf() -> str:
        return flaky()

    handle = nbflow.start(wf)
    assert handle.result(timeout=10) == "ok"
    [info] = nbflow.list_steps(handle.workflow_id)
    assert (info.name, info.status, info.attempts, info.error) == (
        "tests.retry.flaky",
        "SUCCESS",
        3,
        None,
    )


def test_step_retries_exhausted_records_and_raises_the_last_error(rt: nbflow.Runtime) -> None:
    """When every attempt fails, the last error is recorded and re-raised to the workflow."""
    calls: Counter[str] = Counter()

    @nbflow.step(name="tests.retry.broken", retries=2, backoff=2.0, interval=0.0)
    def broken() -> None:
        calls["n"] += 1
        raise ValueError(f"try {calls['n']}")

    @nbflow.workflow
    def wf() -> None:
        broken()

    handle = nbflow.start(wf)
    with pytest.raises(ValueError, match="try 3"):
        handle.result(timeout=10)
    assert calls["n"] == 3
    [info] = nbflow.list_steps(handle.workflow_id)
    assert (info.status, info.attempts, info.error) == ("ERROR", 3, "ValueError: try 3")


def test_step_options_are_validated() -> None:
    """@step refuses negative retries, a backoff below 1 and a negative interval."""
    for options in ({"retries": -1}, {"backoff": 0.5}, {"interval": -1.0}):
        with pytest.raises(ValueError):
            nbflow.step(**options)(lambda: None)  # type: ignore[call-overload]


def test_cancel_cuts_a_retry_backoff_short(rt: nbflow.Runtime) -> None:
    """Cancelling a workflow that waits out a long backoff stops it without waiting."""
    failed = threading.Event()

    @nbflow.step(name="tests.retry.down", retries=5, interval=600.0)
    def down() -> None:
        failed.set()
        raise ConnectionError("down")

    @nbflow.workflow
    def wf() -> None:
        down()

    handle = nbflow.start(wf)
    assert failed.wait(10)
    handle.cancel()
    with pytest.raises(nbflow.WorkflowCancelledError):
        handle.result(timeout=10)
    assert handle.status() == Status.CANCELLED


def test_step_errors_are_replayed_without_running(
    rt: nbflow.Runtime, database: str, gate: Callable[[], Gate]
) -> None:
    """A recorded step error is raised again on replay, and the step does not run again."""
    g = gate()
    calls: Counter[str] = Counter()
    seen: list[str] = []

    @nbflow.step(name="tests.step-error.fail")
    def fail() -> None:
        calls["fail"] += 1
        raise ValueError("bad input 7")

    @nbflow.step(name="tests.step-error.wait")
    def wait() -> None:
        g.wait()

    @nbflow.workflow(name="tests.step-error")
    def wf() -> str:
        try:
            fail()
        except ValueError as exc:
            seen.append(f"{type(exc).__name__}: {exc}")
        wait()
        return seen[-1]

    handle = nbflow.start(wf)
    g.reached()
    interrupt(rt, g)
    nbflow.configure(database)
    [resumed] = nbflow.recover()
    assert resumed.result(timeout=10) == "ValueError: bad input 7"
    assert calls["fail"] == 1
    assert seen == ["ValueError: bad input 7"] * 2
    first = nbflow.list_steps(handle.workflow_id)[0]
    assert (first.status, first.error) == ("ERROR", "ValueError: bad input 7")


def test_replay_calling_a_different_step_raises_nondeterminism(
    rt: nbflow.Runtime, database: str, gate: Callable[[], Gate]
) -> None:
    """A replay that calls another step at a recorded position raises NondeterminismError."""
    g = gate()

    @nbflow.step(name="tests.nd.alpha")
    def alpha() -> int:
        return 1

    @nbflow.step(name="tests.nd.beta")
    def beta() -> int:
        return 2

    @nbflow.step(name="tests.nd.wait")
    def wait() -> None:
        g.wait()

    @nbflow.workflow(name="tests.nd")
    def version_1() -> int:
        alpha()
        wait()
        return 1

    with nbflow.set_workflow_id("nd"):
        nbflow.start(version_1)
    g.reached()
    interrupt(rt, g)

    @nbflow.workflow(name="tests.nd")  # the notebook cell was edited and run again
    def version_2() -> int:
        beta()
        wait()
        return 2

    nbflow.configure(database)
    [resumed] = nbflow.recover()
    with pytest.raises(nbflow.NondeterminismError) as info:
        resumed.result(timeout=10)
    err = info.value
    assert "tests.nd.alpha" in str(err) and "tests.nd.beta" in str(err)
    assert (err.workflow_id, err.function_id) == ("nd", 1)
    assert "tests.nd.alpha" in err.recorded and "tests.nd.beta" in err.called
    assert resumed.status() == Status.ERROR


def test_run_step_runs_any_callable_as_a_step(rt: nbflow.Runtime) -> None:
    """run_step checkpoints builtins, lambdas, methods, partials, callable objects and steps."""

    class Scale:
        def __init__(self, factor: int) -> None:
            self.factor = factor

        def __call__(self, x: int) -> int:
            return x * self.factor

        def twice(self, x: int) -> int:
            return 2 * x

    @nbflow.step(name="tests.run-step.declared")
    def declared(x: int) -> int:
        return x + 100

    @nbflow.workflow
    def wf() -> list[int]:
        return [
            nbflow.run_step(len, [1, 2, 3]),
            nbflow.run_step(lambda x, y=0: x + y, 1, y=2),
            nbflow.run_step(Scale(3).twice, 5),
            nbflow.run_step(functools.partial(pow, 2), 5),
            nbflow.run_step(Scale(4), 2),
            nbflow.run_step(declared, 1),
        ]

    handle = nbflow.start(wf)
    assert handle.result(timeout=10) == [3, 3, 10, 32, 8, 101]
    steps = nbflow.list_steps(handle.workflow_id)
    assert [s.function_id for s in steps] == [1, 2, 3, 4, 5, 6]
    assert {s.status for s in steps} == {"SUCCESS"}
    assert steps[0].name == "builtins.len"
    assert steps[5].name == "tests.run-step.declared"


def test_run_step_with_a_callable_object_replays(
    rt: nbflow.Runtime, database: str, gate: Callable[[], Gate]
) -> None:
    """A callable object or partial used with run_step keeps a stable step name across replays."""
    g = gate()
    keep: list[Any] = []  # keeps the first run's objects alive: the replay's get new addresses

    class Adder:
        def __call__(self, x: int) -> int:
            return x + 1

    @nbflow.step(name="tests.callable-replay.wait")
    def wait() -> None:
        g.wait()

    @nbflow.workflow(name="tests.callable-replay")
    def wf() -> list[int]:
        adder, partial = Adder(), functools.partial(pow, 3)
        keep.extend([adder, partial])
        got = [nbflow.run_step(adder, 1), nbflow.run_step(partial, 2)]
        wait()
        return got

    nbflow.start(wf)
    g.reached()
    interrupt(rt, g)
    nbflow.configure(database)
    [resumed] = nbflow.recover()
    assert resumed.result(timeout=10) == [2, 9]


def test_steps_outside_a_workflow_are_plain_calls(rt: nbflow.Runtime) -> None:
    """Outside a workflow a step, or run_step, is a plain call and records nothing."""
    calls: Counter[str] = Counter()

    @nbflow.step(retries=3)
    def plain(x: int) -> int:
        calls["plain"] += 1
        return x + 1

    assert plain(1) == 2
    assert plain(1) == 2
    assert nbflow.run_step(plain, 5) == 6
    assert calls["plain"] == 3
    rt.flush()
    assert nbflow.list_workflows() == []
    assert sql(rt, "select count(*) from steps") == [(0,)]


def test_nested_steps_are_plain_calls(rt: nbflow.Runtime) -> None:
    """A step called inside a step runs as a plain call: only the outer step is recorded."""
    calls: Counter[str] = Counter()

    @nbflow.step(name="tests.nested.inner")
    def inner(x: int) -> int:
        calls["inner"] += 1
        return x * 2

    @nbflow.step(name="tests.nested.outer")
    def outer(x: int) -> int:
        return inner(x) + nbflow.run_step(inner, x)

    @nbflow.workflow
    def wf() -> int:
        return outer(3)

    handle = nbflow.start(wf)
    assert handle.result(timeout=10) == 12
    assert calls["inner"] == 2
    assert [s.name for s in nbflow.list_steps(handle.workflow_id)] == ["tests.nested.outer"]


# -- cancel, resume, recover -----------------------------------------------------------------


def test_cancel_a_running_workflow(rt: nbflow.Runtime, gate: Callable[[], Gate]) -> None:
    """Cancel marks a running workflow CANCELLED, closes its streams and stops it."""
    g = gate()
    after: Counter[str] = Counter()

    @nbflow.step(name="tests.cancel.wait")
    def wait() -> None:
        g.wait()

    @nbflow.workflow
    def wf() -> str:
        nbflow.write_stream("rows", 0)
        nbflow.write_stream("rows", 1)
        wait()
        after["ran"] += 1
        nbflow.write_stream("rows", 2)
        return "never"

    handle = nbflow.start(wf)
    wid = handle.workflow_id
    g.reached()
    got: list[Any] = []

    def read() -> None:
        for value in nbflow.read_stream(wid, "rows"):
            got.append(value)

    reader = threading.Thread(target=read)
    reader.start()
    wait_until(lambda: len(got) == 2)
    nbflow.cancel(wid)
    assert handle.status() == Status.CANCELLED
    reader.join(10)
    assert not reader.is_alive(), "the reader did not end when the workflow was cancelled"
    assert got == [0, 1]
    assert [(s.key, s.items, s.closed) for s in nbflow.list_streams(wid)] == [("rows", 2, True)]
    g.release.set()
    with pytest.raises(nbflow.WorkflowCancelledError) as info:
        handle.result(timeout=10)
    assert info.value.workflow_id == wid
    assert after["ran"] == 0
    assert handle.status() == Status.CANCELLED
    assert nbflow.list_workflows()[0].status == Status.CANCELLED
    assert list(nbflow.read_stream(wid, "rows")) == [0, 1]


def test_cancel_a_finished_workflow_does_nothing(rt: nbflow.Runtime) -> None:
    """Cancelling a workflow that succeeded or failed leaves its status and outcome as they are."""

    @nbflow.workflow
    def ok() -> int:
        return 7

    @nbflow.workflow
    def bad() -> None:
        raise BoomError("kept")

    good, failed = nbflow.start(ok), nbflow.start(bad)
    assert good.result(timeout=10) == 7
    with pytest.raises(BoomError):
        failed.result(timeout=10)
    good.cancel()
    nbflow.cancel(failed.workflow_id)
    assert good.status() == Status.SUCCESS and good.result() == 7
    assert failed.status() == Status.ERROR
    with pytest.raises(BoomError, match="kept"):
        failed.result()


def test_cancel_an_unknown_workflow_raises_not_found(rt: nbflow.Runtime) -> None:
    """Cancelling an id nobody wrote raises WorkflowNotFoundError naming it."""
    with pytest.raises(nbflow.WorkflowNotFoundError, match="no-such-id"):
        nbflow.cancel("no-such-id")


def test_resume_a_cancelled_workflow_continues_from_its_last_checkpoint(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    """Resume re-opens the streams a cancel closed and runs on; offsets stay contiguous."""
    g = gate()
    runs: Counter[str] = Counter()

    @nbflow.step(name="tests.resume-cancel.first")
    def first() -> int:
        runs["first"] += 1
        return 10

    @nbflow.step(name="tests.resume-cancel.wait")
    def wait() -> None:
        g.wait()

    @nbflow.workflow(name="tests.resume-cancel")
    def wf() -> str:
        nbflow.write_stream("rows", 0)
        nbflow.write_stream("rows", first())
        nbflow.progress(1, 2)
        wait()
        nbflow.write_stream("rows", 2)
        nbflow.progress(2, 2)
        return "done"

    handle = nbflow.start(wf)
    wid = handle.workflow_id
    g.reached()
    nbflow.cancel(wid)
    g.release.set()
    with pytest.raises(nbflow.WorkflowCancelledError):
        handle.result(timeout=10)
    resumed = nbflow.resume(wid)
    assert resumed.workflow_id == wid
    assert resumed.result(timeout=10) == "done"
    assert resumed.status() == Status.SUCCESS
    assert runs["first"] == 1
    assert list(nbflow.read_stream(wid, "rows")) == [0, 10, 2]
    assert [p["done"] for p in nbflow.read_stream(wid, "progress")] == [1, 2]
    rows = sql(
        rt,
        'select key, array_agg("offset" order by "offset"), count(*) filter (where is_end) '
        "from streams where workflow_id = ? group by key order by key",
        wid,
    )
    assert rows == [("progress", [0, 1, 2], 1), ("rows", [0, 1, 2, 3], 1)]


def test_resume_a_failed_workflow_reruns_the_failing_step(rt: nbflow.Runtime) -> None:
    """Resume of a failed workflow runs its failing step again and keeps earlier checkpoints."""
    fixed = {"yes": False}
    runs: Counter[str] = Counter()

    @nbflow.step(name="tests.resume-failed.first")
    def first() -> int:
        runs["first"] += 1
        return 1

    @nbflow.step(name="tests.resume-failed.flaky")
    def flaky() -> int:
        runs["flaky"] += 1
        if not fixed["yes"]:
            raise BoomError("not fixed yet")
        return 41

    @nbflow.workflow(name="tests.resume-failed")
    def wf() -> int:
        nbflow.write_stream("rows", "before")
        value = first() + flaky()
        nbflow.write_stream("rows", "after")
        return value

    handle = nbflow.start(wf)
    with pytest.raises(BoomError):
        handle.result(timeout=10)
    assert handle.status() == Status.ERROR
    fixed["yes"] = True
    resumed = nbflow.resume(handle.workflow_id)
    assert resumed.result(timeout=10) == 42
    assert runs == {"first": 1, "flaky": 2}
    assert resumed.status() == Status.SUCCESS
    assert list(nbflow.read_stream(handle.workflow_id, "rows")) == ["before", "after"]
    steps = nbflow.list_steps(handle.workflow_id)
    assert [(s.name, s.status) for s in steps] == [
        ("tests.resume-failed.first", "SUCCESS"),
        ("tests.resume-failed.flaky", "SUCCESS"),
    ]


def test_resume_a_failed_workflow_keeps_handled_step_errors(rt: nbflow.Runtime) -> None:
    """A step error the body caught did not end the workflow: resume does not run that step again."""
    fixed = {"yes": False}
    runs: Counter[str] = Counter()

    @nbflow.step(name="tests.resume-handled.lookup")
    def lookup() -> str:
        runs["lookup"] += 1
        raise KeyError("absent")

    @nbflow.workflow(name="tests.resume-handled")
    def wf() -> str:
        try:
            found = lookup()
        except KeyError:
            found = "default"
        if not fixed["yes"]:
            raise BoomError("the body failed, not the step")
        return found

    handle = nbflow.start(wf)
    with pytest.raises(BoomError):
        handle.result(timeout=10)
    fixed["yes"] = True
    assert nbflow.resume(handle.workflow_id).result(timeout=10) == "default"
    assert runs["lookup"] == 1
    [step] = nbflow.list_steps(handle.workflow_id)
    assert (step.status, step.error) == ("ERROR", "KeyError: 'absent'")


def test_set_workflow_id_of_an_interrupted_workflow_resumes_it(
    rt: nbflow.Runtime, database: str, gate: Callable[[], Gate]
) -> None:
    """Starting an interrupted workflow's id again runs it on from its checkpoints."""
    g = gate()
    runs: Counter[str] = Counter()

    @nbflow.step(name="tests.reuse-id.first")
    def first() -> int:
        runs["first"] += 1
        return 5

    @nbflow.step(name="tests.reuse-id.wait")
    def wait() -> None:
        g.wait()

    @nbflow.workflow(name="tests.reuse-id")
    def wf() -> int:
        value = first()
        wait()
        return value

    with nbflow.set_workflow_id("reuse"):
        nbflow.start(wf)
    g.reached()
    interrupt(rt, g)
    nbflow.configure(database)
    with nbflow.set_workflow_id("reuse"):
        assert wf() == 5
    assert runs["first"] == 1
    assert nbflow.get_workflow("reuse").status() == Status.SUCCESS


def test_resume_a_successful_workflow_does_nothing(rt: nbflow.Runtime) -> None:
    """Resume of a workflow that succeeded returns its handle and does not run it again."""
    runs: Counter[str] = Counter()

    @nbflow.workflow
    def wf() -> int:
        runs["body"] += 1
        return 3

    handle = nbflow.start(wf)
    assert handle.result(timeout=10) == 3
    assert nbflow.resume(handle.workflow_id).result(timeout=10) == 3
    assert runs["body"] == 1


def test_recover_resumes_registered_workflows_and_names_the_others(
    rt: nbflow.Runtime,
    database: str,
    gate: Callable[[], Gate],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """recover() resumes interrupted workflows it can find and logs those it cannot."""
    g = gate()
    sql(
        rt,
        "insert into workflows (workflow_id, name, status, inputs_json, created_at, updated_at) "
        "values ('ghost', 'tests.no_such_workflow', 'PENDING', '{\"args\":[],\"kwargs\":{}}', 1, 1)",
    )

    @nbflow.step(name="tests.recover.wait")
    def wait() -> None:
        g.wait()

    @nbflow.workflow(name="tests.recover")
    def wf(x: int) -> int:
        wait()
        return x + 1

    with nbflow.set_workflow_id("known"):
        nbflow.start(wf, 1)
    g.reached()
    interrupt(rt, g)
    reopened = nbflow.configure(database)
    assert sorted(reopened.interrupted) == ["ghost", "known"]
    with caplog.at_level(logging.WARNING, logger="nbflow"):
        handles = nbflow.recover()
    assert [h.workflow_id for h in handles] == ["known"]
    assert handles[0].result(timeout=10) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("ghost" in m and "tests.no_such_workflow" in m for m in warnings), warnings
    assert nbflow.get_workflow("ghost").status() == Status.PENDING
    assert nbflow.recover() == []  # nothing left that this process can run


def test_opening_a_runtime_notes_interrupted_workflows_and_runs_no_user_code(
    rt: nbflow.Runtime, database: str, gate: Callable[[], Gate]
) -> None:
    """A runtime opened on a file with interrupted workflows lists them and runs none."""
    g = gate()
    runs: Counter[str] = Counter()

    @nbflow.step(name="tests.open.wait")
    def wait() -> None:
        g.wait()

    @nbflow.workflow(name="tests.open")
    def wf() -> None:
        runs["body"] += 1
        wait()

    handle = nbflow.start(wf)
    g.reached()
    interrupt(rt, g)
    assert runs["body"] == 1
    with nbflow.Runtime(database) as reopened:
        assert reopened.interrupted == [handle.workflow_id]
        assert not workflow_threads()
        assert runs["body"] == 1
        assert g.calls == 1
        assert reopened.status(handle.workflow_id) == Status.PENDING
        with pytest.raises(nbflow.WorkflowInterruptedError):
            reopened.get_workflow(handle.workflow_id).result(timeout=1)


def test_cancel_an_interrupted_workflow_closes_its_streams(
    rt: nbflow.Runtime, database: str, gate: Callable[[], Gate]
) -> None:
    """Cancelling a PENDING workflow that is not running marks it CANCELLED and ends its streams."""
    g = gate()

    @nbflow.step(name="tests.cancel-interrupted.wait")
    def wait() -> None:
        g.wait()

    @nbflow.workflow(name="tests.cancel-interrupted")
    def wf() -> None:
        nbflow.write_stream("rows", "a")
        wait()

    handle = nbflow.start(wf)
    g.reached()
    interrupt(rt, g)
    nbflow.configure(database)
    nbflow.cancel(handle.workflow_id)
    assert nbflow.get_workflow(handle.workflow_id).status() == Status.CANCELLED
    assert list(nbflow.read_stream(handle.workflow_id, "rows")) == ["a"]
    assert [(s.key, s.closed) for s in nbflow.list_streams(handle.workflow_id)] == [("rows", True)]
    assert nbflow.recover() == []


# -- history ---------------------------------------------------------------------------------


def test_list_workflows_newest_first_with_filters_and_limit(rt: nbflow.Runtime) -> None:
    """list_workflows orders newest first and filters by status and name, up to limit."""

    @nbflow.workflow(name="tests.hist.a")
    def a(fail: bool = False) -> None:
        if fail:
            raise BoomError("a failed")

    @nbflow.workflow(name="tests.hist.b")
    def b() -> None:
        return None

    for wid, fn, args in [("h1", a, ()), ("h2", b, ()), ("h3", a, (True,)), ("h4", a, ())]:
        with nbflow.set_workflow_id(wid), contextlib.suppress(BoomError):
            fn(*args)
    assert [w.workflow_id for w in nbflow.list_workflows()] == ["h4", "h3", "h2", "h1"]
    assert [w.workflow_id for w in nbflow.list_workflows(limit=2)] == ["h4", "h3"]
    assert [w.workflow_id for w in nbflow.list_workflows(name="tests.hist.a")] == [
        "h4",
        "h3",
        "h1",
    ]
    assert [w.workflow_id for w in nbflow.list_workflows(status="ERROR")] == ["h3"]
    assert [w.workflow_id for w in nbflow.list_workflows(status=Status.SUCCESS, limit=2)] == [
        "h4",
        "h2",
    ]
    assert nbflow.list_workflows(status="CANCELLED") == []
    assert nbflow.list_workflows(name="tests.hist.b", status="ERROR") == []
    [h3] = nbflow.list_workflows(status="ERROR")
    assert h3.error == "BoomError: a failed"
    assert h3.ended_at is not None and h3.duration is not None and h3.duration >= 0
    assert h3.created_at.tzinfo is not None


def test_list_steps_records_each_checkpoint(rt: nbflow.Runtime) -> None:
    """list_steps returns every checkpoint in order with name, status, attempts and error."""

    @nbflow.step(name="tests.steps.ok")
    def ok() -> int:
        return 1

    @nbflow.step(name="tests.steps.bad")
    def bad() -> None:
        raise KeyError("missing")

    @nbflow.workflow
    def wf() -> None:
        ok()
        nbflow.write_stream("k", 1)  # a body write takes a position too
        with contextlib.suppress(KeyError):
            bad()
        nbflow.run_step(len, "abc")

    handle = nbflow.start(wf)
    handle.result(timeout=10)
    steps = nbflow.list_steps(handle.workflow_id)
    assert [(s.function_id, s.name, s.status, s.attempts) for s in steps] == [
        (1, "tests.steps.ok", "SUCCESS", 1),
        (3, "tests.steps.bad", "ERROR", 1),
        (4, "builtins.len", "SUCCESS", 1),
    ]
    assert steps[1].error == "KeyError: 'missing'"
    assert all(s.duration >= 0 and s.started_at.tzinfo is not None for s in steps)
    with pytest.raises(nbflow.WorkflowNotFoundError):
        nbflow.list_steps("nope")


def test_list_streams_counts_items_and_closed_flags(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    """list_streams gives each key's item count and whether it is closed, while and after."""
    g = gate()

    @nbflow.step(name="tests.streams-list.wait")
    def wait() -> None:
        g.wait()

    @nbflow.workflow
    def wf() -> None:
        nbflow.write_stream("b", 1)
        nbflow.write_stream("a", 1)
        nbflow.write_stream("a", 2)
        nbflow.close_stream("a")
        wait()

    handle = nbflow.start(wf)
    wid = handle.workflow_id
    g.reached()
    rt.flush()
    assert [(s.key, s.items, s.closed) for s in nbflow.list_streams(wid)] == [
        ("a", 2, True),
        ("b", 1, False),
    ]
    g.release.set()
    handle.result(timeout=10)
    streams = nbflow.list_streams(wid)
    assert [(s.key, s.items, s.closed) for s in streams] == [("a", 2, True), ("b", 1, True)]
    assert all(s.first_at <= s.last_at for s in streams)
    with pytest.raises(nbflow.WorkflowNotFoundError):
        nbflow.list_streams("nope")


def test_records_are_frozen_and_readable(rt: nbflow.Runtime) -> None:
    """History records are frozen, have a readable repr, and show as HTML tables."""

    @nbflow.step(name="tests.records.step")
    def one() -> int:
        return 1

    @nbflow.workflow(name="tests.records")
    def wf() -> None:
        one()
        nbflow.write_stream("out", "x")

    with nbflow.set_workflow_id("rec-1"):
        wf()
    workflows = nbflow.list_workflows()
    steps = nbflow.list_steps("rec-1")
    streams = nbflow.list_streams("rec-1")
    for records, needle in [
        (workflows, "rec-1"),
        (steps, "tests.records.step"),
        (streams, "out"),
    ]:
        assert isinstance(records, nbflow.Records) and isinstance(records, list)
        [record] = records
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.name = "changed"  # type: ignore[misc, union-attr]
        assert needle in repr(record)
        assert repr(record).startswith(type(record).__name__ + "(")
        for html in (record._repr_html_(), records._repr_html_()):
            assert html.startswith("<table") and html.endswith("</table>")
            assert needle in html
            assert html.count("<tr>") == 2  # a header row and one row
    assert "SUCCESS" in repr(workflows[0])
    assert "SUCCESS" in workflows._repr_html_()
    empty = nbflow.list_workflows(status="CANCELLED")
    assert empty == [] and "none" in empty._repr_html_()


def test_status_is_an_enum_that_compares_with_its_name() -> None:
    """Status has the six documented members, equal to their names."""
    names = ["PENDING", "ENQUEUED", "DELAYED", "SUCCESS", "ERROR", "CANCELLED"]
    assert [s.value for s in Status] == [*names, "MAX_RECOVERY_ATTEMPTS_EXCEEDED"]
    assert Status.SUCCESS == "SUCCESS" and Status("ERROR") is Status.ERROR
    assert not Status.PENDING.is_final and not Status.ENQUEUED.is_final
    assert not Status.DELAYED.is_final
    assert Status.CANCELLED.is_final


def test_get_workflow_of_an_unknown_id_raises_not_found(rt: nbflow.Runtime) -> None:
    """get_workflow and resume of an unknown id raise WorkflowNotFoundError."""
    with pytest.raises(nbflow.WorkflowNotFoundError):
        nbflow.get_workflow("missing")
    with pytest.raises(nbflow.WorkflowNotFoundError):
        nbflow.resume("missing")


def test_an_id_given_to_another_workflow_function_is_refused(rt: nbflow.Runtime) -> None:
    """An existing id started with a different workflow function raises WorkflowConflictError."""

    @nbflow.workflow(name="conflict.first")
    def first() -> int:
        return 1

    @nbflow.workflow(name="conflict.second")
    def second() -> int:
        return 2

    with nbflow.set_workflow_id("shared-id"):
        assert first() == 1
    with pytest.raises(nbflow.WorkflowConflictError) as info, nbflow.set_workflow_id("shared-id"):
        second()
    assert info.value.recorded == "conflict.first" and info.value.called == "conflict.second"
    assert "conflict.first" in str(info.value)
    assert nbflow.get_workflow("shared-id").result() == 1


def test_record_step_keeps_records_outside_workflows(rt: nbflow.Runtime, database: str) -> None:
    """record_step appends numbered steps to a SUCCESS record-keeping workflow; they survive."""
    assert rt.record_step("records", "cell-a", {"k": 1}, started=1.0, ended=2.0) == 1
    assert rt.record_step("records", "cell-b", (1, 2), started=2.0, ended=3.5) == 2
    assert rt.status("records") == Status.SUCCESS
    assert [s.name for s in rt.list_steps("records")] == ["cell-a", "cell-b"]
    assert rt.recover() == []
    nbflow._api._close_default()
    with nbflow.Runtime(database) as again:
        assert list(again.recorded_steps("records", "cell-b")) == [(2, "cell-b", (1, 2), 2.0, 3.5)]
        assert [s[0] for s in again.recorded_steps("records", newest_first=True)] == [2, 1]
        assert list(again.recorded_steps("records")) == [
            (1, "cell-a", {"k": 1}, 1.0, 2.0),
            (2, "cell-b", (1, 2), 2.0, 3.5),
        ]
        assert again.record_step("records", "cell-a", None, started=4.0, ended=5.0) == 3


def test_history_reads_its_own_writes(rt: nbflow.Runtime) -> None:
    """A workflow started a moment ago is listed, with its steps and streams, at once."""

    @nbflow.workflow(name="tests.history.fresh")
    def fresh() -> None:
        nbflow.write_stream("out", 1)

    for _ in range(20):
        handle = nbflow.start(fresh)
        assert handle.workflow_id in {w.workflow_id for w in nbflow.list_workflows(limit=5)}
        handle.result(timeout=10)
    assert [s.key for s in nbflow.list_streams(handle.workflow_id)] == ["out"]


def test_run_step_runs_an_async_function_in_a_sync_workflow(rt: nbflow.Runtime) -> None:
    """``run_step(async_fn, ...)`` in a sync body runs the coroutine on nbflow's loop (as an
    ``async def`` step is run) and checkpoints its result; in an async body it is awaited; a
    declared step given to run_step keeps its retries."""
    calls: list[int] = []

    async def fetch(x: int) -> int:
        calls.append(x)
        await asyncio.sleep(0)
        return x * 10

    attempts: list[int] = []

    @nbflow.step(name="tests.run-step-async.flaky", retries=2, interval=0)
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 2:
            raise ConnectionError("once")
        return "ok"

    @nbflow.workflow(name="tests.run-step-async.sync")
    def sync_body() -> list[Any]:
        return [nbflow.run_step(fetch, 1), nbflow.run_step(flaky)]

    @nbflow.workflow(name="tests.run-step-async.async")
    async def async_body() -> int:
        return int(await nbflow.run_step(fetch, 2))

    handle = nbflow.start(sync_body)
    assert handle.result(timeout=10) == [10, "ok"]
    steps = nbflow.list_steps(handle.workflow_id)
    assert steps[0].output == 10
    assert steps[0].name.endswith("fetch") and steps[1].attempts == 2
    assert nbflow.start(async_body).result(timeout=10) == 20
    assert calls == [1, 2]
