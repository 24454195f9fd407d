"""Concurrency: many workflows writing while many readers read, in one process.

Every reader must get exactly its workflow's items, in order, none missing or extra, whether it starts
before the writes, during them, after the workflow finished, or from an offset.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import nbflow
from nbflow.engine import _reader

pytestmark = pytest.mark.contract

WORKFLOWS = 8
ITEMS = 2000
READ_TIMEOUT = 60.0  # a reader that gets nothing for this long fails instead of hanging

_gates: dict[str, threading.Event] = {}


@nbflow.workflow(name="test_concurrency.writer")
def writer(w: int, n: int, gate: str | None = None) -> int:
    """Write ``{"w": w, "i": i}`` for i in 0..n-1 from the workflow body; with a ``gate``, item 0
    comes first, the rest once the gate opens (so readers can be seen waiting mid-stream)."""
    for i in range(n):
        if i == 1 and gate is not None:
            assert _gates[gate].wait(READ_TIMEOUT), "the test never opened the gate"
        nbflow.write_stream("items", {"w": w, "i": i})
    return n


@nbflow.step(name="test_concurrency.square")
def square(x: int) -> int:
    return x * x


@nbflow.workflow(name="test_concurrency.small")
def small(w: int) -> int:
    """Two steps, three items on "out", two progress items."""
    total = 0
    for i in range(3):
        total += square(w + i)
        nbflow.write_stream("out", {"w": w, "i": i})
        if i % 2 == 0:
            nbflow.progress(i + 1, 3)
    return total


def expected(w: int, n: int = ITEMS, start: int = 0) -> list[dict[str, int]]:
    return [{"w": w, "i": i} for i in range(start, n)]


@pytest.fixture
def gate() -> Iterator[tuple[str, threading.Event]]:
    """A named event that writer workflows wait for; always opened at the end of the test."""
    name = f"gate-{uuid.uuid4().hex}"
    event = _gates[name] = threading.Event()
    try:
        yield name, event
    finally:
        event.set()
        del _gates[name]


class Readers:
    """Reader threads, each collecting one stream into a list (or its exception)."""

    def __init__(self) -> None:
        self.results: dict[Any, list[Any]] = {}
        self.errors: dict[Any, BaseException] = {}
        self.first: list[threading.Event] = []
        self.threads: list[threading.Thread] = []

    def add(self, name: Any, read: Callable[[], Iterator[Any]]) -> None:
        first = threading.Event()  # set once the reader got its first value (or ended)

        def run() -> None:
            values: list[Any] = []
            try:
                for value in read():
                    values.append(value)
                    first.set()
                self.results[name] = values
            except BaseException as exc:
                self.errors[name] = exc
            finally:
                first.set()

        thread = threading.Thread(target=run, name=f"reader-{name}", daemon=True)
        self.first.append(first)
        self.threads.append(thread)
        thread.start()

    def wait_first_values(self) -> None:
        """Wait until every reader got a value: each is reading, mid-stream."""
        for event in self.first:
            assert event.wait(READ_TIMEOUT)
        assert not self.errors, self.errors

    def join(self) -> dict[Any, list[Any]]:
        for thread in self.threads:
            thread.join(READ_TIMEOUT * 2)
            assert not thread.is_alive(), f"{thread.name} never finished"
        assert not self.errors, self.errors
        return self.results


def test_readers_started_before_writers_get_exactly_their_items(
    rt: nbflow.Runtime, gate: tuple[str, threading.Event]
) -> None:
    """8 readers read 8 workflows that wrote one item and wait; then all 8 write the other 1,999
    items at once. Each reader gets exactly its workflow's 2,000 items, in order."""
    name, event = gate
    handles = [nbflow.start(writer, w, ITEMS, name) for w in range(WORKFLOWS)]
    readers = Readers()
    for w, h in enumerate(handles):
        readers.add(w, lambda h=h: nbflow.read_stream(h.workflow_id, "items", timeout=READ_TIMEOUT))
    readers.wait_first_values()
    assert all(h.status() == nbflow.Status.PENDING for h in handles)
    event.set()
    results = readers.join()
    for w, h in enumerate(handles):
        assert results[w] == expected(w), f"reader of workflow {w}"
        assert h.result(timeout=READ_TIMEOUT) == ITEMS
        assert h.status() == nbflow.Status.SUCCESS


