"""A reader reads a stream in pages: as JSON arrays built by the database (``read_stream_json``,
DuckDB's way) or as rows (PostgreSQL's); both ways, on both stores, it reads every value exactly
as written, once, in order, from any offset, across chunks, pages and pickled values."""

from __future__ import annotations

import asyncio
import math
import sys
import threading
import uuid
from typing import Any

import pytest

import nbflow
from nbflow.engine import _reader
from nbflow.store._sqlpages import CHUNK
from tests.workflow.test_streams import Point
from tests.workflow.test_validation import nested

pytestmark = pytest.mark.contract

PAGE = 700  # rows a page (monkeypatched): pages end inside chunks and across them


@pytest.fixture(params=[True, False], ids=["json-pages", "row-pages"])
def paged(
    request: pytest.FixtureRequest, rt: nbflow.Runtime, monkeypatch: pytest.MonkeyPatch
) -> nbflow.Runtime:
    """The runtime, its readers reading pages of :data:`PAGE` rows as JSON arrays or as rows."""
    monkeypatch.setattr(type(rt.store), "json_pages", request.param)
    monkeypatch.setattr(_reader, "PAGE_ROWS", PAGE)
    return rt


def value(i: int) -> Any:
    """Item ``i`` of the stream: small dicts, values orjson would misread or refuse (an int past
    64 bits, 19 digits in a string, a lone surrogate, 600 levels, -0.0), pickled ones in a
    stretch of their own (offsets 1,000 to 1,600)."""
    if 1000 <= i < 1600 and i % 100 == 7:
        return Point(i, -i)
    special: dict[int, Any] = {
        3: 2**70 + 3,
        CHUNK - 1: {"n": -(2**64), "s": "1234567890123456789012"},
        CHUNK: "lone \ud800 surrogate",
        CHUNK + 1: nested(600),
        2 * CHUNK + 5: [-0.0, 1e-07, 5e-324, 9_223_372_036_854_775_807],
    }
    return special.get(i, {"i": i, "name": "item", "ok": True})


N = 2 * CHUNK + 300


#: The gates a writer waits at, by name (a workflow's arguments are stored: a name, not an event).
GATES: dict[str, threading.Event] = {}


@nbflow.workflow(name="tests.stream_pages.writer")
def writer(n: int, gate: str | None = None) -> int:
    """Write values ``0..n-1`` to ``items``; with a gate, the second half after it opens."""
    for i in range(n):
        if gate is not None and i == n // 2:
            assert GATES[gate].wait(30), "the test never opened the gate"
        nbflow.write_stream("items", value(i))
    return n


def same(got: list[Any], start: int, n: int = N) -> None:
    """``got`` is values ``start..n-1``, exactly: equal, of the same types, -0.0 kept."""
    want = [value(i) for i in range(start, n)]
    assert len(got) == len(want)
    assert got == want
    assert [type(v) for v in got] == [type(v) for v in want]
    if start <= 2 * CHUNK + 5 < n:
        assert math.copysign(1.0, got[2 * CHUNK + 5 - start][0]) == -1.0


STARTS = [0, 1, 3, PAGE - 1, PAGE, CHUNK - 1, CHUNK, CHUNK + 1, 1007, 1008, 1599, 1600, N - 1, N]


def test_a_closed_stream_reads_back_exactly_from_any_offset(paged: nbflow.Runtime) -> None:
    """From every start (inside a chunk, at its edges, at and after a pickled value, the last
    item, the end), every value comes back exactly, once, in order; async too."""
    handle = nbflow.start(writer, N)
    assert handle.result(timeout=30) == N
    for start in STARTS:
        same(list(paged.read_stream(handle.workflow_id, "items", start=start)), start)

    async def read_all() -> list[Any]:
        return [v async for v in paged.read_stream_async(handle.workflow_id, "items", start=1)]

    same(asyncio.run(read_all()), 1)


