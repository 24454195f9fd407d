"""Worker threads for parallel steps, and pacing for rate-limited ones.

:class:`Workers` is a small :class:`concurrent.futures.Executor` whose threads are daemonic and
named ``nbflow-<name>-<n>``, started as work arrives and stopped by :meth:`Workers.shutdown`
(:class:`~concurrent.futures.ThreadPoolExecutor`'s threads are neither). :class:`Pacer` spaces
starts for APIs with a rate limit (``"20/s"``, ``"600/min"``).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import queue
import re
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["MIN_WINDOW", "Pacer", "Rate", "Window", "Workers", "parse_limit", "parse_rate"]

_RATE = re.compile(
    r"\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)?\s*"
    r"(s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hour|hours)\s*"
)
_PER = {"s": 1, "m": 60, "h": 3600}
_names = itertools.count(1)


class Rate(NamedTuple):
    """At most ``limit`` starts in any ``period`` seconds."""

    limit: float
    period: float


def parse_limit(rate: str | tuple[float, float], what: str = "rate") -> Rate:
    """The limit and its period from ``"20/s"``, ``"600/min"``, ``"5/10s"``, ``"1000/h"`` or
    a ``(limit, period_seconds)`` tuple: what both ``nbflow.map`` and ``nbflow.Queue`` take.

    Args:
        rate: The rate.
        what: Its name, for the message.

    Raises:
        ValueError: ``rate`` is none of these, or its limit or period is not > 0.
    """
    found: tuple[float, float] | None = None
    if isinstance(rate, str) and (match := _RATE.fullmatch(rate)):
        every = float(match.group(2) or 1)
        found = float(match.group(1)), every * _PER[match.group(3)[0]]
    elif isinstance(rate, tuple) and len(rate) == 2 and all(_is_number(v) for v in rate):
        found = float(rate[0]), float(rate[1])
    if found is None or not (found[0] > 0 and found[1] > 0):
        raise ValueError(
            f"{what} must be like '20/s', '600/min', '5/10s' or '1000/h', or a (limit, "
            f"period_seconds) tuple, with both > 0; not {rate!r}."
        )
    return Rate(*found)


def parse_rate(rate: str | float | tuple[float, float] | None) -> float | None:
    """Starts per second from what :func:`parse_limit` takes, or a number of starts per second
    (None: no limit).

    Raises:
        ValueError: ``rate`` is none of these, or not > 0.
    """
    if rate is None:
        return None
    if _is_number(rate):
        if not float(rate) > 0:  # type: ignore[arg-type]
            raise ValueError(f"rate must be > 0 starts per second, not {rate!r}.")
        return float(rate)  # type: ignore[arg-type]
    limit, period = parse_limit(rate)  # type: ignore[arg-type]
    return limit / period


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Pacer:
    """Spaces starts at least ``1 / per_second`` apart, from any number of threads.

    Each start takes the next free slot (under a lock): a first attempt and a retry alike, however
    many threads pace through one pacer. In this process a thread :meth:`wait` s for its slot
    where the work starts; work sent to another process gets its slot as a window of wall-clock
    time (:meth:`window`) and starts inside it or not at all (see :func:`nbflow.workflow._remote.call_remote`).
    """

    def __init__(self, per_second: float | None) -> None:
        self._interval = 0.0 if per_second is None else 1.0 / per_second
        self._next = time.monotonic()
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """Whether it paces at all (a rate was given)."""
        return bool(self._interval)

    def take(self) -> float:
        """Reserve the next slot: when it begins (``time.monotonic()`` time)."""
        with self._lock:
            # the slot after the last one taken, never before now: one start per interval
            due = max(self._next, time.monotonic())
            self._next = due + self._interval
        return due

    def wait(self, stop: threading.Event | None = None) -> None:
        """Return when this caller's slot begins (at once, when ``stop`` is set)."""
        if not self._interval:
            return
        delay = self.take() - time.monotonic()
        if delay > 0:
            if stop is None:
                time.sleep(delay)
            else:
                stop.wait(delay)

    def window(self) -> Window | None:
        """Reserve the next slot as a window of wall-clock time, for work that starts in another
        process (None: no rate). It is one interval wide (at least :data:`MIN_WINDOW`): starts
        inside their windows are at most one per interval, plus one per window's width."""
        if not self._interval:
            return None
        begins = time.time() + (self.take() - time.monotonic())
        return Window(begins, begins + max(self._interval, MIN_WINDOW))


#: The narrowest window a start in another process gets (seconds): room for a worker's latency.
MIN_WINDOW = 0.02


class Window(NamedTuple):
    """When work in another process may start: from ``begins`` to ``ends`` (epoch seconds)."""

    begins: float
    ends: float


class Workers(concurrent.futures.Executor):
    """A pool of at most ``max_workers`` daemon threads named ``nbflow-<name>-<n>``."""

    def __init__(self, max_workers: int, name: str = "workers") -> None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be an int >= 1, not {max_workers!r}.")
        self._max = max_workers
        self._name = f"nbflow-{name}-{next(_names)}"
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit to a shut-down nbflow worker pool")
            self._queue.put((future, fn, args, kwargs))
            if len(self._threads) < self._max:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads) + 1}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return future

    def _work(self) -> None:
        __tracebackhide__ = True
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in threads:
            self._queue.put(None)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()