def readers_from_offsets(handles: list[nbflow.WorkflowHandle], starts: list[int]) -> Readers:
    """One reader thread per (workflow, start offset) of the stream "items"."""
    readers = Readers()
    for w, h in enumerate(handles):
        for start in starts:
            readers.add(
                (w, start),
                lambda h=h, start=start: nbflow.read_stream(
                    h.workflow_id, "items", start=start, timeout=READ_TIMEOUT
                ),
            )
    return readers


def test_many_readers_per_stream_with_offsets_while_writing(
    rt: nbflow.Runtime, gate: tuple[str, threading.Event]
) -> None:
    """Several readers per workflow, from offsets 0, 1, 999, 1999, 2000 (the end) and past the end,
    started while 8 workflows write: each gets the items from its offset on, and nothing else."""
    name, event = gate
    handles = [nbflow.start(writer, w, ITEMS, name) for w in range(WORKFLOWS)]
    starts = [0, 1, 999, ITEMS - 1, ITEMS, ITEMS + 500]
    event.set()  # readers start while the workflows write
    readers = readers_from_offsets(handles, starts)
    results = readers.join()
    for w in range(WORKFLOWS):
        for start in starts:
            assert results[(w, start)] == expected(w, start=start), f"workflow {w} from {start}"
    assert [h.result(timeout=READ_TIMEOUT) for h in handles] == [ITEMS] * WORKFLOWS


def test_async_readers_concurrently_with_writers(
    rt: nbflow.Runtime, gate: tuple[str, threading.Event]
) -> None:
    """8 async readers on one event loop, waiting mid-stream while the writers are held, each get
    their workflow's items."""
    name, event = gate
    handles = [nbflow.start(writer, w, ITEMS, name) for w in range(WORKFLOWS)]

    async def read(workflow_id: str, first: asyncio.Event) -> list[Any]:
        values = []
        try:
            reader = nbflow.read_stream_async(workflow_id, "items", timeout=READ_TIMEOUT)
            async for value in reader:
                values.append(value)
                first.set()
        finally:
            first.set()  # a reader that fails must not leave the test waiting
        return values

    async def main() -> list[list[Any]]:
        firsts = [asyncio.Event() for _ in handles]
        tasks = [
            asyncio.ensure_future(read(h.workflow_id, f))
            for h, f in zip(handles, firsts, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(f.wait() for f in firsts)), READ_TIMEOUT)
        event.set()  # every reader is mid-stream: now the writers go on
        return await asyncio.gather(*tasks)

    results = asyncio.run(main())
    for w, values in enumerate(results):
        assert values == expected(w), f"async reader of workflow {w}"


