"""Events, messages, durable sleep, fork and timeouts, on every store."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import nbflow
from nbflow import Status
from tests.support.helpers import Gate, interrupt, wait_until

pytestmark = pytest.mark.contract

calls: list[str] = []
gates: dict[str, Gate] = {}


@pytest.fixture(autouse=True)
def _fresh() -> None:
    calls.clear()
    gates.clear()


@nbflow.step(name="tests.comm.note")
def note(what: str) -> str:
    calls.append(what)
    return what


@nbflow.step(name="tests.comm.wait")
def wait_at(name: str) -> None:
    gates[name].wait()


# -- events ------------------------------------------------------------------------------------


@nbflow.workflow(name="tests.comm.publisher")
def publisher(gate: str) -> str:
    nbflow.set_event("stage", "loading")
    wait_at(gate)
    nbflow.set_event("stage", {"done": 3})
    nbflow.set_event("late", True)
    return "ok"


def test_get_event_returns_the_last_value_set(rt: nbflow.Runtime, gate: Callable[[], Gate]) -> None:
    gates["g"] = g = gate()
    handle = nbflow.start(publisher, "g")
    g.reached()
    assert nbflow.get_event(handle.workflow_id, "stage", timeout=10) == "loading"
    got: list[Any] = []
    waiter = threading.Thread(
        target=lambda: got.append(nbflow.get_event(handle.workflow_id, "late", timeout=30))
    )
    waiter.start()  # waits for an event set only after the gate
    g.release.set()
    waiter.join(30)
    assert got == [True]
    assert handle.result(timeout=10) == "ok"
    assert nbflow.get_event(handle.workflow_id, "stage") == {"done": 3}
    names = [s.name for s in nbflow.list_steps(handle.workflow_id)]
    assert names == [
        "nbflow.set_event('stage')",
        "tests.comm.wait",
        "nbflow.set_event('stage')",
        "nbflow.set_event('late')",
    ]


def test_get_event_waits_for_the_event_and_times_out_with_none(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    gates["g"] = g = gate()
    handle = nbflow.start(publisher, "g")
    assert nbflow.get_event(handle.workflow_id, "never", timeout=0.05) is None
    g.reached()
    g.release.set()
    handle.result(timeout=10)
    assert nbflow.get_event("no-such-workflow", "stage", timeout=0) is None


@nbflow.workflow(name="tests.comm.reader_of_events")
def reader_of_events(other: str) -> Any:
    return nbflow.get_event(other, "stage", timeout=10)


def test_get_event_inside_a_workflow_is_recorded(rt: nbflow.Runtime) -> None:
    source = nbflow.start(publisher_now).result(timeout=10)
    handle = nbflow.start(reader_of_events, source)
    assert handle.result(timeout=10) == "now"
    [recorded] = nbflow.list_steps(handle.workflow_id)
    assert recorded.name == "nbflow.get_event('stage')"  # by kind and key: a fork keeps it


@nbflow.workflow(name="tests.comm.publisher_now")
def publisher_now() -> str:
    nbflow.set_event("stage", "now")
    return nbflow.current_workflow_id() or ""


def test_set_event_outside_a_workflow_says_so(rt: nbflow.Runtime) -> None:
    with pytest.raises(nbflow.NotInWorkflowError):
        nbflow.set_event("k", 1)


# -- messages ----------------------------------------------------------------------------------


@nbflow.workflow(name="tests.comm.inbox")
def inbox(n: int, topic: str | None) -> list[Any]:
    got = [nbflow.recv(topic, timeout=30) for _ in range(n)]
    note(f"got {len(got)}")
    return got


def test_messages_arrive_in_order_each_once(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(inbox, 3, None)
    for i in range(3):
        nbflow.send(handle.workflow_id, {"n": i})
    assert handle.result(timeout=10) == [{"n": 0}, {"n": 1}, {"n": 2}]
    names = [s.name for s in nbflow.list_steps(handle.workflow_id)]
    assert names == ["nbflow.recv(None)"] * 3 + ["tests.comm.note"]


def test_topics_keep_messages_apart(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(inbox, 1, "b")
    nbflow.send(handle.workflow_id, "for a", topic="a")
    nbflow.send(handle.workflow_id, "for b", topic="b")
    assert handle.result(timeout=10) == ["for b"]


def test_recv_times_out_with_none_and_replays_it(rt: nbflow.Runtime) -> None:
    @nbflow.workflow(name="tests.comm.impatient")
    def impatient() -> Any:
        return nbflow.recv(timeout=0.05)

    handle = nbflow.start(impatient)
    assert handle.result(timeout=10) is None
    [step] = nbflow.list_steps(handle.workflow_id)
    assert step.name == "nbflow.recv(None)"


def test_send_to_a_missing_workflow_is_refused(rt: nbflow.Runtime) -> None:
    with pytest.raises(nbflow.WorkflowNotFoundError):
        nbflow.send("nobody", "hello")


@nbflow.workflow(name="tests.comm.relay")
def relay(target: str) -> str:
    nbflow.send(target, "from relay", topic="t")
    wait_at("relay")
    return "sent"


def test_send_from_a_workflow_is_not_repeated_by_a_replay(
    rt: nbflow.Runtime, database: str, gate: Callable[[], Gate]
) -> None:
    target = nbflow.start(inbox, 2, "t")
    gates["relay"] = g = gate()
    sender = nbflow.start(relay, target.workflow_id)
    g.reached()
    interrupt(rt, g)
    with nbflow.configure(database) as again:
        gates["relay"] = Gate()
        gates["relay"].release.set()
        [*recovered] = again.recover()
        assert {h.workflow_id for h in recovered} == {sender.workflow_id, target.workflow_id}
        assert again.get_workflow(sender.workflow_id).result(timeout=10) == "sent"
        nbflow.send(target.workflow_id, "second", topic="t")
        assert again.get_workflow(target.workflow_id).result(timeout=10) == ["from relay", "second"]


# -- durable sleep -----------------------------------------------------------------------------


@nbflow.workflow(name="tests.comm.sleeper")
def sleeper(seconds: float) -> float:
    started = time.time()
    nbflow.sleep(seconds)
    return time.time() - started


def test_sleep_is_recorded_with_its_wake_up_time(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(sleeper, 0.05)
    assert handle.result(timeout=10) >= 0.05
    [step] = nbflow.list_steps(handle.workflow_id)
    assert step.name == "nbflow.sleep"


def test_cancel_wakes_a_sleeping_workflow(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(sleeper, 3600)
    wait_until(lambda: nbflow.list_steps(handle.workflow_id))
    handle.cancel()
    with pytest.raises(nbflow.WorkflowCancelledError):
        handle.result(timeout=10)


def test_sleep_rejects_bad_durations() -> None:
    for bad in (-1, float("nan"), "1", True):
        with pytest.raises(ValueError, match="sleep"):
            nbflow.sleep(bad)  # type: ignore[arg-type]


# -- fork --------------------------------------------------------------------------------------


@nbflow.workflow(name="tests.comm.three")
def three(tag: str) -> list[str]:
    out = []
    for i in range(3):
        out.append(note(f"{tag}{i}"))
        nbflow.write_stream("items", i)
    return out


def test_fork_reuses_steps_before_n_and_runs_the_rest(rt: nbflow.Runtime) -> None:
    original = nbflow.start(three, "x")
    assert original.result(timeout=10) == ["x0", "x1", "x2"]
    steps = nbflow.list_steps(original.workflow_id)
    # function ids: note 1, write 2, note 3, write 4, note 5, write 6
    assert [s.function_id for s in steps] == [1, 3, 5]
    calls.clear()
    forked = nbflow.fork(original.workflow_id, from_step=3)
    assert forked.workflow_id != original.workflow_id
    assert forked.result(timeout=10) == ["x0", "x1", "x2"]
    assert calls == ["x1", "x2"]  # step 1 was reused, steps 3 and 5 ran again
    assert list(nbflow.read_stream(forked.workflow_id, "items", timeout=10)) == [0, 1, 2]
    assert list(nbflow.read_stream(original.workflow_id, "items", timeout=10)) == [0, 1, 2]


def test_fork_with_a_given_id_and_bad_arguments(rt: nbflow.Runtime) -> None:
    original = nbflow.start(three, "y")
    original.result(timeout=10)
    with nbflow.set_workflow_id("my-fork"):
        forked = nbflow.fork(original.workflow_id, from_step=1)
    assert forked.workflow_id == "my-fork" and forked.result(timeout=10) == ["y0", "y1", "y2"]
    with pytest.raises(ValueError, match="from_step"):
        nbflow.fork(original.workflow_id, from_step=0)
    with pytest.raises(nbflow.WorkflowNotFoundError):
        nbflow.fork("nope", from_step=1)
    with nbflow.set_workflow_id("my-fork"), pytest.raises(nbflow.WorkflowConflictError):
        nbflow.fork(original.workflow_id, from_step=1)


# -- timeouts ----------------------------------------------------------------------------------


def test_a_workflow_past_its_timeout_is_cancelled(rt: nbflow.Runtime) -> None:
    with nbflow.workflow_timeout(0.2):
        handle = nbflow.start(sleeper, 3600)
    with pytest.raises(nbflow.WorkflowCancelledError):
        handle.result(timeout=10)
    assert handle.status() == Status.CANCELLED


@nbflow.workflow(name="tests.comm.gated")
def gated() -> str:
    wait_at("relay")
    return note("after the gate")


def test_a_recovered_workflow_keeps_its_deadline(
    rt: nbflow.Runtime, database: str, gate: Callable[[], Gate]
) -> None:
    gates["relay"] = g = gate()
    with nbflow.workflow_timeout(0.5):
        handle = nbflow.start(gated)
    assert handle.status() == Status.PENDING
    g.reached()
    past_deadline = time.time() + 0.5  # the deadline is earlier: set when it started
    interrupt(rt, g)
    wait_until(lambda: time.time() > past_deadline)  # while no process runs it
    with nbflow.configure(database) as again:
        gates["relay"] = Gate()
        again.recover()
        with pytest.raises(nbflow.WorkflowCancelledError):
            again.get_workflow(handle.workflow_id).result(timeout=10)
        assert again.status(handle.workflow_id) == Status.CANCELLED
        assert "after the gate" not in calls


failures_left: list[int] = []


@nbflow.step(name="tests.comm.flaky")
def flaky() -> None:
    if failures_left:
        failures_left.pop()
        raise ValueError("not yet")


@nbflow.workflow(name="tests.comm.flaky_then_slow")
def flaky_then_slow(seconds: float) -> str:
    flaky()
    nbflow.sleep(seconds)
    return "done"


def test_resume_lifts_the_timeout(rt: nbflow.Runtime) -> None:
    """A workflow that failed before its deadline and was resumed is not cancelled at it."""
    failures_left[:] = [1]
    with nbflow.workflow_timeout(0.3):
        handle = nbflow.start(flaky_then_slow, 0.6)
    with pytest.raises(ValueError, match="not yet"):
        handle.result(timeout=10)
    resumed = nbflow.resume(handle.workflow_id)  # runs on past the old deadline
    assert resumed.result(timeout=10) == "done"
    assert resumed.status() == Status.SUCCESS


def test_workflow_timeout_rejects_bad_values() -> None:
    for bad in (0, -1, "5", None):
        with pytest.raises(ValueError, match="workflow_timeout"), nbflow.workflow_timeout(bad):  # type: ignore[arg-type]
            pass


@nbflow.workflow(name="tests.comm.staged")
def staged() -> None:
    nbflow.set_event("stage", 1)
    nbflow.set_event("items", [1, 2])
    nbflow.recv("go", timeout=30)
    nbflow.set_event("stage", 2)


EVENTS_GATE: list[Gate] = []


@nbflow.step(name="tests.comm.hold")
def hold() -> None:
    EVENTS_GATE[0].wait()


@nbflow.workflow(name="tests.comm.all_events")
def all_events(source: str) -> dict[str, Any]:
    seen = nbflow.get_events(source)
    hold()
    return seen


def test_get_events_inside_a_workflow_is_one_checkpoint_replayed_on_recovery(
    rt: nbflow.Runtime, database: str, gate: Callable[[], Gate]
) -> None:
    """``nbflow.get_events`` reads every event of another workflow; inside a workflow it is one
    checkpoint, so a recovery returns what the first run read even after the events changed."""
    EVENTS_GATE[:] = [gate()]
    with nbflow.set_workflow_id("events-source"):
        nbflow.start(staged)
    wait_until(lambda: nbflow.get_events("events-source") == {"stage": 1, "items": [1, 2]})
    with nbflow.set_workflow_id("events-reader"):
        nbflow.start(all_events, "events-source")
    EVENTS_GATE[0].reached()
    interrupt(rt, EVENTS_GATE[0])
    EVENTS_GATE[:] = [gate()]
    EVENTS_GATE[0].release.set()
    nbflow.configure(database)
    nbflow.send("events-source", "go", topic="go")
    handles = {h.workflow_id: h for h in nbflow.recover()}
    handles["events-source"].result(timeout=10)
    assert nbflow.get_events("events-source") == {"stage": 2, "items": [1, 2]}
    assert handles["events-reader"].result(timeout=10) == {"stage": 1, "items": [1, 2]}
    names = [s.name for s in nbflow.list_steps("events-reader")]
    assert names == ["nbflow.get_events", "tests.comm.hold"]
    assert nbflow.get_events("no-such-workflow") == {}
