"""Stream readers: page through a stream's items, wait for the committer's notification when idle.

A reader subscribes to its stream, catches up from the database in pages (never one row per query),
then gets each new item straight from the committer, right after the commit (see
:mod:`nbflow.engine._notify`). Items written by another process (PostgreSQL) reach it by a notification
from the server, after which it reads the database; it also looks by itself every
``store.poll_interval`` seconds, in case a notification was lost.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, NamedTuple

from nbflow._errors import StreamTimeoutError, WorkflowNotFoundError
from nbflow._serialization import check_text, decode_array, decode_texts
from nbflow.engine._engine import Engine, Watch
from nbflow.engine._execution import Executions
from nbflow.engine._notify import Row
from nbflow.store._sqlpages import CHUNK, CHUNK_MARK, JsonPage
from nbflow.workflow._alarm import Wake

__all__ = ["PAGE_BYTES", "PAGE_ROWS", "StreamReader", "check_read_args"]

#: How many rows one query reads at most: ten chunks. (On DuckDB, pages of 16,384 rows took the
#: peak memory of reading a 1,000,000-item stream from 25 MB more to 32 MB more.)
PAGE_ROWS = 10 * CHUNK
#: About how many bytes of stored values one query reads: a page after one of large values
#: reads fewer rows (at least one).
PAGE_BYTES = 16 << 20


class Chunk(NamedTuple):
    """Values read but not decoded yet: ``items`` stored JSON values from offset ``first``, as
    one JSON array text or as their texts (decoded when the reader reaches them)."""

    first: int
    items: int
    json: str | list[str]


#: A part of a batch: values, or a chunk of them to decode.
Part = list[Any] | Chunk


class Batch(NamedTuple):
    """What one look found: parts of values (possibly none) and whether the stream ended."""

    parts: list[Part]
    ended: bool


def check_read_args(key: str, start: int, timeout: float | None) -> None:
    """Raise for a stream key, start offset or timeout a reader cannot take."""
    check_text(key, "A stream key")
    if type(start) is not int or start < 0:
        raise ValueError(f"start must be an offset >= 0, not {start!r}.")
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be None or >= 0 seconds, not {timeout!r}.")


class StreamReader:
    """Reads one stream of one workflow from an offset (the caller checked that it exists).

    ``wake.check`` is called before each look and may raise to end the read (a cancelled workflow
    reading); ``wake.alarm``, when given, wakes the read's waits (a cancel rings it).
    """

    def __init__(
        self,
        engine: Engine,
        executions: Executions,
        workflow_id: str,
        key: str,
        start: int,
        timeout: float | None,
        wake: Wake | None = None,
    ) -> None:
        check_read_args(key, start, timeout)
        self._engine, self._executions = engine, executions
        self.workflow_id, self.key, self.offset, self.timeout = workflow_id, key, start, timeout
        self._from_db = True  # until a query returns a partial page
        self._limit = PAGE_ROWS  # rows the next query reads at most (see _fit)
        self._pickled = False  # the last page held a pickled value: read the next as rows
        self._check = None if wake is None else wake.check  # a read inside a workflow: a cancel
        self._alarm = None if wake is None else wake.alarm  # ends it

    def _finished(self) -> bool:
        """Whether the workflow ended (its end markers are committed).

        Raises:
            WorkflowNotFoundError: It was deleted while being read (``delete_workflow``,
                ``prune``): what was read stays read, and the read ends.
        """
        if self._executions.ending_soon(self.workflow_id):
            return False
        status = self._engine.store.get_status(self.workflow_id)
        if status is None and self.workflow_id not in self._executions:
            raise WorkflowNotFoundError(self.workflow_id, self._engine.database)
        return status is not None and status not in ("PENDING", "ENQUEUED", "DELAYED")

    def _accept(self, rows: Sequence[Row], parts: list[Part]) -> bool:
        """Take contiguous rows from the current offset into ``parts``; True at the end marker.

        Only the last row can be an end marker: nothing is written after it.
        """
        if not rows:
            return False
        ended = rows[-1][3]
        items = rows[:-1] if ended else rows
        if items:
            texts = [row[1] for row in items]
            self._pickled = None in texts
            if self._pickled:
                parts.append(
                    self._engine.decode_many([(row[1], row[2]) for row in items], self._what())
                )
                size = sum(len(row[1] or row[2] or b"") for row in items)
            else:  # (decoded a chunk at a time, as the database's chunks are)
                for i in range(0, len(texts), CHUNK):
                    chunk = texts[i : i + CHUNK]
                    parts.append(Chunk(items[i][0], len(chunk), chunk))  # type: ignore[arg-type]
                size = sum(map(len, texts))  # type: ignore[arg-type]
            self._fit(len(items), size)
            self.offset = items[-1][0] + 1
        return bool(ended)

    def _what(self) -> str:
        return f"stream {self.key!r} of workflow {self.workflow_id!r}"

    def _fit(self, items: int, size: int) -> None:
        """Size the next page from this one's: :data:`PAGE_BYTES` of values, at most
        :data:`PAGE_ROWS` rows."""
        self._limit = min(PAGE_ROWS, max(1, PAGE_BYTES * items // max(size, 1)))

    def _fetch(self, parts: list[Part]) -> tuple[bool, bool]:
        """Add the next page from the database to ``parts``; return ``(page full, ended)``.

        A store that reads a page as one JSON text (:attr:`Store.json_pages`) does, unless the
        last page held a pickled value; a page that holds one is read as rows.
        """
        store, limit = self._engine.store, self._limit
        if store.json_pages and not self._pickled:
            page = store.read_stream_json(self.workflow_id, self.key, self.offset, limit)
            if not page.pickled:
                self._take_page(page, parts)
                return page.rows >= limit, page.ended
        rows = store.read_stream(self.workflow_id, self.key, self.offset, limit)
        return len(rows) >= limit, self._accept(rows, parts)

    def _take_page(self, page: JsonPage, parts: list[Part]) -> None:
        """Add the values of a page of JSON values to ``parts``, a chunk at a time (decoded when
        the reader reaches it)."""
        if page.first is None or page.last is None:
            return
        self.offset = page.last if page.ended else page.last + 1
        items = page.rows - page.ended
        if not items or page.text is None:
            return
        self._fit(items, len(page.text))
        if page.last - page.first + 1 != page.rows:  # (offsets missing: never from nbflow)
            parts.append(Chunk(page.first, items, f"[{page.text.replace(CHUNK_MARK, '')}]"))
            return
        first, end = page.first, page.first + items
        for text in page.text.split(CHUNK_MARK):
            if text:  # (empty before a mark that starts the text)
                after = min((first // CHUNK + 1) * CHUNK, end)
                parts.append(Chunk(first, after - first, f"[{text.rstrip(',')}]"))
                first = after

    def _decode(self, chunk: Chunk) -> list[Any]:
        """The values of a chunk; one nested too deep to read inside an array here is read alone,
        from its row."""
        if isinstance(chunk.json, list):
            return decode_texts(chunk.json)
        values = decode_array(chunk.json)
        if values is None:
            rows = self._engine.store.read_stream(
                self.workflow_id, self.key, chunk.first, chunk.items
            )
            if len(rows) < chunk.items:  # deleted meanwhile: what was read stays read
                raise WorkflowNotFoundError(self.workflow_id, self._engine.database)
            values = self._engine.decode_many([(r[1], r[2]) for r in rows], self._what())
        return values

    def _take_buffered(self, watch: Watch, parts: list[Part]) -> str | None:
        """Append the values the committer handed over; ``"ended"``, ``"db"`` or None."""
        rows, stale = watch.take()
        if stale:
            return "db"
        first = 0
        while first < len(rows) and rows[first][0] < self.offset:
            first += 1  # already read from the database
        rows = rows[first:]
        if rows and (rows[0][0] != self.offset or rows[-1][0] != self.offset + len(rows) - 1):
            return "db"  # a gap: the database has what the buffer missed
        return "ended" if self._accept(rows, parts) else None

    def _look(self, watch: Watch, woken: bool) -> Batch | None:
        """One look: what is there now, or None to wait.

        The reader subscribed before its first query, so once a query returns a partial page, every
        later item reaches it through the subscription's buffer, without a query. A wait that ran
        its poll interval out (not ``woken``) reads the database: a notification may be lost.
        """
        if not woken:
            self._from_db = True
        parts: list[Part] = []
        if self._from_db:
            full, ended = self._fetch(parts)
            if ended or full:
                return Batch(parts, ended)
            self._from_db = False
        outcome = self._take_buffered(watch, parts)
        if outcome == "db":
            self._from_db = True
            return Batch(parts, False) if parts else self._look(watch, True)
        if outcome == "ended" or parts:
            return Batch(parts, outcome == "ended")
        if self._finished():
            # The final status commits with the end markers; the database has everything now.
            while True:
                full, ended = self._fetch(parts)
                if ended or not full:
                    return Batch(parts, True)
        return None

    def _timed_out(self) -> StreamTimeoutError:
        assert self.timeout is not None
        return StreamTimeoutError(self.workflow_id, self.key, self.offset, self.timeout)

    def values(self) -> Iterator[Any]:
        """The stream's values, as a blocking iterator (handed out by C code, a batch at a time:
        no Python frame per value)."""
        return itertools.chain.from_iterable(self._batches())

    def _batches(self) -> Iterator[list[Any]]:
        """The stream's values, a batch (a page, or what the committer handed over) at a time."""
        event = None if self._alarm is None else self._alarm.event
        with self._engine.watch(self.workflow_id, self.key, event) as watch:
            while True:
                look = functools.partial(self._look, watch)
                batch = watch.wait_until(look, self.timeout, self._check)
                if batch is None:
                    raise self._timed_out()
                for part in batch.parts:
                    yield part if isinstance(part, list) else self._decode(part)
                if batch.ended:
                    return

    async def avalues(self) -> AsyncIterator[Any]:
        """The stream's values, as an async iterator (waits without blocking the loop)."""
        with self._engine.watch_async(self.workflow_id, self.key, self._alarm) as watch:
            while True:
                look = functools.partial(self._look, watch)
                batch = await watch.wait_until_async(look, self.timeout, self._check)
                if batch is None:
                    raise self._timed_out()
                for part in batch.parts:
                    for value in part if isinstance(part, list) else self._decode(part):
                        yield value
                if batch.ended:
                    return
