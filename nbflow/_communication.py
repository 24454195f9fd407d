"""Workflows and the world, as called from a workflow body: durable ``sleep``, ``set_event`` and
``recv`` (``send`` and ``get_event`` work from anywhere: see :mod:`nbflow._api`).

Each is a checkpointed operation of the workflow; :mod:`nbflow._waits` says how.
"""

from __future__ import annotations

import time
from typing import Any

from nbflow import _context as context
from nbflow._serialization import check_text

__all__ = ["recv", "set_event", "sleep"]


def sleep(seconds: float) -> None:
    """Sleep ``seconds``, durably: after a crash and recovery, only the time that is left.

    Outside a workflow (or inside a step) it is :func:`time.sleep`. A cancel wakes it.
    """
    context.check_seconds(seconds, "sleep()")
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
    context.check_seconds(timeout, "timeout")
    return context.require("recv").recv(topic, timeout)
