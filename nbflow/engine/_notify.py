"""Waking stream readers in this process, and handing them what was just committed.

A reader subscribes to one stream before its first query. After each commit, the committer pushes
the committed rows of that stream into the subscription's buffer and calls its callback, so a live
reader gets new items without querying the database at all. A buffer holds at most ``max_rows``:
a reader that falls further behind is told to page through the database instead, so memory stays
flat however fast the writer is.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from nbflow.store._ops import Finish, Fork, Op, StreamRow, changes

__all__ = ["Notifier", "Subscription"]

Row = tuple[int, "str | None", "bytes | None", bool]


class Subscription:
    """A reader's interest in one stream: its wake-up callback and a buffer of committed rows.

    Attributes:
        rows: Committed rows ``(offset, value_json, value_pickle, is_end)``, in offset order.
        stale: True when the buffer cannot be trusted (it overflowed, or the store changed the
            stream itself): the reader must read from the database.
    """

    __slots__ = ("callback", "key", "rows", "stale", "workflow_id")

    def __init__(self, workflow_id: str, key: str | None, callback: Callable[[], None]) -> None:
        self.workflow_id = workflow_id
        self.key = key
        self.callback = callback
        self.rows: deque[Row] = deque()
        self.stale = False


class Notifier:
    """The subscriptions of one runtime, fed by its committer thread."""

    def __init__(self, max_rows: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, set[Subscription]] = {}
        self._max_rows = max_rows

    def subscribe(
        self, workflow_id: str, key: str | None, callback: Callable[[], None]
    ) -> Subscription:
        """Start buffering the stream's committed rows and calling ``callback`` after commits.

        With ``key`` None, nothing is buffered: ``callback`` is called whenever the workflow changes
        (e.g. to wait for its end).
        """
        sub = Subscription(workflow_id, key, callback)
        with self._lock:
            self._subs.setdefault(workflow_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.workflow_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.workflow_id]

    def take(self, sub: Subscription) -> tuple[list[Row], bool]:
        """Everything buffered for ``sub``, and whether it went stale (then the buffer is reset)."""
        with self._lock:
            rows = list(sub.rows)
            sub.rows.clear()
            stale, sub.stale = sub.stale, False
        return ([] if stale else rows), stale

    def _push(self, subs: set[Subscription], row: StreamRow) -> None:
        for sub in subs:
            if sub.key != row.key or sub.stale:
                continue
            if len(sub.rows) >= self._max_rows:
                sub.stale = True
                sub.rows.clear()
            else:
                sub.rows.append((row.offset, row.value_json, row.value_pickle, row.is_end))

    def published(self, batch: list[Op]) -> None:
        """Route a committed batch to the subscriptions it concerns, then wake them."""
        with self._lock:
            if not self._subs:
                return
            all_subs = self._subs
            for op in batch:
                if type(op) is StreamRow:
                    subs = all_subs.get(op.workflow_id)
                    if subs:
                        self._push(subs, op)
                elif type(op) is Finish:
                    subs = all_subs.get(op.workflow_id)
                    if not subs:
                        continue
                    if op.markers is None:  # the store changed the streams itself
                        for sub in subs:
                            sub.stale = True
                            sub.rows.clear()
                    else:
                        for marker in op.markers:
                            self._push(subs, marker)
                elif type(op) is Fork:  # the store copied the streams
                    for sub in all_subs.get(op.new_id, ()):
                        sub.stale = True
                        sub.rows.clear()
            woken = changes(batch).workflows
            callbacks = [sub.callback for wid in woken if wid in all_subs for sub in all_subs[wid]]
        for callback in callbacks:
            callback()

    def changed(self, workflow_id: str) -> None:
        """The workflow's streams or status changed behind the committer's back (another process,
        or a reopen): its readers must look at the database."""
        with self._lock:
            subs = list(self._subs.get(workflow_id, ()))
            for sub in subs:
                sub.stale = True
                sub.rows.clear()
        for sub in subs:
            sub.callback()

    def wake_all(self) -> None:
        """Wake every subscriber (e.g. when the runtime closes)."""
        with self._lock:
            callbacks = [sub.callback for subs in self._subs.values() for sub in subs]
        for callback in callbacks:
            callback()