def test_late_readers_after_the_workflows_finished(rt: nbflow.Runtime) -> None:
    """Readers that start after the workflows finished replay each stream from any offset and end
    at its close, concurrently, in threads and with async readers."""
    handles = [nbflow.start(writer, w, ITEMS) for w in range(WORKFLOWS)]
    assert [h.result(timeout=READ_TIMEOUT) for h in handles] == [ITEMS] * WORKFLOWS
    starts = [0, 7, ITEMS // 2, ITEMS, ITEMS + 1]
    readers = readers_from_offsets(handles, starts)
    results = readers.join()
    for w in range(WORKFLOWS):
        for start in starts:
            assert results[(w, start)] == expected(w, start=start)

    async def read_all() -> list[list[Any]]:
        async def one(workflow_id: str, start: int) -> list[Any]:
            return [v async for v in nbflow.read_stream_async(workflow_id, "items", start=start)]

        return await asyncio.gather(*(one(h.workflow_id, 3) for h in handles))

    for w, values in enumerate(asyncio.run(read_all())):
        assert values == expected(w, start=3)
    for h in handles:
        (info,) = nbflow.list_streams(h.workflow_id)
        assert (info.key, info.items, info.closed) == ("items", ITEMS, True)


def test_stream_longer_than_a_page_read_while_written(
    rt: nbflow.Runtime, gate: tuple[str, threading.Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream of more than two pages, read from the start, mid-page and past a page boundary
    while it is written, and again afterwards: every item once, in order."""
    page = 5000
    monkeypatch.setattr(_reader, "PAGE_ROWS", page)
    name, event = gate
    n = 2 * page + 123
    handle = nbflow.start(writer, 99, n, name)
    starts = [0, page - 1, page, page + 1, n - 1]
    readers = Readers()
    for i, start in enumerate(starts):
        readers.add(
            start,
            lambda start=start: nbflow.read_stream(
                handle.workflow_id, "items", start=start, timeout=READ_TIMEOUT
            ),
        )
        if i == 0:
            readers.wait_first_values()  # the reader from 0 has item 0, mid-stream
    event.set()  # the others were started before the writes went on
    results = readers.join()
    for start in starts:
        assert results[start] == expected(99, n, start), f"from {start}"
    assert handle.result(timeout=READ_TIMEOUT) == n
    assert list(nbflow.read_stream(handle.workflow_id, "items")) == expected(99, n)


def test_many_workflows_started_at_once_all_succeed_with_streams_closed(
    rt: nbflow.Runtime,
) -> None:
    """96 workflows started at once from 8 threads all finish SUCCESS with their results, their
    streams hold their items and are closed, and the history lists each once."""
    per_thread, threads_n = 12, 8
    handles: dict[int, nbflow.WorkflowHandle] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_n)

    def starter(t: int) -> None:
        try:
            barrier.wait(READ_TIMEOUT)
            for j in range(per_thread):
                w = t * per_thread + j
                h = nbflow.start(small, w)
                with lock:
                    handles[w] = h
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=starter, args=(t,)) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(READ_TIMEOUT)
        assert not thread.is_alive()
    assert not errors, errors
    total = per_thread * threads_n
    assert sorted(handles) == list(range(total))
    assert len({h.workflow_id for h in handles.values()}) == total

    for w, h in handles.items():
        assert h.result(timeout=READ_TIMEOUT) == sum((w + i) ** 2 for i in range(3))
        assert h.status() == nbflow.Status.SUCCESS
        streams = {s.key: s for s in nbflow.list_streams(h.workflow_id)}
        assert set(streams) == {"out", "progress"}
        assert (streams["out"].items, streams["out"].closed) == (3, True)
        assert (streams["progress"].items, streams["progress"].closed) == (2, True)
        assert list(nbflow.read_stream(h.workflow_id, "out")) == expected(w, 3)
        assert [p["done"] for p in nbflow.read_stream(h.workflow_id, "progress")] == [1, 3]
        assert [s.name for s in nbflow.list_steps(h.workflow_id)] == ["test_concurrency.square"] * 3

    listed = nbflow.list_workflows(name="test_concurrency.small", limit=10 * total)
    assert sorted(info.workflow_id for info in listed) == sorted(
        h.workflow_id for h in handles.values()
    )
    assert {info.status for info in listed} == {nbflow.Status.SUCCESS}
    assert nbflow.list_workflows(status="PENDING") == []


def test_same_id_started_concurrently_runs_once(rt: nbflow.Runtime) -> None:
    """8 threads start the same workflow id at once: it runs once, every handle sees its result,
    and its stream holds each item once."""
    barrier = threading.Barrier(8)
    handles: list[nbflow.WorkflowHandle] = []
    lock = threading.Lock()

    def starter() -> None:
        barrier.wait(READ_TIMEOUT)
        with nbflow.set_workflow_id("shared-id"):
            h = nbflow.start(writer, 7, 300)
        with lock:
            handles.append(h)

    threads = [threading.Thread(target=starter) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(READ_TIMEOUT)
    assert len(handles) == 8 and {h.workflow_id for h in handles} == {"shared-id"}
    assert [h.result(timeout=READ_TIMEOUT) for h in handles] == [300] * 8
    assert list(nbflow.read_stream("shared-id", "items")) == expected(7, 300)
    assert len(nbflow.list_workflows()) == 1
