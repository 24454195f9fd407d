"""The engine: what every part of a runtime shares, and the one way to wait for a change.

An :class:`Engine` bundles the store, the ordered write log and its committer, the notifier that
wakes waiters after commits, how values are encoded (``allow_pickle``), the executor id of this
runtime and whether it is open. Executions, readers, handles and the history all work through it;
none of them knows the :class:`~nbflow.Runtime`.

Every wait for something another thread or process writes (a stream item, an event, a message, a
workflow's end) is :meth:`Watch.wait_until`: subscribe first, then look, then sleep until the
committer (or, on PostgreSQL, another process's notification) says the workflow changed, or until
the store's poll interval passes, and look again. A committer that failed for good wakes every
watch, and a wait never starts or goes on after it: it raises the write log's
:class:`~nbflow.DatabaseError` instead of waiting for changes that will never be committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any, TypeVar

from nbflow._dberrors import DatabaseError
from nbflow._errors import RuntimeClosedError
from nbflow._serialization import Encoded, decode, decode_error, decode_many, encode
from nbflow.engine._notify import Notifier, Row, Subscription
from nbflow.engine._writelog import CommitCallback, WriteLog
from nbflow.store import DuckDBStore, Store
from nbflow.store._valuefiles import ValueFiles, parse_ref
from nbflow.workflow._alarm import Alarm

__all__ = ["Engine", "Watch"]

T = TypeVar("T")

#: ``probe(woken)``: what a wait looks for, or None to wait on. ``woken`` is False after a wait
#: that ended because the poll interval passed (nothing said the workflow changed).
Probe = Callable[[bool], "T | None"]


class Engine:
    """The shared state of one runtime.

    Args:
        store: The open store.
        executor_id: This runtime's id among the processes sharing the store.
        allow_pickle: Whether values that are not JSON-native may be pickled and unpickled.
        on_commit: Called on the committer thread after each batch (see :class:`WriteLog`).
    """

    def __init__(
        self, store: Store, *, executor_id: str, allow_pickle: bool, on_commit: CommitCallback
    ) -> None:
        self.store = store
        self.database = store.url
        self.executor_id = executor_id
        self.allow_pickle = allow_pickle
        self.notifier = Notifier()
        # A failed committer writes nothing more: every watch wakes and finds it (Watch._rounds).
        self.log = WriteLog(store, on_commit, on_failure=self.notifier.wake_all)
        self.closed = False
        #: Large values' files beside a DuckDB file (None: every value stays in its row).
        self.files: ValueFiles | None = None
        if isinstance(store, DuckDBStore) and not store.url.startswith(":memory:"):
            self.files = ValueFiles(store.url + ".values")

    def check_open(self) -> None:
        """Raise :class:`RuntimeClosedError` once the runtime is closed."""
        if self.closed:
            raise RuntimeClosedError(
                f"The nbflow runtime for {self.database!r} is closed. Open it again with "
                "nbflow.configure() or nbflow.Runtime()."
            )

    def check_healthy(self) -> None:
        """Raise :class:`~nbflow.DatabaseError` once a commit failed: nothing is written after it,
        so no change can be waited for."""
        if self.log.failure is not None:
            raise self.log.failed_error()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything written so far is durable. Returns False on timeout."""
        return self.log.wait_durable(None, timeout)

    # -- values --------------------------------------------------------------------------------

    def encode(self, value: Any, what: str) -> Encoded:
        """``(json, pickle)`` for ``value`` (see :func:`nbflow._serialization.encode`); a large
        blob is written to its file first, and its reference returned in its place."""
        text, blob = encode(value, what=what, allow_pickle=self.allow_pickle)
        if blob is not None and self.files is not None and len(blob) > self.files.threshold:
            blob = self.files.put(blob)
        return text, blob

    def keep_blob(self, blob: bytes) -> bytes:
        """``blob`` as a row keeps it: a reference to its file when it is large."""
        if self.files is not None and len(blob) > self.files.threshold:
            return self.files.put(blob)
        return blob

    def read_blob(self, blob: Any, what: str) -> Any:
        """The stored bytes of a row's blob: a reference's file, memory-mapped, or ``blob``."""
        if parse_ref(blob) is not None:
            if self.files is None:
                raise DatabaseError(
                    f"The stored value of {what} is kept in a file beside a DuckDB database, "
                    f"and {self.database!r} is not one: the row was copied without its file."
                )
            return self.files.read(blob, what)
        return blob

    def decode(self, text: str | None, blob: Any, what: str) -> Any:
        """The value stored as ``(text, blob)``."""
        if blob is not None:
            blob = self.read_blob(blob, what)
        return decode(text, blob, what=what, allow_pickle=self.allow_pickle)

    def decode_many(self, stored: list[tuple[str | None, Any]], what: str) -> list[Any]:
        """Decode many stored values at once (see :func:`nbflow._serialization.decode_many`)."""
        if any(blob is not None for _, blob in stored):
            stored = [(text, self.read_blob(blob, what)) for text, blob in stored]
        return decode_many(stored, what=what, allow_pickle=self.allow_pickle)

    def collect_value_files(self, *, settled: bool = False) -> int:
        """Remove the value files no committed row refers to (see :class:`ValueFiles`);
        ``settled``: no workflow of this process runs (see :meth:`ValueFiles.collect`)."""
        store = self.store
        if self.files is None or not isinstance(store, DuckDBStore):
            return 0
        self.flush()
        return self.files.collect(store.sql, settled=settled)

    def decode_error(self, text: str | None, blob: bytes | None) -> BaseException:
        """The exception recorded as ``(text, blob)``."""
        return decode_error(text, blob, self.allow_pickle)

    # -- waiting -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def watch(
        self, workflow_id: str, key: str | None = None, event: threading.Event | None = None
    ) -> Iterator[Watch]:
        """Watch a workflow (and with ``key``, buffer its stream's committed rows) in a block."""
        event = event if event is not None else threading.Event()
        watch = Watch(self, workflow_id, key, event.set, event.clear, event.wait)
        try:
            yield watch
        finally:
            watch.stop()

    @contextlib.contextmanager
    def watch_async(
        self, workflow_id: str, key: str | None = None, alarm: Alarm | None = None
    ) -> Iterator[Watch]:
        """:meth:`watch` for a coroutine: waits without blocking its event loop (and, with
        ``alarm``, is woken when it rings, as a thread's watch is by its event)."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop has nobody waiting
                loop.call_soon_threadsafe(event.set)

        watch = Watch(self, workflow_id, key, wake, event.clear, async_event=event)
        try:
            with alarm.heard_by(event) if alarm is not None else contextlib.nullcontext():
                yield watch
        finally:
            watch.stop()


class Watch:
    """A subscription to one workflow's changes, with the wait loop over it.

    Attributes:
        workflow_id: The workflow watched.
        async_event: The event an async watch waits on (None for a thread's watch).
    """

    def __init__(
        self,
        engine: Engine,
        workflow_id: str,
        key: str | None,
        wake: Callable[[], None],
        clear: Callable[[], None],
        wait: Callable[[float | None], bool] | None = None,
        *,
        async_event: asyncio.Event | None = None,
    ) -> None:
        self._engine = engine
        self.workflow_id = workflow_id
        self._clear = clear
        self._wait = wait
        self._sub: Subscription = engine.notifier.subscribe(workflow_id, key, wake)
        self.async_event = async_event

    def stop(self) -> None:
        self._engine.notifier.unsubscribe(self._sub)

    def take(self) -> tuple[list[Row], bool]:
        """The stream rows committed since the last call, and whether the buffer went stale."""
        return self._engine.notifier.take(self._sub)

    def _rounds(
        self, probe: Probe[T], timeout: float | None, check: Callable[[], None] | None
    ) -> Generator[float | None, bool, T | None]:
        """The wait loop: yields how long to wait, is sent whether it was woken."""
        deadline = None if timeout is None else time.monotonic() + timeout
        poll = self._engine.store.poll_interval
        woken = True
        while True:
            self._clear()
            if check is not None:
                check()
            found = probe(woken)
            if found is not None:
                return found
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            # Subscribed before this test: a failure after it wakes this watch (Engine.__init__).
            self._engine.check_healthy()
            woken = yield (left if poll is None else min(poll, poll if left is None else left))
            self._engine.check_open()
            self._engine.check_healthy()

    def wait_until(
        self, probe: Probe[T], timeout: float | None, check: Callable[[], None] | None = None
    ) -> T | None:
        """Call ``probe`` until it returns something; None once ``timeout`` seconds passed.

        Args:
            probe: Looks for what is waited for (see :data:`Probe`).
            timeout: Seconds to wait at most (None: no limit).
            check: Called before each look; raises to end the wait (e.g. a cancelled workflow).

        Raises:
            RuntimeClosedError: The runtime closed during the wait.
            DatabaseError: A commit failed (before or during the wait): nothing more is written.
        """
        wait = self._wait
        assert wait is not None, "wait_until needs a watch from Engine.watch"
        return _drive(self._rounds(probe, timeout, check), wait)

    async def wait_until_async(
        self, probe: Probe[T], timeout: float | None, check: Callable[[], None] | None = None
    ) -> T | None:
        """:meth:`wait_until` without blocking the event loop (a watch from :meth:`Engine.watch_async`)."""
        event = self.async_event
        assert event is not None, "wait_until_async needs a watch from Engine.watch_async"
        rounds = self._rounds(probe, timeout, check)
        try:
            delay = next(rounds)
            while True:
                try:
                    await asyncio.wait_for(event.wait(), delay)
                    woken = True
                except asyncio.TimeoutError:
                    woken = False
                delay = rounds.send(woken)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


def _drive(
    rounds: Generator[float | None, bool, T | None], wait: Callable[[float | None], bool]
) -> T | None:
    """Run the rounds of a wait loop, waiting with the blocking ``wait``; what they return."""
    try:
        delay = next(rounds)
        while True:
            delay = rounds.send(wait(delay))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
