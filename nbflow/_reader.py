"""Stream readers: page through a stream's items, wait for the committer's notification when idle.

A reader subscribes to its stream, catches up from the database in pages (never one row per query),
then gets each new item straight from the committer, right after the commit (see
:mod:`nbflow._notify`). Items written by another process (PostgreSQL) reach it by a notification
from the server, after which it reads the database; it also looks by itself every
``store.poll_interval`` seconds, in case a notification was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from nbflow._errors import StreamTimeoutError, WorkflowNotFoundError
from nbflow._notify import Row, Subscription
from nbflow._serialization import check_text, decode_many

if TYPE_CHECKING:
    from nbflow._runtime import Runtime

__all__ = ["PAGE_SIZE", "StreamReader"]

#: How many items one query fetches at most.
PAGE_SIZE = 5000


class StreamReader:
    """Reads one stream of one workflow from an offset.

    Raises (at construction):
        WorkflowNotFoundError: No workflow has this id.
    """

    def __init__(
        self, runtime: Runtime, workflow_id: str, key: str, start: int, timeout: float | None
    ) -> None:
        check_text(key, "A stream key")
        if type(start) is not int or start < 0:
            raise ValueError(f"start must be an offset >= 0, not {start!r}.")
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be None or >= 0 seconds, not {timeout!r}.")
        if not runtime.exists(workflow_id):
            raise WorkflowNotFoundError(workflow_id, runtime.database)
        self._runtime = runtime
        self.workflow_id = workflow_id
        self.key = key
        self.offset = start
        self.timeout = timeout
        self._sub: Subscription
        self._from_db = True  # until a query returns a partial page

    def _finished(self) -> bool:
        ex = self._runtime._execution(self.workflow_id)
        if ex is not None and ex.final_status is None:
            return False
        status = self._runtime.store.get_status(self.workflow_id)
        return status is not None and status not in ("PENDING", "ENQUEUED")

    def _accept(self, rows: Sequence[Row], values: list[Any]) -> bool:
        """Decode contiguous rows from the current offset into ``values``; True at the end marker.

        Only the last row can be an end marker: nothing is written after it.
        """
        if not rows:
            return False
        ended = rows[-1][3]
        items = rows[:-1] if ended else rows
        if items:
            values += decode_many(
                [(row[1], row[2]) for row in items],
                what=f"stream {self.key!r} of workflow {self.workflow_id!r}",
                allow_pickle=self._runtime.allow_pickle,
            )
            self.offset = items[-1][0] + 1
        return bool(ended)

    def _fetch(self, values: list[Any]) -> tuple[int, bool]:
        """Append the next page's values from the database; return ``(rows, stream ended)``."""
        rows = self._runtime.store.read_stream(self.workflow_id, self.key, self.offset, PAGE_SIZE)
        return len(rows), self._accept(rows, values)

    def _take_buffered(self, values: list[Any]) -> str | None:
        """Append the values the committer handed over; ``"ended"``, ``"db"`` or None."""
        rows, stale = self._runtime._notifier.take(self._sub)
        if stale:
            return "db"
        first = 0
        while first < len(rows) and rows[first][0] < self.offset:
            first += 1  # already read from the database
        rows = rows[first:]
        if rows and (rows[0][0] != self.offset or rows[-1][0] != self.offset + len(rows) - 1):
            return "db"  # a gap: the database has what the buffer missed
        return "ended" if self._accept(rows, values) else None

    def _step(self) -> tuple[list[Any], str]:
        """One round: the values read, and ``"more"``, ``"ended"`` or ``"wait"``.

        The reader subscribed before its first query, so once a query returns a partial page, every
        later item reaches it through the subscription's buffer, without a query.
        """
        values: list[Any] = []
        if self._from_db:
            fetched, ended = self._fetch(values)
            if ended:
                return values, "ended"
            if fetched >= PAGE_SIZE:
                return values, "more"
            self._from_db = False
        outcome = self._take_buffered(values)
        if outcome == "ended":
            return values, "ended"
        if outcome == "db":
            self._from_db = True
            return values, "more"
        if values:
            return values, "more"
        if self._finished():
            # The final status commits with the end markers; the database has everything now.
            while True:
                fetched, ended = self._fetch(values)
                if ended or fetched < PAGE_SIZE:
                    return values, "ended"
        return values, "wait"

    def _timed_out(self) -> StreamTimeoutError:
        assert self.timeout is not None
        return StreamTimeoutError(self.workflow_id, self.key, self.offset, self.timeout)

    def _wait_time(self, deadline: float | None) -> float | None:
        """How long the next wait may last: up to the deadline, and at most one poll interval."""
        poll = self._runtime.store.poll_interval
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if poll is None:
            return left
        return poll if left is None else min(poll, left)

    def _after_wait(self, woken: bool, deadline: float | None) -> None:
        """Raise when the wait for the next item ran out; after a poll interval, read the database."""
        if not woken:
            if deadline is not None and time.monotonic() >= deadline:
                raise self._timed_out()
            self._from_db = True
        self._runtime._check_open()

    def _deadline(self, deadline: float | None, got_values: bool) -> float | None:
        """The time by which the next item must arrive (``timeout`` is per item, not in all)."""
        if self.timeout is None:
            return None
        if got_values or deadline is None:
            return time.monotonic() + self.timeout
        return deadline

    def values(self) -> Iterator[Any]:
        """The stream's values, as a blocking iterator."""
        runtime = self._runtime
        wakeup = threading.Event()
        self._sub = runtime._notifier.subscribe(self.workflow_id, self.key, wakeup.set)
        deadline = None
        try:
            while True:
                wakeup.clear()
                values, state = self._step()
                yield from values
                if state == "ended":
                    return
                deadline = self._deadline(deadline, bool(values))
                if state == "wait":
                    self._after_wait(wakeup.wait(self._wait_time(deadline)), deadline)
        finally:
            runtime._notifier.unsubscribe(self._sub)

    async def avalues(self) -> AsyncIterator[Any]:
        """The stream's values, as an async iterator (waits without blocking the loop)."""
        runtime = self._runtime
        loop = asyncio.get_running_loop()
        wakeup = asyncio.Event()

        def notify() -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop has nobody waiting
                loop.call_soon_threadsafe(wakeup.set)

        self._sub = runtime._notifier.subscribe(self.workflow_id, self.key, notify)
        deadline = None
        try:
            while True:
                wakeup.clear()
                values, state = self._step()
                for value in values:
                    yield value
                if state == "ended":
                    return
                deadline = self._deadline(deadline, bool(values))
                if state == "wait":
                    try:
                        await asyncio.wait_for(wakeup.wait(), self._wait_time(deadline))
                        woken = True
                    except asyncio.TimeoutError:
                        woken = False
                    self._after_wait(woken, deadline)
        finally:
            runtime._notifier.unsubscribe(self._sub)
