"""What a caller gives the next workflows it starts: an id (:func:`~nbflow.set_workflow_id`) and
a timeout (:func:`~nbflow.workflow_timeout`), in context variables (each thread and task its
own). :mod:`nbflow.workflow._context` re-exports them.
"""

from __future__ import annotations

import contextvars

__all__ = [
    "assign_id",
    "current_timeout",
    "deadline",
    "set_timeout",
    "take_assigned_id",
    "unassign_id",
    "unset_timeout",
]


_assigned_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "nbflow_assigned_id", default=None
)
_timeout: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "nbflow_timeout", default=None
)


def assign_id(workflow_id: str) -> contextvars.Token[str | None]:
    """Give the next workflow started in this context ``workflow_id``."""
    return _assigned_id.set(workflow_id)


def unassign_id(token: contextvars.Token[str | None]) -> None:
    _assigned_id.reset(token)


def take_assigned_id() -> str | None:
    """The id given by an enclosing :func:`~nbflow.set_workflow_id`, consumed by its first use."""
    workflow_id = _assigned_id.get()
    if workflow_id is not None:
        _assigned_id.set(None)
    return workflow_id


def set_timeout(seconds: float) -> contextvars.Token[float | None]:
    """Give every workflow started in this context a timeout of ``seconds``."""
    return _timeout.set(seconds)


def unset_timeout(token: contextvars.Token[float | None]) -> None:
    _timeout.reset(token)


def current_timeout() -> float | None:
    """The timeout given by an enclosing :func:`~nbflow.workflow_timeout`, or None."""
    return _timeout.get()


def deadline(now: float, parent: float | None = None) -> float | None:
    """A new workflow's deadline: its parent's, or an enclosing workflow_timeout's, whichever
    comes first."""
    timeout = current_timeout()
    own = None if timeout is None else now + timeout
    if parent is None or own is None:
        return parent if own is None else own
    return min(parent, own)
