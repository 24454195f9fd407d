"""Reading a stream from a workflow body: each value read is a checkpoint.

A body that reads another workflow's stream gets, on replay, exactly what it read the first time
(not the stream as it is now): each value is recorded as a step ``nbflow.read_stream('key')``
with output ``["item", value]``, and so are the end (``["end", null]``) and a timeout
(``["timeout", null]``, raised again as :class:`~nbflow.StreamTimeoutError` on replay without
waiting). The function id is taken when the body asks for the next value. A cancel or a closing
runtime ends a read that waits.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from nbflow._errors import StreamTimeoutError
from nbflow.engine._execution import Execution
from nbflow.engine._steps import step_row

__all__ = ["read_stream", "read_stream_async"]

#: Opens a live reader from an offset: ``open(start)``.
Opener = Callable[[int], Any]


class _Read:
    """The bookkeeping of one checkpointed read."""

    def __init__(
        self,
        ex: Execution,
        workflow_id: str,
        key: str,
        start: int,
        timeout: float | None,
        open_: Opener,
    ) -> None:
        self.ex, self.workflow_id, self.key, self.timeout = ex, workflow_id, key, timeout
        self._open = open_
        self._live: Any = None
        self.name = f"nbflow.read_stream({key!r})"
        self.offset = start
        self.function_id = 0
        self.started = 0.0

    def replayed(self) -> list[Any] | None:
        """Take the next function id; the recorded ``[kind, value]`` there, if any."""
        ex = self.ex
        self.function_id = ex.next_function_id()
        record = ex.replayed(self.function_id, "step", self.name)
        if record is None:
            ex.check_running()
            ex.wait_row_durable()
            self.started = time.time()
            return None
        what = f"a value read from stream {self.key!r}"
        found: list[Any] = ex.engine.decode(record.output_json, record.output_pickle, what)
        return found

    def live(self) -> Any:
        """The live reader (opened at the first value no checkpoint holds)."""
        if self._live is None:
            self._live = self._open(self.offset)
        return self._live

    def record(self, found: list[Any]) -> list[Any]:
        """Checkpoint what the live read found, ``[kind, value]``, and return it."""
        ex = self.ex
        encoded = ex.engine.encode(found, f"a value read from stream {self.key!r}")
        span = (self.started, time.time())
        ex.append(step_row(ex.workflow_id, self.function_id, self.name, span, encoded))
        return found

    def outcome(self, found: list[Any]) -> bool:
        """True for an item; False at the end; raises for a timeout."""
        kind = found[0]
        if kind == "item":
            self.offset += 1
            return True
        if kind == "timeout":
            assert self.timeout is not None
            raise StreamTimeoutError(self.workflow_id, self.key, self.offset, self.timeout)
        return False


def read_stream(
    ex: Execution, workflow_id: str, key: str, start: int, timeout: float | None, open_: Opener
) -> Iterator[Any]:
    """The values of the stream, each checkpointed in ``ex`` (see the module docstring)."""
    read = _Read(ex, workflow_id, key, start, timeout, open_)
    while True:
        item = read.replayed()
        if item is None:
            item = read.record(_next(read.live()))
        if not read.outcome(item):
            return
        yield item[1]


async def read_stream_async(
    ex: Execution, workflow_id: str, key: str, start: int, timeout: float | None, open_: Opener
) -> AsyncIterator[Any]:
    """:func:`read_stream` in an ``async def`` workflow."""
    read = _Read(ex, workflow_id, key, start, timeout, open_)
    while True:
        item = read.replayed()
        if item is None:
            item = read.record(await _anext(read.live()))
        if not read.outcome(item):
            return
        yield item[1]


def _next(values: Iterator[Any]) -> list[Any]:
    """The next ``[kind, value]`` of a live read."""
    try:
        return ["item", next(values)]
    except StopIteration:
        return ["end", None]
    except StreamTimeoutError:
        return ["timeout", None]


async def _anext(values: AsyncIterator[Any]) -> list[Any]:
    """The next ``[kind, value]`` of a live async read."""
    try:
        return ["item", await values.__anext__()]
    except StopAsyncIteration:
        return ["end", None]
    except StreamTimeoutError:
        return ["timeout", None]
