"""Workflows and the world, as called from a workflow body: durable ``sleep``, ``set_event`` and
``recv`` (``send`` and ``get_event`` work from anywhere: see :mod:`nbflow._api`).

Each is a checkpointed operation of the workflow; :mod:`nbflow.engine._messages` says how.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from nbflow._serialization import check_text
from nbflow.workflow import _context as context
from nbflow.workflow._calls import check_seconds

__all__ = ["recv", "recv_async", "set_event", "sleep", "sleep_async"]


def sleep(seconds: float) -> None:
    """Sleep ``seconds``, durably: after a crash and recovery, only the time that is left.

    Outside a workflow (or inside a step) it is :func:`time.sleep`. A cancel wakes it.
    """
    check_seconds(seconds, "sleep()")
    ctx = context.body()
    if ctx is None:
        time.sleep(seconds)
        return
    ctx.sleep(seconds)


def set_event(key: str, value: Any) -> None:
    """Publish ``value`` under ``key`` for this workflow; :func:`get_event` reads the last one.

    Raises:
        NotInWorkflowError: Called outside a workflow body.
    """
    check_text(key, "An event key")
    context.require("set_event").set_event(key, value)


def recv(topic: str | None = None, timeout: float | None = 60.0) -> Any:
    """The oldest message sent to this workflow on ``topic``; waits up to ``timeout`` s, then None.

    Each message is received once, also across a crash between the receive and the next step.

    Raises:
        NotInWorkflowError: Called outside a workflow body.
    """
    if topic is not None:
        check_text(topic, "A topic")
    check_seconds(timeout, "timeout")
    return context.require("recv").recv(topic, timeout)


async def sleep_async(seconds: float) -> None:
    """:func:`sleep` for ``async def`` workflows: ``await nbflow.sleep_async(60)``.

    Other tasks (other async workflows) run meanwhile. Outside a workflow it is
    :func:`asyncio.sleep`.
    """
    check_seconds(seconds, "sleep_async()")
    ctx = context.body()
    if ctx is None:
        await asyncio.sleep(seconds)
        return
    await ctx.sleep_async(seconds)


async def recv_async(topic: str | None = None, timeout: float | None = 60.0) -> Any:
    """:func:`recv` for ``async def`` workflows: ``message = await nbflow.recv_async()``."""
    if topic is not None:
        check_text(topic, "A topic")
    check_seconds(timeout, "timeout")
    return await context.require("recv_async").recv_async(topic, timeout)
