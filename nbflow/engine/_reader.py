"""Stream readers: page through a stream's items, wait for the committer's notification when idle.

A reader subscribes to its stream, catches up from the database in pages (never one row per query),
then gets each new item straight from the committer, right after the commit (see
:mod:`nbflow.engine._notify`). Items written by another process (PostgreSQL) reach it by a notification
from the server, after which it reads the database; it also looks by itself every
``store.poll_interval`` seconds, in case a notification was lost.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, NamedTuple

from nbflow._errors import StreamTimeoutError, WorkflowNotFoundError
from nbflow._serialization import check_text
from nbflow.engine._engine import Engine, Watch
from nbflow.engine._execution import Executions
from nbflow.engine._notify import Row
from nbflow.workflow._alarm import Wake

__all__ = ["PAGE_SIZE", "StreamReader", "check_read_args"]

#: How many items one query fetches at most.
PAGE_SIZE = 5000


class Batch(NamedTuple):
    """What one look found: values (possibly none) and whether the stream ended."""

    values: list[Any]
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

    def _accept(self, rows: Sequence[Row], values: list[Any]) -> bool:
        """Decode contiguous rows from the current offset into ``values``; True at the end marker.

        Only the last row can be an end marker: nothing is written after it.
        """
        if not rows:
            return False
        ended = rows[-1][3]
        items = rows[:-1] if ended else rows
        if items:
            values += self._engine.decode_many(
                [(row[1], row[2]) for row in items],
                f"stream {self.key!r} of workflow {self.workflow_id!r}",
            )
            self.offset = items[-1][0] + 1
        return bool(ended)

    def _fetch(self, values: list[Any]) -> tuple[int, bool]:
        """Append the next page's values from the database; return ``(rows, stream ended)``."""
        rows = self._engine.store.read_stream(self.workflow_id, self.key, self.offset, PAGE_SIZE)
        return len(rows), self._accept(rows, values)

    def _take_buffered(self, watch: Watch, values: list[Any]) -> str | None:
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
        return "ended" if self._accept(rows, values) else None

    def _look(self, watch: Watch, woken: bool) -> Batch | None:
        """One look: what is there now, or None to wait.

        The reader subscribed before its first query, so once a query returns a partial page, every
        later item reaches it through the subscription's buffer, without a query. A wait that ran
        its poll interval out (not ``woken``) reads the database: a notification may be lost.
        """
        if not woken:
            self._from_db = True
        values: list[Any] = []
        if self._from_db:
            fetched, ended = self._fetch(values)
            if ended or fetched >= PAGE_SIZE:
                return Batch(values, ended)
            self._from_db = False
        outcome = self._take_buffered(watch, values)
        if outcome == "db":
            self._from_db = True
            return Batch(values, False) if values else self._look(watch, True)
        if outcome == "ended" or values:
            return Batch(values, outcome == "ended")
        if self._finished():
            # The final status commits with the end markers; the database has everything now.
            while True:
                fetched, ended = self._fetch(values)
                if ended or fetched < PAGE_SIZE:
                    return Batch(values, True)
        return None

    def _timed_out(self) -> StreamTimeoutError:
        assert self.timeout is not None
        return StreamTimeoutError(self.workflow_id, self.key, self.offset, self.timeout)

    def values(self) -> Iterator[Any]:
        """The stream's values, as a blocking iterator."""
        event = None if self._alarm is None else self._alarm.event
        with self._engine.watch(self.workflow_id, self.key, event) as watch:
            while True:
                look = functools.partial(self._look, watch)
                batch = watch.wait_until(look, self.timeout, self._check)
                if batch is None:
                    raise self._timed_out()
                yield from batch.values
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
                for value in batch.values:
                    yield value
                if batch.ended:
                    return
