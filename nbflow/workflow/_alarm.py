"""The one cancellable pause: what cuts every wait of a workflow short, in threads and tasks alike.

Each execution has an :class:`Alarm`. A cancel, a closing runtime or a take-over rings it; every
wait of the workflow's body is made through it, so that each ends at once, whether it is a thread
blocked in :meth:`Alarm.pause` (durable sleep, a retry's backoff, a map's wait for a retry) or on
:attr:`Alarm.event` (a watch: recv, get_event, a stream read), or an asyncio task awaiting
:meth:`Alarm.pause_async` or a watch that :meth:`Alarm.heard_by` wakes (the loop is woken with
``call_soon_threadsafe``). The alarm only wakes; the waiter then asks its execution whether to go
on (:attr:`Wake.check`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import NamedTuple

__all__ = ["Alarm", "Wake"]


class Alarm:
    """Rung once, it wakes every pause and watch of one execution, sync and async."""

    def __init__(self) -> None:
        #: Set when rung: what a thread's wait (a pause, a watch) waits on. A thread's watch
        #: shares it with the notifications it waits for, and clears it between looks: whether
        #: the workflow goes on is its execution's to say (``Wake.check``), not this event's.
        self.event = threading.Event()
        self._lock = threading.Lock()
        self._tasks: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._threads: list[threading.Event] = []

    def ring(self) -> None:
        """Wake every wait, now and from now on (from any thread)."""
        with self._lock:
            self.event.set()
            tasks = list(self._tasks)
            for woken in self._threads:
                woken.set()
        for loop, event in tasks:
            with contextlib.suppress(RuntimeError):  # a closed loop has nobody waiting
                loop.call_soon_threadsafe(event.set)

    def pause(self, seconds: float | None) -> None:
        """Block this thread for ``seconds`` (None: until rung), or until the alarm rings."""
        self.event.wait(seconds)

    async def pause_async(self, seconds: float | None) -> None:
        """:meth:`pause` in an asyncio task: the loop goes on meanwhile."""
        event = asyncio.Event()
        with self.heard_by(event), contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    @contextlib.contextmanager
    def heard_by(self, event: asyncio.Event) -> Iterator[None]:
        """In the block, ringing sets ``event`` (an event of the running loop), as it sets
        :attr:`event` for threads; already rung, it is set at once."""
        entry = (asyncio.get_running_loop(), event)
        with self._lock:
            if self.event.is_set():
                event.set()
            self._tasks.append(entry)
        try:
            yield
        finally:
            with self._lock:
                self._tasks.remove(entry)

    @contextlib.contextmanager
    def wakes(self, event: threading.Event) -> Iterator[None]:
        """In the block, ringing sets ``event`` too (a thread waiting for something else as
        well: it then asks whether to go on); already rung, it is set at once."""
        with self._lock:
            if self.event.is_set():
                event.set()
            self._threads.append(event)
        try:
            yield
        finally:
            with self._lock:
                self._threads.remove(event)


class Wake(NamedTuple):
    """How a wait inside a workflow ends early: ``check`` raises once the workflow is cancelled
    or its runtime closes; ``alarm`` (when given) rings then, to wake the wait at once."""

    check: Callable[[], None]
    alarm: Alarm | None = None
