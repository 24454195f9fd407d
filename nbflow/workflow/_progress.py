"""The progress convention: items ``{"done", "total", "message"}`` on the stream ``"progress"``.

The notebook widgets and the CLI read this stream to draw progress bars. It is an ordinary stream:
anyone can read it, and it closes by itself when the workflow ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from nbflow.workflow._context import WorkflowContext, require

__all__ = ["progress", "track"]

T = TypeVar("T")


def progress(
    done: float, total: float | None = None, message: str | None = None, *, key: str = "progress"
) -> None:
    """Write a progress item ``{"done": done, "total": total, "message": message}`` to ``key``.

    Call it from a workflow (or one of its steps) as work gets done.
    """
    require("progress").write_stream(key, {"done": done, "total": total, "message": message})


def track(iterable: Iterable[T], *, key: str = "progress", total: int | None = None) -> Iterator[T]:
    """Iterate over ``iterable``, writing a progress item before the first and after each item.

    Like ``tqdm(iterable)``, but the bar lives in a stream: ``for url in nbflow.track(urls): ...``.

    Args:
        iterable: What to iterate over.
        key: The stream to write to.
        total: The number of items (default: ``len(iterable)`` when it has one).
    """
    ctx = require("track")  # raised at the call, not at the first next()
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    return _tracked(ctx, iterable, key, total)


def _tracked(
    ctx: WorkflowContext, iterable: Iterable[T], key: str, total: int | None
) -> Iterator[T]:
    ctx.write_stream(key, {"done": 0, "total": total, "message": None})
    for done, item in enumerate(iterable, start=1):
        yield item
        ctx.write_stream(key, {"done": done, "total": total, "message": None})
