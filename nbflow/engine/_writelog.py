"""The ordered write log and its committer thread (group commit).

Every write of a runtime is appended here in program order. One committer thread takes whatever is
queued, commits it as one transaction (bulk inserts), marks it durable and wakes whoever waits:
callers waiting for durability, and stream readers of the workflows it touched. Because batches are
committed in order, a later write is never durable before an earlier one.

A commit that raises stops the committer for good: the log keeps the error as :attr:`WriteLog.failure`
(every later append and durability wait raises it as :class:`DatabaseError`), and calls its
``on_failure`` callback so that whoever waits elsewhere (readers, waiters on the notifier) wakes and
sees it. The failed batch is never reported as committed: nothing of it was written.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

from nbflow._dberrors import DatabaseError
from nbflow._errors import RuntimeClosedError
from nbflow.store._base import Store
from nbflow.store._ops import Enqueue, Finish, Op, StepRow, StreamRow, WorkflowRow

__all__ = ["CommitCallback", "WriteLog", "op_size"]

#: Every this many operations appended while the queue is not empty, a writer gives the committer
#: a turn (see :meth:`WriteLog._give_turn`). Measured (benchmarks.compare b, 4 alternating
#: sittings): 10,000 stream writes 82-94k/s without, 99-120k/s with; 64 and 1,024 did less.
_TURN = 256

#: Called after each committed batch with what was written of it and the workflows whose writes
#: the store left out (cancelled or taken over by another process).
CommitCallback = Callable[[list[Op], set[str]], None]


class WriteLog:
    """An append-only queue of operations, committed in order by one background thread.

    Args:
        store: Where batches are committed.
        on_commit: Called on the committer thread after each committed batch with what was
            written of it, and the ids of the workflows whose writes the store left out (another
            process cancelled them or took them over: see :meth:`Store.commit`).
        on_failure: Called on the committer thread once, after a commit failed and
            :attr:`failure` is set (e.g. to wake everyone who waits for a change).
        max_batch: The most operations committed in one transaction.
        batch_bytes: About the most bytes (of values: ids, JSON, pickles) in one transaction.
        max_bytes: About the most bytes queued: past it, :meth:`make_room` makes writers wait
            until the committer takes a batch (a writer that outruns the disk waits).
        linger: Seconds the committer waits, when only new workflows are queued, for their first
            checkpoint or final status: a short workflow then commits once, not twice.
    """

    def __init__(
        self,
        store: Store,
        on_commit: CommitCallback,
        *,
        on_failure: Callable[[], None] | None = None,
        max_batch: int = 50_000,
        batch_bytes: int = 4 << 20,
        max_bytes: int = 16 << 20,
        linger: float = 0.001,
    ) -> None:
        self._store = store
        self._on_commit = on_commit
        self._on_failure = on_failure
        self._max_batch = max_batch
        self._batch_bytes = batch_bytes
        self._max_bytes = max_bytes
        self._queued_bytes = 0  # of the queue's operations (their sizes in _sizes)
        self._sizes: list[int] = []
        self._linger = linger
        self._lingering = False
        self._others = 0  # queued operations that are not new workflows (no linger for them)
        self._waiting = 0  # threads in wait_durable: the committer must not linger then
        # The committer alone waits on this condition; each waiter for durability has an event
        # of its own, set when its target is committed: a commit wakes only those it concerns
        # (waking every waiting thread on each commit made 1,000 workflows started at once
        # spend most of their time in the kernel).
        #: The log's lock: hold it to make a check and an append one atomic action (a plain
        #: lock: ``with`` runs no Python frame, as a Condition's does; the hot path takes it).
        self.lock = lock = threading.Lock()
        self._cond = threading.Condition(lock)
        self._room = threading.Condition(lock)  # writers waiting for the queue to shrink
        self._waiters: list[tuple[int, int, threading.Event]] = []  # heap of (target, n, event)
        self._tickets = itertools.count()
        self._queue: list[Op] = []
        self._appended = 0  # sequence number of the last appended op
        self._turned = 0  # self._appended when a writer last gave the committer a turn
        self._durable = 0  # sequence number of the last committed op
        #: What made a commit fail, once one did (set once, by the committer): nothing is written
        #: after it. Read it without the lock: a single attribute test on hot paths.
        self.failure: BaseException | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="nbflow-committer", daemon=True)
        self._thread.start()

    def append(self, op: Op) -> int:
        """Queue one operation; return its sequence number (see :meth:`wait_durable`)."""
        with self._cond:
            return self.append_locked(op)

    def append_locked(self, op: Op, size: int | None = None) -> int:
        """:meth:`append` for a caller that already holds :attr:`lock`; ``size``: the
        operation's :func:`op_size` when the caller knows it from what it encoded."""
        if self.failure is not None or self._stopping:
            self._check()
        queue = self._queue
        queue.append(op)
        if size is None:
            size = op_size(op)
        self._sizes.append(size)
        self._queued_bytes += size
        self._appended += 1
        kind = type(op)
        if kind is not WorkflowRow and kind is not Enqueue:
            self._others += 1
            if len(queue) == 1 or self._lingering:
                self._cond.notify()  # the committer (the only thread that waits on it)
        elif len(queue) == 1:
            self._cond.notify()
        return self._appended

    def make_room(self) -> None:
        """Wait while the queue holds more than ``max_bytes``, until the committer takes a batch.

        Called by writers of large values (stream items, step outputs) before they take the lock:
        memory stays bounded however fast they write. Never waits on the committer's thread.
        Every :data:`_TURN` operations it also gives the committer a turn.
        """
        if self._queued_bytes <= self._max_bytes or threading.current_thread() is self._thread:
            if self._appended - self._turned >= _TURN and self._queue:
                self._give_turn()
            return
        with self._cond:
            self._room.wait_for(
                lambda: (
                    self._queued_bytes <= self._max_bytes
                    or self.failure is not None
                    or self._stopping
                )
            )

    def _give_turn(self) -> None:
        """Let the committer run now: a writer that holds the interpreter lock in a tight loop
        keeps it from the committer (woken, or back from DuckDB, which runs without it) for up
        to ``sys.getswitchinterval()`` (5 ms), and its commits then follow the loop instead of
        running beside it."""
        self._turned = self._appended
        time.sleep(0)

    def failed_error(self) -> DatabaseError:
        """The error every write and wait raises once :attr:`failure` is set."""
        failure = self.failure
        assert failure is not None, "no commit failed"
        error = DatabaseError(
            f"nbflow can no longer write to {self._store.url!r}: a commit failed "
            f"({type(failure).__name__}: {failure}). Nothing after it was written; "
            "close the runtime and open it again (interrupted workflows can then be "
            "recovered).",
            path=self._store.url,
        )
        error.__cause__ = failure
        return error

    def _check(self) -> None:
        if self.failure is not None:
            raise self.failed_error()
        if self._stopping:
            raise RuntimeClosedError(
                f"The nbflow runtime for {self._store.url!r} is closed. Open it again with "
                "nbflow.configure() or nbflow.Runtime()."
            )

    def wait_durable(self, seq: int | None = None, timeout: float | None = None) -> bool:
        """Wait until the op ``seq`` (default: everything appended so far) is committed.

        Returns:
            True when it is durable, False on timeout.

        Raises:
            DatabaseError: A commit failed, so it will never be durable.
        """
        with self._cond:
            target = self._appended if seq is None else seq
            if self._durable >= target:
                return True
            if self.failure is not None:
                raise self.failed_error()
            event = threading.Event()
            heapq.heappush(self._waiters, (target, next(self._tickets), event))
            self._waiting += 1
            self._cond.notify()  # the committer: stop lingering, someone waits
        try:
            event.wait(timeout)
        finally:
            with self._cond:
                self._waiting -= 1
        if self._durable >= target:
            return True
        if self.failure is not None:
            raise self.failed_error()
        return False

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stopping)
                if not self._queue:
                    return  # stopping, and everything is committed
                if not self._waiting and self._only_new_workflows():
                    self._lingering = True
                    self._cond.wait_for(
                        lambda: self._stopping or self._waiting or not self._only_new_workflows(),
                        self._linger,
                    )
                    self._lingering = False
                batch = self._take_batch()
                last = self._durable + len(batch)
            try:
                left_out = self._store.commit(batch)
            except BaseException as exc:  # reported to every waiter
                with self._cond:
                    self.failure = exc
                    self._queue.clear()
                    self._sizes.clear()
                    self._queued_bytes = self._others = 0
                    self._wake(None)
                    self._room.notify_all()
                # Not on_commit: nothing of the batch was written, so no reader may see it. Set
                # before the callback, so a waiter it wakes, or one that looks later, sees it.
                if self._on_failure is not None:
                    self._on_failure()
                return
            if left_out:  # readers here must not see what the store did not write
                batch = [op for op in batch if not _left_out(op, left_out)]
            self._on_commit(batch, left_out)  # first, so that waiters see the state it updates
            with self._cond:
                self._durable = last
                self._wake(last)

    def _take_batch(self) -> list[Op]:
        """The next batch: up to ``max_batch`` operations and about ``batch_bytes`` (at least one
        operation). Holds the lock."""
        sizes, count, total = self._sizes, 0, 0
        limit = min(self._max_batch, len(sizes))
        while count < limit and (count == 0 or total + sizes[count] <= self._batch_bytes):
            total += sizes[count]
            count += 1
        batch = self._queue[:count]
        del self._queue[:count], sizes[:count]
        self._queued_bytes -= total
        self._others -= sum(not _new_workflow(op) for op in batch)
        self._room.notify_all()
        return batch

    def _wake(self, durable: int | None) -> None:
        """Wake the waiters whose target is durable now (None: every waiter). Holds the lock."""
        waiters = self._waiters
        while waiters and (durable is None or waiters[0][0] <= durable):
            heapq.heappop(waiters)[2].set()

    def _only_new_workflows(self) -> bool:
        return not self._others

    def close(self, timeout: float | None = 30.0) -> None:
        """Commit what is queued, then stop the committer thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            self._room.notify_all()
        self._thread.join(timeout)


def op_size(op: Op) -> int:
    """About how many bytes an operation holds: the lengths of its texts and bytes (of a stream
    item or a checkpoint, the values it holds: the hot path)."""
    kind = type(op)
    if kind is StreamRow:
        return len(op.value_json or op.value_pickle or b"")  # type: ignore[union-attr]
    if kind is StepRow:
        step: StepRow = op  # type: ignore[assignment]
        return (
            len(step.output_json or step.output_pickle or b"")
            + len(step.error or "")
            + len(step.error_pickle or b"")
        )
    return sum(len(value) for value in op if type(value) is str or type(value) is bytes)


def _new_workflow(op: Op) -> bool:
    return type(op) is WorkflowRow or type(op) is Enqueue


def _left_out(op: Op, left_out: set[str]) -> bool:
    """Whether ``op`` is a stream item or final status of a workflow the store left out."""
    return (type(op) is StreamRow or type(op) is Finish) and op.workflow_id in left_out
