"""Semantics of streams, readers, progress/track and value serialization (DESIGN.md)."""

from __future__ import annotations

import asyncio
import math
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

import nbflow
from nbflow import Status
from tests.support.helpers import Gate, interrupt, sql, wait_until

pytestmark = pytest.mark.contract


@dataclass(frozen=True)
class Point:
    """A non-JSON value that pickles."""

    x: int
    y: int


def gated_step(g: Gate, name: str) -> Callable[[], None]:
    """A step that waits at the gate."""

    @nbflow.step(name=name)
    def wait() -> None:
        g.wait()

    return wait


def rows(
    runtime: nbflow.Runtime, workflow_id: str, key: str, columns: str
) -> list[tuple[Any, ...]]:
    """Raw rows of one stream, in offset order (end marker included)."""
    query = f'select {columns} from streams where workflow_id = ? and key = ? order by "offset"'
    return sql(runtime, query, workflow_id, key)


def run(fn: Any, *args: Any) -> str:
    """Run a workflow to its end in the background; return its id."""
    handle = nbflow.start(fn, *args)
    handle.result(timeout=10)
    return handle.workflow_id


# -- live reading ----------------------------------------------------------------------------


def test_reader_receives_items_while_the_workflow_runs(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    """A reader gets the first items while the workflow that wrote them is still blocked."""
    g = gate()
    wait = gated_step(g, "tests.live.wait")

    @nbflow.workflow
    def wf() -> None:
        for i in range(3):
            nbflow.write_stream("k", i)
        wait()
        nbflow.write_stream("k", 3)

    handle = nbflow.start(wf)
    reader = nbflow.read_stream(handle.workflow_id, "k")
    first = [next(reader) for _ in range(3)]
    assert first == [0, 1, 2]
    assert not g.release.is_set() and handle.status() == Status.PENDING
    g.release.set()
    assert list(reader) == [3]
    handle.result(timeout=10)


def test_async_reader_gives_the_same_items_live(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    """read_stream_async yields items while the workflow runs, and the same items as read_stream."""
    g = gate()
    wait = gated_step(g, "tests.async.wait")

    @nbflow.workflow
    def wf() -> None:
        for i in range(3):
            nbflow.write_stream("k", {"i": i})
        wait()
        nbflow.write_stream("k", {"i": 3})

    handle = nbflow.start(wf)
    wid = handle.workflow_id

    async def consume() -> tuple[list[Any], Status, list[Any]]:
        items = nbflow.read_stream_async(wid, "k")
        first = [await items.__anext__() for _ in range(3)]
        during = handle.status()
        g.release.set()
        rest = [item async for item in items]
        return first, during, rest

    first, during, rest = asyncio.run(consume())
    assert first == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert during == Status.PENDING
    assert rest == [{"i": 3}]
    handle.result(timeout=10)

    async def collect() -> list[Any]:
        return [item async for item in nbflow.read_stream_async(wid, "k")]

    assert asyncio.run(collect()) == list(nbflow.read_stream(wid, "k"))


def test_reader_pages_through_many_items(rt: nbflow.Runtime) -> None:
    """A stream longer than one page is read completely and in order, from any start."""

    @nbflow.workflow
    def wf(n: int) -> None:
        for i in range(n):
            nbflow.write_stream("k", i)

    wid = run(wf, 12_000)
    assert list(nbflow.read_stream(wid, "k")) == list(range(12_000))
    assert list(nbflow.read_stream(wid, "k", start=5_001)) == list(range(5_001, 12_000))


# -- closing ---------------------------------------------------------------------------------


def test_streams_close_when_the_workflow_succeeds(rt: nbflow.Runtime) -> None:
    """Every open stream gets an end marker when the workflow succeeds; readers end."""

    @nbflow.workflow
    def wf() -> None:
        nbflow.write_stream("a", 1)
        nbflow.write_stream("b", 2)
        nbflow.progress(1, 1)

    wid = run(wf)
    assert [(s.key, s.items, s.closed) for s in nbflow.list_streams(wid)] == [
        ("a", 1, True),
        ("b", 1, True),
        ("progress", 1, True),
    ]
    assert list(nbflow.read_stream(wid, "a")) == [1]
    assert rows(rt, wid, "b", '"offset", is_end, function_id') == [(0, False, 2), (1, True, None)]


def test_streams_close_when_the_workflow_fails(rt: nbflow.Runtime) -> None:
    """Every open stream closes when the workflow raises; readers get its items and end."""

    @nbflow.workflow
    def wf() -> None:
        nbflow.write_stream("a", "before the error")
        raise ValueError("failed")

    handle = nbflow.start(wf)
    with pytest.raises(ValueError):
        handle.result(timeout=10)
    assert list(nbflow.read_stream(handle.workflow_id, "a")) == ["before the error"]
    assert [(s.key, s.closed) for s in nbflow.list_streams(handle.workflow_id)] == [("a", True)]


def test_streams_close_when_the_workflow_is_cancelled(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    """Cancelling a workflow closes its open streams at once: a waiting reader ends."""
    g = gate()
    wait = gated_step(g, "tests.cancel-close.wait")

    @nbflow.workflow
    def wf() -> None:
        nbflow.write_stream("a", 1)
        wait()
        nbflow.write_stream("a", 2)

    handle = nbflow.start(wf)
    reader = nbflow.read_stream(handle.workflow_id, "a")
    assert next(reader) == 1
    handle.cancel()
    assert list(reader) == []  # ends although the workflow's thread is still blocked
    g.release.set()
    with pytest.raises(nbflow.WorkflowCancelledError):
        handle.result(timeout=10)
    assert rows(rt, handle.workflow_id, "a", '"offset", is_end') == [(0, False), (1, True)]


def test_write_after_close_raises_and_writes_nothing(rt: nbflow.Runtime) -> None:
    """A write to a closed stream raises StreamClosedError, writes nothing, and the workflow goes on."""
    errors: list[nbflow.StreamClosedError] = []

    @nbflow.workflow
    def wf() -> str:
        nbflow.write_stream("k", 1)
        nbflow.close_stream("k")
        try:
            nbflow.write_stream("k", 2)
        except nbflow.StreamClosedError as exc:
            errors.append(exc)
        nbflow.write_stream("other", "went on")
        return "ok"

    handle = nbflow.start(wf)
    assert handle.result(timeout=10) == "ok"
    [err] = errors
    assert (err.workflow_id, err.key) == (handle.workflow_id, "k")
    assert rows(rt, handle.workflow_id, "k", '"offset", value_json, is_end') == [
        (0, "1", False),
        (1, None, True),
    ]
    assert list(nbflow.read_stream(handle.workflow_id, "other")) == ["went on"]


def test_closing_twice_is_harmless(rt: nbflow.Runtime) -> None:
    """close_stream on a closed stream does nothing; closing an unwritten key makes it empty."""

    @nbflow.workflow
    def wf() -> None:
        nbflow.write_stream("k", "x")
        nbflow.close_stream("k")
        nbflow.close_stream("k")
        nbflow.close_stream("never-written")

    wid = run(wf)
    assert rows(rt, wid, "k", '"offset", is_end') == [(0, False), (1, True)]
    assert list(nbflow.read_stream(wid, "k")) == ["x"]
    assert list(nbflow.read_stream(wid, "never-written")) == []
    assert ("never-written", 0, True) in [
        (s.key, s.items, s.closed) for s in nbflow.list_streams(wid)
    ]


# -- reading ---------------------------------------------------------------------------------


def test_reading_an_unknown_workflow_raises_at_the_call(rt: nbflow.Runtime) -> None:
    """read_stream and read_stream_async raise WorkflowNotFoundError before any iteration."""
    with pytest.raises(nbflow.WorkflowNotFoundError) as info:
        nbflow.read_stream("no-such-workflow", "k")
    assert info.value.workflow_id == "no-such-workflow"
    with pytest.raises(nbflow.WorkflowNotFoundError):
        nbflow.read_stream_async("no-such-workflow", "k")


def test_start_offsets(rt: nbflow.Runtime) -> None:
    """start= reads from that offset; at or beyond the end of a closed stream it reads nothing."""

    @nbflow.workflow
    def wf() -> None:
        for i in range(5):
            nbflow.write_stream("k", f"v{i}")

    wid = run(wf)
    assert list(nbflow.read_stream(wid, "k", start=0)) == ["v0", "v1", "v2", "v3", "v4"]
    assert list(nbflow.read_stream(wid, "k", start=3)) == ["v3", "v4"]
    assert list(nbflow.read_stream(wid, "k", start=5)) == []
    assert list(nbflow.read_stream(wid, "k", start=50)) == []
    with pytest.raises(ValueError):
        nbflow.read_stream(wid, "k", start=-1)


def test_timeout_on_a_pending_workflow_raises_stream_timeout(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    """A reader of a PENDING workflow with no new item raises StreamTimeoutError with its offset."""
    g = gate()
    wait = gated_step(g, "tests.timeout.wait")

    @nbflow.workflow
    def wf() -> None:
        nbflow.write_stream("k", 0)
        nbflow.write_stream("k", 1)
        wait()
        nbflow.write_stream("k", 2)

    handle = nbflow.start(wf)
    wid = handle.workflow_id
    g.reached()
    got: list[Any] = []
    with pytest.raises(nbflow.StreamTimeoutError) as info:
        for value in nbflow.read_stream(wid, "k", timeout=0.2):
            got.append(value)
    assert got == [0, 1]
    err = info.value
    assert (err.workflow_id, err.key, err.offset) == (wid, "k", 2)
    assert isinstance(err, TimeoutError)

    async def read_async() -> None:
        async for _ in nbflow.read_stream_async(wid, "k", start=2, timeout=0.05):
            pass

    with pytest.raises(nbflow.StreamTimeoutError):
        asyncio.run(read_async())
    g.release.set()
    handle.result(timeout=10)
    assert list(nbflow.read_stream(wid, "k", start=err.offset, timeout=0.2)) == [2]


def test_a_key_never_written_reads_as_empty_once_the_workflow_ended(rt: nbflow.Runtime) -> None:
    """Reading a key the finished workflow never wrote ends at once with no items."""

    @nbflow.workflow
    def wf() -> None:
        nbflow.write_stream("written", 1)

    wid = run(wf)
    assert list(nbflow.read_stream(wid, "never", timeout=5)) == []


def test_many_keys_with_contiguous_offsets(rt: nbflow.Runtime) -> None:
    """A workflow writes many streams; each has contiguous offsets from 0 and its own items."""

    @nbflow.workflow
    def wf() -> None:
        for i in range(6):
            nbflow.write_stream("a", i)
            nbflow.write_stream("b", -i)
            if i % 2:
                nbflow.write_stream("c", i)
        nbflow.close_stream("a")

    wid = run(wf)
    offsets = sql(
        rt,
        'select key, array_agg("offset" order by "offset"), count(*) filter (where is_end) '
        "from streams where workflow_id = ? group by key order by key",
        wid,
    )
    assert offsets == [
        ("a", list(range(7)), 1),
        ("b", list(range(7)), 1),
        ("c", list(range(4)), 1),
    ]
    assert list(nbflow.read_stream(wid, "a")) == [0, 1, 2, 3, 4, 5]
    assert list(nbflow.read_stream(wid, "b")) == [0, -1, -2, -3, -4, -5]
    assert list(nbflow.read_stream(wid, "c")) == [1, 3, 5]


def test_a_reader_of_an_interrupted_workflow_waits_for_its_recovery(
    rt: nbflow.Runtime, database: str, gate: Callable[[], Gate]
) -> None:
    """A reader of an interrupted (PENDING) workflow times out, or waits until it is recovered."""
    g = gate()
    wait = gated_step(g, "tests.interrupted-reader.wait")

    @nbflow.workflow(name="tests.interrupted-reader")
    def wf() -> None:
        nbflow.write_stream("k", "before")
        wait()
        nbflow.write_stream("k", "after")

    handle = nbflow.start(wf)
    g.reached()
    interrupt(rt, g)
    nbflow.configure(database)
    with pytest.raises(nbflow.StreamTimeoutError):
        list(nbflow.read_stream(handle.workflow_id, "k", timeout=0.05))
    got: list[Any] = []

    def read() -> None:
        for value in nbflow.read_stream(handle.workflow_id, "k"):
            got.append(value)

    reader = threading.Thread(target=read)
    reader.start()
    wait_until(lambda: got == ["before"])
    [resumed] = nbflow.recover()
    resumed.result(timeout=10)
    reader.join(10)
    assert not reader.is_alive()
    assert got == ["before", "after"]


# -- exactly once, at least once -------------------------------------------------------------


def test_body_writes_are_exactly_once_across_recovery(
    rt: nbflow.Runtime, database: str, gate: Callable[[], Gate]
) -> None:
    """Body writes recorded before an interruption are not written again by the recovery."""
    g = gate()
    wait = gated_step(g, "tests.exactly-once.wait")

    @nbflow.workflow(name="tests.exactly-once")
    def wf() -> None:
        for i in range(3):
            nbflow.write_stream("k", i)
        wait()
        for i in range(3, 5):
            nbflow.write_stream("k", i)

    handle = nbflow.start(wf)
    g.reached()
    interrupt(rt, g)
    reopened = nbflow.configure(database)
    [resumed] = nbflow.recover()
    resumed.result(timeout=10)
    assert list(nbflow.read_stream(handle.workflow_id, "k")) == [0, 1, 2, 3, 4]
    assert rows(reopened, handle.workflow_id, "k", '"offset", attempt') == [
        *[(i, None) for i in range(5)],
        (5, None),
    ]


def test_step_writes_record_their_step_and_attempt(rt: nbflow.Runtime) -> None:
    """Items written inside a step carry its function id and attempt; body items have no attempt."""
    attempts: Counter[str] = Counter()

    @nbflow.step(name="tests.attempts.writer", retries=1, interval=0.0)
    def writer() -> int:
        attempts["n"] += 1
        nbflow.write_stream("k", f"attempt {attempts['n']}")
        if attempts["n"] == 1:
            raise ConnectionError("first attempt fails")
        return attempts["n"]

    @nbflow.workflow
    def wf() -> None:
        nbflow.write_stream("k", "body before")
        writer()
        nbflow.write_stream("k", "body after")

    wid = run(wf)
    assert rows(rt, wid, "k", '"offset", value_json, function_id, attempt, is_end') == [
        (0, '"body before"', 1, None, False),
        (1, '"attempt 1"', 2, 1, False),
        (2, '"attempt 2"', 2, 2, False),
        (3, '"body after"', 3, None, False),
        (4, None, None, None, True),
    ]


def test_an_interrupted_step_writes_again_with_the_next_attempt(
    rt: nbflow.Runtime, database: str, gate: Callable[[], Gate]
) -> None:
    """A step re-run after an interruption writes its items again, marked with attempt 2."""
    g = gate()

    @nbflow.step(name="tests.step-rerun.writer")
    def writer() -> None:
        nbflow.write_stream("k", "from the step")
        g.wait()

    @nbflow.workflow(name="tests.step-rerun")
    def wf() -> None:
        writer()

    handle = nbflow.start(wf)
    g.reached()
    interrupt(rt, g)
    reopened = nbflow.configure(database)
    [resumed] = nbflow.recover()
    resumed.result(timeout=10)
    assert rows(reopened, handle.workflow_id, "k", '"offset", function_id, attempt, is_end') == [
        (0, 1, 1, False),
        (1, 1, 2, False),
        (2, None, None, True),
    ]


# -- values ----------------------------------------------------------------------------------


def test_json_native_values_are_stored_as_queryable_json(rt: nbflow.Runtime) -> None:
    """dict, list, str, int, float, bool and None are stored as JSON text that SQL can query."""
    values: list[Any] = [
        {"a": 1, "b": [1, 2.5, None, True], "nested": {"name": "deep"}},
        [1, "two", [3.0]],
        "text with ü",
        2**70,
        -2.5,
        False,
        None,
    ]

    @nbflow.workflow
    def wf() -> None:
        for value in values:
            nbflow.write_stream("k", value)

    wid = run(wf)
    stored = rows(rt, wid, "k", "value_json, value_pickle, is_end")[:-1]
    assert all(text is not None and blob is None for text, blob, _ in stored)
    queried = sql(
        rt,
        "select value_json::json->>'a', value_json::json->'nested'->>'name' from streams "
        "where workflow_id = ? and key = 'k' and \"offset\" = 0",
        wid,
    )
    assert queried == [("1", "deep")]
    assert list(nbflow.read_stream(wid, "k")) == values


def test_other_values_are_pickled_and_round_trip(rt: nbflow.Runtime) -> None:
    """Tuples, sets, dataclasses, NaN, infinities and non-str dict keys are pickled and come back equal."""
    values: list[Any] = [
        (1, 2),
        {1, 2, 3},
        Point(1, 2),
        float("inf"),
        {1: "int key"},
        b"bytes",
        ["a list", ("holding", "a tuple")],
    ]

    @nbflow.workflow
    def wf() -> None:
        nbflow.write_stream("nan", float("nan"))
        for value in values:
            nbflow.write_stream("k", value)

    wid = run(wf)
    stored = rows(rt, wid, "k", "value_json, value_pickle")[:-1]
    assert len(stored) == len(values)
    assert all(text is None and blob is not None for text, blob in stored)
    back = list(nbflow.read_stream(wid, "k"))
    assert back == values
    assert [type(v) for v in back] == [type(v) for v in values]
    [nan] = nbflow.read_stream(wid, "nan")
    assert math.isnan(nan)
    assert rows(rt, wid, "nan", "value_json IS NULL, value_pickle IS NOT NULL")[0] == (True, True)


def test_an_unpicklable_value_raises_and_the_workflow_goes_on(rt: nbflow.Runtime) -> None:
    """A value that cannot be stored raises SerializationError naming key and type; nothing is written."""
    errors: list[nbflow.SerializationError] = []

    @nbflow.workflow
    def wf() -> str:
        try:
            nbflow.write_stream("k", threading.Lock())
        except nbflow.SerializationError as exc:
            errors.append(exc)
        nbflow.write_stream("k", "next")
        return "went on"

    handle = nbflow.start(wf)
    assert handle.result(timeout=10) == "went on"
    [err] = errors
    assert isinstance(err, TypeError)
    assert "'k'" in str(err) and "lock" in str(err).lower()
    assert rows(rt, handle.workflow_id, "k", '"offset", value_json') == [(0, '"next"'), (1, None)]


def test_a_string_that_is_not_valid_unicode_does_not_break_the_runtime(rt: nbflow.Runtime) -> None:
    """A str with a lone surrogate is stored or refused at the write; the runtime keeps working."""
    odd = "half a pair: \ud800"
    errors: list[nbflow.SerializationError] = []

    @nbflow.workflow
    def wf() -> str:
        try:
            nbflow.write_stream("k", odd)
        except nbflow.SerializationError as exc:
            errors.append(exc)
        nbflow.write_stream("k", "next")
        return "went on"

    handle = nbflow.start(wf)
    assert handle.result(timeout=10) == "went on"
    expected = ["next"] if errors else [odd, "next"]
    assert list(nbflow.read_stream(handle.workflow_id, "k")) == expected
    assert run(wf) is not None  # the runtime still commits


def test_a_cyclic_value_is_pickled_and_a_too_deep_one_refused(rt: nbflow.Runtime) -> None:
    """A self-referencing list is pickled; one too deep to store raises SerializationError."""
    cyclic: list[Any] = ["head"]
    cyclic.append(cyclic)
    deep: list[Any] = []
    inner = deep
    for _ in range(100_000):
        inner.append([])
        inner = inner[0]
    errors: list[nbflow.SerializationError] = []

    @nbflow.workflow
    def wf() -> str:
        nbflow.write_stream("cyclic", cyclic)
        try:
            nbflow.write_stream("deep", deep)
        except nbflow.SerializationError as exc:
            errors.append(exc)
        return "went on"

    handle = nbflow.start(wf)
    assert handle.result(timeout=10) == "went on"
    [back] = nbflow.read_stream(handle.workflow_id, "cyclic")
    assert back[0] == "head" and back[1] is back
    assert len(errors) == 1 and "'deep'" in str(errors[0])
    assert list(nbflow.read_stream(handle.workflow_id, "deep")) == []


def test_allow_pickle_false_refuses_a_non_json_write(database: str) -> None:
    """With allow_pickle=False a non-JSON write raises SerializationError; nothing is written."""
    errors: list[nbflow.SerializationError] = []

    @nbflow.workflow
    def wf() -> str:
        try:
            nbflow.write_stream("points", (1, 2))
        except nbflow.SerializationError as exc:
            errors.append(exc)
        nbflow.write_stream("points", [1, 2])
        return "went on"

    with nbflow.Runtime(database, allow_pickle=False) as strict:
        handle = strict.start(wf)
        assert handle.result(timeout=10) == "went on"
        assert handle.status() == Status.SUCCESS
        [err] = errors
        assert isinstance(err, TypeError)
        assert "'points'" in str(err) and "tuple" in str(err)
        assert err.type_name == "builtins.tuple"
        assert rows(strict, handle.workflow_id, "points", '"offset", value_json, value_pickle') == [
            (0, "[1,2]", None),
            (1, None, None),
        ]
        assert list(strict.read_stream(handle.workflow_id, "points")) == [[1, 2]]


def test_allow_pickle_false_refuses_to_load_a_pickled_value(database: str) -> None:
    """A runtime with allow_pickle=False raises SerializationError on a pickled item or result."""

    @nbflow.workflow
    def wf() -> tuple[int, int]:
        nbflow.write_stream("k", (1, 2))
        return (3, 4)

    with nbflow.Runtime(database) as trusting:
        handle = trusting.start(wf)
        assert handle.result(timeout=10) == (3, 4)
    with nbflow.Runtime(database, allow_pickle=False) as strict:
        reader = strict.read_stream(handle.workflow_id, "k")
        with pytest.raises(nbflow.SerializationError, match="allow_pickle"):
            next(reader)
        with pytest.raises(nbflow.SerializationError):
            strict.get_workflow(handle.workflow_id).result()


def test_stream_calls_outside_a_workflow_raise_not_in_workflow(rt: nbflow.Runtime) -> None:
    """write_stream, close_stream, progress and track need a workflow."""
    calls: list[Callable[[], Any]] = [
        lambda: nbflow.write_stream("k", 1),
        lambda: nbflow.close_stream("k"),
        lambda: nbflow.progress(1, 2),
        lambda: list(nbflow.track([1, 2])),
    ]
    for call in calls:
        with pytest.raises(nbflow.NotInWorkflowError) as info:
            call()
        assert isinstance(info.value, RuntimeError)
    rt.flush()
    assert sql(rt, "select count(*) from streams") == [(0,)]


# -- progress and track ----------------------------------------------------------------------


def test_progress_writes_done_total_message_items(rt: nbflow.Runtime) -> None:
    """progress() writes {"done", "total", "message"} to "progress", or to key=."""

    @nbflow.step
    def in_a_step() -> None:
        nbflow.progress(2, 3, "from a step")

    @nbflow.workflow
    def wf() -> None:
        nbflow.progress(0, 3)
        nbflow.progress(1, 3, "one")
        in_a_step()
        nbflow.progress(0.5, total=1.0, message="half", key="phase")
        nbflow.progress(7)

    wid = run(wf)
    assert list(nbflow.read_stream(wid, "progress")) == [
        {"done": 0, "total": 3, "message": None},
        {"done": 1, "total": 3, "message": "one"},
        {"done": 2, "total": 3, "message": "from a step"},
        {"done": 7, "total": None, "message": None},
    ]
    assert list(nbflow.read_stream(wid, "phase")) == [
        {"done": 0.5, "total": 1.0, "message": "half"}
    ]


def test_track_yields_every_item_and_writes_0_to_n(rt: nbflow.Runtime) -> None:
    """track() yields each item and writes done=0..n with the total (None when unknown)."""
    seen: list[Any] = []

    @nbflow.workflow
    def wf() -> None:
        for item in nbflow.track(["a", "b", "c"]):
            seen.append(item)
        for item in nbflow.track((i for i in range(2)), key="gen"):
            seen.append(item)
        for item in nbflow.track(iter([9]), key="given", total=1):
            seen.append(item)

    wid = run(wf)
    assert seen == ["a", "b", "c", 0, 1, 9]
    assert list(nbflow.read_stream(wid, "progress")) == [
        {"done": i, "total": 3, "message": None} for i in range(4)
    ]
    assert [(p["done"], p["total"]) for p in nbflow.read_stream(wid, "gen")] == [
        (0, None),
        (1, None),
        (2, None),
    ]
    assert [(p["done"], p["total"]) for p in nbflow.read_stream(wid, "given")] == [(0, 1), (1, 1)]


def test_track_writes_each_item_after_it_is_done(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    """While the loop body of item k runs, the last progress item says done=k-1."""
    g = gate()
    wait = gated_step(g, "tests.track-live.wait")

    @nbflow.workflow
    def wf() -> None:
        for i in nbflow.track(range(3)):
            if i == 1:
                wait()

    handle = nbflow.start(wf)
    g.reached()
    reader = nbflow.read_stream(handle.workflow_id, "progress")
    assert [next(reader)["done"] for _ in range(2)] == [0, 1]
    with pytest.raises(nbflow.StreamTimeoutError):
        list(nbflow.read_stream(handle.workflow_id, "progress", start=2, timeout=0.1))
    g.release.set()
    assert [p["done"] for p in reader] == [2, 3]
    handle.result(timeout=10)
