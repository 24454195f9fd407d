"""The reader of a live view: one workflow's record, events and streams, read into its state.

A :class:`Follower` runs in the view's reader thread (:class:`~nbflow.notebook._view.LiveView`
starts it after the view is displayed). It replays the streams from offset 0, then follows them
with short waits, a slice of time per stream, looks for new streams and events every half second,
and follows the status: ``ENQUEUED``, PENDING (running, or interrupted when nothing runs it),
then the final one with its end time and error. Each item read goes into the view's
:class:`~nbflow.notebook._state.ViewState` under the view's lock, then the view draws (throttled).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from nbflow._errors import StreamTimeoutError, WorkflowNotFoundError
from nbflow.engine._runtime import Runtime
from nbflow.notebook._rows import failure, latest_start, runs
from nbflow.notebook._state import ViewState
from nbflow.store import WorkflowRow

__all__ = ["Follower"]

_WAIT = 0.1  # seconds the reader waits for new items before it looks around
_IDLE_WAIT = 0.25  # the same, after a second without new items (fewer queries when idle)
_SLICE = 0.25  # seconds spent on one stream before the others get their turn
_DISCOVER = 0.5  # seconds between looks for new streams (keys=None)
_FINAL = ("SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")


class Follower:
    """Reads one workflow into a view's state (in the view's reader thread).

    Args:
        runtime: The runtime to read from.
        workflow_id: The workflow.
        state: The view's state (changed under ``lock`` only).
        lock: The view's lock.
        apply: Draws the state: ``apply()`` when the throttle allows, ``apply(force=True)`` now.
        stop: Set to stop reading.
        cancel: Set (by the Cancel button) to cancel the workflow from the reader.
        cancel_now: Cancels the workflow.
        auto_keys: Whether to follow every stream, including those created later.
    """

    def __init__(
        self,
        runtime: Runtime,
        workflow_id: str,
        state: ViewState,
        lock: threading.Lock,
        apply: Callable[..., None],
        stop: threading.Event,
        cancel: threading.Event,
        cancel_now: Callable[[], None],
        *,
        auto_keys: bool,
    ) -> None:
        self.runtime, self.workflow_id, self.state, self.lock = runtime, workflow_id, state, lock
        self.apply, self.stop, self.cancel, self.cancel_now = apply, stop, cancel, cancel_now
        self.auto_keys = auto_keys
        self.offsets: dict[str, int] = {}
        self.drained: set[str] = set()
        self.read_at = 0.0  # when items last arrived (monotonic)
        self.ran_here = False  # whether an execution of this runtime ran it, when last looked
        #: The final record and its error text, once read: shown when every stream is drained,
        #: so that a view never shows the end before the last items (a bar "succeeded" at 39/40)
        self.ending: tuple[WorkflowRow, str] | None = None

    def load(self) -> None:
        """Read the workflow's record: its name, creation, status (and end, if it ended)."""
        try:
            row = self.runtime.workflow_row(self.workflow_id)
        except WorkflowNotFoundError:  # started a moment ago: its record waits for the committer
            self.runtime.flush(10.0)
            row = self.runtime.workflow_row(self.workflow_id)
        with self.lock:
            self.state.name = row.name
            self.state.created_at = row.created_at
            if row.status in ("ENQUEUED", "DELAYED"):  # waiting for a worker of its queue
                self.state.status = row.status
        if row.status not in ("PENDING", "ENQUEUED", "DELAYED"):
            self._finish()
        else:
            self._look_at(row)

    def _look_at(self, row: WorkflowRow) -> None:
        """Take a PENDING workflow's record: whether it runs, when it last (re)started."""
        running = runs(self.runtime, row)
        with self.lock:
            if row.status == "PENDING":
                latest = latest_start(self.runtime, row, was_interrupted=not self.state.running)
                self.state.restarted(row.created_at, latest, queued=row.queue_name is not None)
            self.state.running = running

    def _finish(self) -> None:
        """Read the workflow's final status, end time and error from its record (shown once the
        streams are drained: :meth:`_show_end`)."""
        row = self.runtime.workflow_row(self.workflow_id)
        self.ending = (row, self._failure(row) if row.error else "")

    def _show_end(self) -> None:
        """Put the final record read by :meth:`_finish` into the view's state."""
        assert self.ending is not None
        row, error = self.ending
        with self.lock:
            self.state.status = row.status
            self.state.ended_at = row.ended_at
            self.state.running = True
            if error:
                self.state.error = error

    def _failure(self, row: WorkflowRow) -> str:
        """The recorded error, naming the step (and ``map`` item) that raised it."""
        step = None
        if row.error_step is not None:
            steps = self.runtime.list_steps(row.workflow_id)
            step = next((s.name for s in steps if s.function_id == row.error_step), None)
        return failure(row.error or "", step)

    def _discover(self) -> None:
        """Look for new streams (when watching all), and at the workflow's events."""
        found: list[str] = []
        if self.auto_keys:
            found = [info.key for info in self.runtime.list_streams(self.workflow_id)]
        events = self.runtime.events(self.workflow_id)
        with self.lock:
            for key in sorted(found, key=lambda k: k != self.state.progress_key):
                self.state.add_key(key)
            self.state.events = events

    def _going(self) -> bool:
        """Whether to go on; checked before each query (none once the runtime is closing)."""
        return not self.stop.is_set() and not self.runtime.closed

    def loop(self) -> None:
        """Read until the workflow is final and its streams drained, or :attr:`stop` is set
        (stopped with the end read, the view shows it)."""
        try:
            self._read_to_end()
        finally:
            if self.ending is not None and not self.state.final:
                self._show_end()

    def _read_to_end(self) -> None:
        state = self.state
        next_look = 0.0
        looked_at_end = False  # whether streams and events were looked at after the end
        while self._going():
            if self.cancel.is_set():
                self.cancel.clear()
                self.cancel_now()
            ended = self.ending is not None
            if time.monotonic() >= next_look or (ended and not looked_at_end):
                looked_at_end = ended
                self._discover()
                next_look = time.monotonic() + _DISCOVER
            todo = [key for key in state.keys if key not in self.drained]
            wait = _WAIT if time.monotonic() - self.read_at < 1.0 else _IDLE_WAIT
            for key in todo:
                if not self._going():
                    return
                self._read(key, max(0.02, wait / len(todo)), _SLICE / len(todo))
            if not self._going():
                return
            if not ended:
                self._follow_status(looked_at_end or time.monotonic() >= next_look - _WAIT)
            if ended and looked_at_end and all(k in self.drained for k in state.keys):
                self._show_end()
                return
            if not todo:
                self.stop.wait(wait)
            self.apply()

    def _follow_status(self, look: bool) -> None:
        """Take the workflow's status; with ``look``, whether it runs too (one more query)."""
        status = self.runtime.status(self.workflow_id)
        if status.is_final:
            self._finish()
            return
        runs_here = self.runtime.execution(self.workflow_id) is not None
        if look or runs_here != self.ran_here or status.value != self.state.status:
            if self.ran_here and not runs_here:  # it ended here a moment ago: not "interrupted"
                self.runtime.flush(5.0)  # its end, on its way to the database, is written first
            self.ran_here = runs_here
            row = self.runtime.workflow_row(self.workflow_id)
            if row.status in _FINAL:  # ended meanwhile
                self._finish()
                return
            with self.lock:  # ENQUEUED, then PENDING once a worker took it
                self.state.status = row.status
            self._look_at(row)

    def _read(self, key: str, wait: float, slice_: float) -> None:
        """Read ``key``'s new items for up to ``slice_`` s, waiting ``wait`` s for each."""
        offset = self.offsets.get(key, 0)
        items = self.runtime.read_stream(self.workflow_id, key, start=offset, timeout=wait)
        deadline = time.monotonic() + slice_
        try:
            for value in items:
                offset += 1
                with self.lock:
                    self.state.feed(key, value)
                self.apply()
                if self.stop.is_set() or self.cancel.is_set() or time.monotonic() > deadline:
                    return
            self.drained.add(key)  # closed, and every item read
        except StreamTimeoutError:
            pass  # nothing new for now
        finally:
            if offset > self.offsets.get(key, 0):
                self.read_at = time.monotonic()
            self.offsets[key] = offset
            close = getattr(items, "close", None)
            if close is not None:
                close()  # unsubscribes