def test_a_live_stream_reads_back_exactly_while_written(paged: nbflow.Runtime) -> None:
    """Readers started while the writer waits halfway (from the start, mid-chunk, past what is
    written) get every value once, in order, from the database and then as written."""
    gate = GATES.setdefault(str(uuid.uuid4()), threading.Event())
    handle = nbflow.start(writer, N, next(k for k, v in GATES.items() if v is gate))
    got: dict[int, list[Any]] = {}

    def read(start: int) -> None:
        got[start] = list(paged.read_stream(handle.workflow_id, "items", start=start, timeout=60))

    starts = [0, CHUNK + 1, N // 2 + 10]
    threads = [threading.Thread(target=read, args=(s,), name=f"test-read-{s}") for s in starts]
    for thread in threads:
        thread.start()
    gate.set()
    assert handle.result(timeout=60) == N
    for thread in threads:
        thread.join(timeout=60)
    for start in starts:
        same(got[start], start)


def deep_stack(depth: int, then: Any) -> Any:
    """``then()`` called ``depth`` frames down."""
    return then() if depth <= 0 else deep_stack(depth - 1, then)


def test_a_deep_value_reads_back_from_a_deep_stack(paged: nbflow.Runtime) -> None:
    """Values only ``json`` reads (a lone surrogate; one 600 levels deep holding one), read by a
    thread already deep in its stack (too deep for ``json`` to read them inside a page's array
    here, or the deep one even alone), come back exactly, with their neighbours."""
    values = ["lone \ud800", {"s": "\udfff", "deep": nested(600)}, {"i": 2}]

    @nbflow.workflow(name="tests.stream_pages.deep")
    def deep() -> None:
        for v in values:
            nbflow.write_stream("deep", v)

    handle = nbflow.start(deep)
    handle.result(timeout=30)
    depth = sys.getrecursionlimit() - 450
    got = deep_stack(depth, lambda: list(paged.read_stream(handle.workflow_id, "deep")))
    assert got == values


def test_pages_of_large_values_read_fewer_rows(
    paged: nbflow.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a page of large values, the next reads about PAGE_BYTES of them, not PAGE_ROWS
    rows; every value still comes back once, in order."""
    monkeypatch.setattr(_reader, "PAGE_ROWS", 20)
    monkeypatch.setattr(_reader, "PAGE_BYTES", 50_000)
    limits: list[int] = []
    store = paged.store
    for name in ("read_stream", "read_stream_json"):
        method = getattr(store, name)

        def spy(*args: Any, method: Any = method) -> Any:
            limits.append(args[3])
            return method(*args)

        monkeypatch.setattr(store, name, spy)

    @nbflow.workflow(name="tests.stream_pages.large")
    def large() -> None:
        for i in range(40):
            nbflow.write_stream("big", f"{i:05d}" + "x" * 10_000)

    handle = nbflow.start(large)
    handle.result(timeout=30)
    got = list(paged.read_stream(handle.workflow_id, "big"))
    assert got == [f"{i:05d}" + "x" * 10_000 for i in range(40)]
    assert limits[0] == 20 and len(limits) >= 5 and max(limits[1:]) <= 5, limits


def test_a_stream_missing_offsets_reads_back_in_order(paged: nbflow.Runtime) -> None:
    """Rows of offsets that do not follow each other (nbflow never writes such a stream; a copy
    could hold one) are read once each, in order, from any start, across a chunk's mark."""
    from tests.store.test_conformance import end, item, workflow

    offsets = [0, 1, 5, CHUNK, CHUNK + 3, 3 * CHUNK]
    rows = [item("gaps", "k", i, f'{{"at":{i}}}') for i in offsets]
    paged.store.commit([workflow("gaps", status="SUCCESS"), *rows, end("gaps", "k", 3 * CHUNK + 1)])
    for start in [0, 2, 5, 6, CHUNK, 3 * CHUNK, 3 * CHUNK + 1]:
        got = list(paged.read_stream("gaps", "k", start=start))
        assert got == [{"at": i} for i in offsets if i >= start], start
