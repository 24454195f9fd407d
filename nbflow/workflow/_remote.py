"""Map items run in another process (a process pool, a Dask cluster): the call, and its output.

:func:`call_remote` is what ``nbflow.map`` sends to an executor whose workers are other processes.
It runs the item with no workflow context (a stream write there raises
:class:`~nbflow.NotInWorkflowError`, saying why) and keeps what the item prints — everything
written to ``sys.stdout`` and ``sys.stderr`` by the item's thread, ``print`` and ``logging`` to
the console alike — so that it comes back with the result (:class:`RemoteOutcome`) or with the
error (as its attribute ``nbflow_output``). The caller then prints it in the workflow's process
(:func:`replay_output`), where a notebook's output capture routes it as it routes a local item's.

Output written below Python (by a C library or a subprocess, straight to file descriptor 1) is not
seen here and stays on the worker's terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TextIO

from nbflow.workflow._context import mark_remote
from nbflow.workflow._workers import Window

__all__ = ["Output", "RemoteOutcome", "call_remote", "output_of", "replay_output"]

#: What an item printed, in order: ``(stream name, text)`` with the name ``"stdout"`` or
#: ``"stderr"``.
Output = tuple[tuple[str, str], ...]


class RemoteOutcome(NamedTuple):
    """What a map item run in another process returns: its value and what it printed; or, with
    ``late``, that it did not run: it reached its worker after its window of the rate."""

    value: Any
    output: Output = ()
    late: bool = False


_buffers = threading.local()  # .chunks: the list this thread's output goes to, while an item runs
_install_lock = threading.Lock()


class _PerThread:
    """Stands in for ``sys.stdout`` or ``sys.stderr`` in a worker process: what a thread running
    an item writes is kept for the item; everything else goes to the stream it replaced."""

    def __init__(self, name: str, stream: TextIO) -> None:
        self._name, self._stream = name, stream

    def write(self, text: str) -> int:
        chunks: list[list[str]] | None = getattr(_buffers, "chunks", None)
        if chunks is None:
            return self._stream.write(text)
        if chunks and chunks[-1][0] == self._name:
            chunks[-1][1] += text
        else:
            chunks.append([self._name, text])
        return len(text)

    def flush(self) -> None:
        if getattr(_buffers, "chunks", None) is None:
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno, … of the stream
        return getattr(self._stream, name)


def _install() -> None:
    """Put :class:`_PerThread` in place of ``sys.stdout`` and ``sys.stderr`` (once per process,
    and again if something replaced them since)."""
    with _install_lock:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if not isinstance(stream, _PerThread):
                setattr(sys, name, _PerThread(name, stream))


@contextlib.contextmanager
def _kept(chunks: list[list[str]]) -> Iterator[None]:
    _install()
    _buffers.chunks = chunks
    try:
        yield
    finally:
        _buffers.chunks = None


def call_remote(
    fn: Callable[..., Any],
    item: Any,
    name: str,
    attempt: int = 1,
    window: Window | None = None,
) -> RemoteOutcome:
    """Run a map item in another process (module-level, so executors can pickle it).

    Args:
        fn: The function of the map.
        item: Its item.
        name: The step's name (a stream write from here names it in its error).
        attempt: Which attempt this is: each retry is a call of its own, so that an executor
            that caches calls by their arguments (a Dask client's, by default) runs it again.
        window: Under a rate, when the item may start: it waits for the window to begin, and
            does not run if it arrives after the window ended (it waited in the executor's
            queue): the caller gives it another window. So however the executor queues items,
            the starts keep to the rate.

    Returns:
        The value and what the item printed (or ``late``: it did not run).

    Raises:
        Exception: What the item raised, with what it printed as ``nbflow_output``.
    """
    if window is not None:
        now = time.time()
        if now > window.ends:
            return RemoteOutcome(None, late=True)
        if now < window.begins:
            time.sleep(window.begins - now)  # its slot of the rate
    chunks: list[list[str]] = []
    try:
        with mark_remote(name), _kept(chunks):
            # A forked worker inherits the forking thread's context, that is the workflow body's
            # scope: the item must not run as a step of a workflow whose writer is not here.
            value = contextvars.Context().run(fn, item)
            if inspect.iscoroutine(value):  # an ``async def`` item: run it here
                value = contextvars.Context().run(asyncio.run, value)
    except Exception as exc:
        with contextlib.suppress(AttributeError):  # (an exception type with __slots__)
            exc.nbflow_output = _frozen(chunks)  # type: ignore[attr-defined]
        raise
    return RemoteOutcome(value, _frozen(chunks))


def _frozen(chunks: list[list[str]]) -> Output:
    return tuple((stream, text) for stream, text in chunks)


def output_of(error: BaseException) -> Output:
    """What a remote item printed before it raised ``error`` (nothing if it was not remote)."""
    output = getattr(error, "nbflow_output", ())
    return output if isinstance(output, tuple) else ()


def replay_output(output: Output) -> None:
    """Print what a remote item printed, here (to this thread's ``sys.stdout`` and
    ``sys.stderr``: the caller sets the scope it is credited to)."""
    for stream, text in output:
        target = sys.stderr if stream == "stderr" else sys.stdout
        target.write(text)
    if output:
        sys.stdout.flush()
