"""Cached calls at once, and outside workflows: :class:`Inflight` makes calls with one key at
the same time in a process run once (the others take the row the first kept), and
:func:`call_cached` runs a cached step's call outside a workflow body (its kept result, or its
result now, kept durably before it is returned).
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

from nbflow._fingerprint import fingerprint
from nbflow.engine._cache import (
    CacheKey,
    cache_key,
    fresh,
    miss_reason,
    new_row,
    parts_of,
    remember,
)
from nbflow.engine._engine import Engine
from nbflow.store._ops import CacheRow
from nbflow.workflow._alarm import Wake
from nbflow.workflow._cache import refreshing
from nbflow.workflow._calls import Step

__all__ = ["Claim", "Inflight", "call_cached", "inflight"]


class Claim:
    """What :meth:`Inflight.first` gives a call: whether it runs the call (``mine``), else the
    row the call that ran it kept (``row``; None: it raised, or kept nothing)."""

    __slots__ = ("mine", "row")

    def __init__(self, mine: bool, row: CacheRow | None = None) -> None:
        self.mine = mine
        self.row = row


class _Running:
    """A call that runs: set ``done`` when it ends, and wake each of its ``waiters``."""

    __slots__ = ("done", "row", "waiters")

    def __init__(self) -> None:
        self.done = False
        self.row: CacheRow | None = None
        self.waiters: list[threading.Event] = []


#: Without an alarm (a call outside a workflow), how often a waiting call asks whether to go on.
_POLL = 0.5


class Inflight:
    """The cached calls running in this process, by entry: a second call with the same key
    waits for the first, then takes the row it kept (it may not be durable yet: the first call
    waits for that before it returns, and so does the second, by the same write log)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, _Running] = {}

    @contextlib.contextmanager
    def first(self, entry: str, wake: Wake) -> Iterator[Claim]:
        """A :class:`Claim`: this call runs it (the others wait until the block ends; set
        ``claim.row`` to what it kept), or another call ran it meanwhile. A waiting call asks
        ``wake.check`` whether to go on (it raises to stop) when ``wake.alarm`` rings."""
        woken = threading.Event()
        with self._lock:
            running = self._running.get(entry)
            mine = running is None
            if running is None:
                running = self._running[entry] = _Running()
            else:
                running.waiters.append(woken)
        if not mine:
            self._wait(running, woken, wake)
            yield Claim(False, running.row)
            return
        claim = Claim(True)
        try:
            yield claim
        finally:
            with self._lock:
                del self._running[entry]
                running.row, running.done = claim.row, True
                for waiter in running.waiters:
                    waiter.set()

    def _wait(self, running: _Running, woken: threading.Event, wake: Wake) -> None:
        """Until ``running`` is done; raises what ``wake.check`` raises meanwhile."""
        alarm = contextlib.nullcontext() if wake.alarm is None else wake.alarm.wakes(woken)
        with alarm:
            while True:
                with self._lock:
                    if running.done:
                        return
                    woken.clear()
                wake.check()  # (after the clear: a ring from now on wakes the wait below)
                woken.wait(None if wake.alarm is not None else _POLL)


_INFLIGHT: weakref.WeakKeyDictionary[Engine, Inflight] = weakref.WeakKeyDictionary()
_INFLIGHT_LOCK = threading.Lock()


def inflight(engine: Engine) -> Inflight:
    """The :class:`Inflight` of ``engine``'s process."""
    with _INFLIGHT_LOCK:
        found = _INFLIGHT.get(engine)
        if found is None:
            found = _INFLIGHT[engine] = Inflight()
        return found


def call_cached(engine: Engine, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A cached step's call outside a workflow body: its kept result, or its result now, kept
    (durably, before it is returned). An ``async def`` step: a coroutine that does the same."""
    __tracebackhide__ = True
    fn = step.origin or step.fn
    key = cache_key(step, fingerprint(fn), args, kwargs)
    if inspect.iscoroutinefunction(fn):
        return _call_cached_async(engine, step, key, args, kwargs)
    with inflight(engine).first(key.entry, Wake(engine.check_open)) as claim:
        found = claim.row or _kept(engine, step, key, refresh=refreshing() and claim.mine)
        if found is not None:
            return engine.decode(found.output_json, found.output_pickle, _what(step))
        row = _missed(engine, step, key)
        output = step.fn(*args, **kwargs)
        claim.row = _keep(engine, step, row, output)
        return output


async def _call_cached_async(
    engine: Engine, step: Step, key: CacheKey, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    __tracebackhide__ = True
    found = _kept(engine, step, key, refresh=refreshing())
    if found is not None:
        return engine.decode(found.output_json, found.output_pickle, _what(step))
    row = _missed(engine, step, key)
    output = await step.fn(*args, **kwargs)
    _keep(engine, step, row, output)
    return output


def _what(step: Step) -> str:
    return f"the output of step {step.name!r}"


def _kept(engine: Engine, step: Step, key: CacheKey, *, refresh: bool) -> CacheRow | None:
    """The row kept for ``key`` that has not expired (None: none, or refreshing)."""
    assert step.cache is not None
    if refresh:
        return None
    found = engine.store.find_cached([key.entry]).get(key.entry)
    if found is None or not fresh(found, step.cache, time.time()):
        return None
    remember(key.name, found, hit=True)
    return found


def _missed(engine: Engine, step: Step, key: CacheKey) -> CacheRow:
    """The row that will keep the result of a call that missed (its output not yet in it)."""
    assert step.cache is not None
    parts = parts_of(step)
    reason = miss_reason(engine, key, parts, step.cache, refreshing())
    row = new_row(key, (None, None), None, parts, reason)
    remember(key.name, row, hit=False)
    return row


def _keep(engine: Engine, step: Step, row: CacheRow, output: Any) -> CacheRow:
    """Keep ``output`` in ``row``, durably; the row kept."""
    encoded = engine.encode(output, _what(step))
    kept = row._replace(output_json=encoded[0], output_pickle=encoded[1], created_at=time.time())
    engine.log.wait_durable(engine.log.append(kept))
    return kept
