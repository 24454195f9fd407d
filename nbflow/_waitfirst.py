"""``wait_first``: the first of several workflows to end (DBOS's ``wait_first``).

The wait is the engine's (:mod:`nbflow.engine._waits`): woken by each workflow's end, never a
polling loop; from a workflow body it is one checkpoint, so a replay returns the same handle.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from nbflow.engine import _waits
from nbflow.engine._core import RuntimeCore
from nbflow.workflow._calls import check_seconds
from nbflow.workflow._handle import WorkflowHandle

__all__ = ["wait_first", "wait_first_async"]


def _waited(handles: Iterable[WorkflowHandle], timeout: float | None) -> _Waited:
    """The handles to wait for, checked, and the runtime they came from."""
    if isinstance(handles, (str, WorkflowHandle)):
        raise TypeError(f"wait_first() takes a list of WorkflowHandles, not {handles!r}.")
    given = list(handles)
    if not given:
        raise ValueError("wait_first() needs at least one handle: the list must not be empty.")
    for handle in given:
        if not isinstance(handle, WorkflowHandle):
            raise TypeError(
                f"wait_first() takes WorkflowHandles (from nbflow.start or get_workflow), "
                f"not {handle!r}."
            )
    check_seconds(timeout, "timeout")
    core = given[0].tracker
    if not isinstance(core, RuntimeCore) or any(h.tracker is not core for h in given):
        raise ValueError(
            "wait_first() needs handles of one open runtime; get them all from the same "
            "runtime (nbflow.get_workflow(id) gives one of the default runtime)."
        )
    body = core.body()
    return _Waited(given, core, None if body is None else (body.ex, body))


class _Waited(NamedTuple):
    handles: list[WorkflowHandle]
    core: RuntimeCore
    body: _waits.Body


def _winner(waited: _Waited, workflow_id: str) -> WorkflowHandle:
    for handle in waited.handles:
        if handle.workflow_id == workflow_id:
            return handle
    return waited.core.lifecycle.handle(workflow_id)  # a replay that recorded another list


def wait_first(handles: Iterable[WorkflowHandle], timeout: float | None = None) -> WorkflowHandle:
    """The first of ``handles`` whose workflow ends (succeeds, fails or is cancelled); one that
    has already ended is returned at once (the first such in the list).

    It waits without polling: each workflow's end wakes it. From a workflow body it is one
    checkpoint: a replay returns the same handle.

    Raises:
        ValueError: ``handles`` is empty, or its handles come from different runtimes.
        WaitTimeoutError: None ended within ``timeout`` seconds (they go on running).
        WorkflowNotFoundError: A handle's workflow does not exist.
    """
    waited = _waited(handles, timeout)
    ids = [h.workflow_id for h in waited.handles]
    return _winner(waited, _waits.wait_first(waited.core.engine, waited.body, ids, timeout))


async def wait_first_async(
    handles: Iterable[WorkflowHandle], timeout: float | None = None
) -> WorkflowHandle:
    """:func:`wait_first` without blocking the event loop: ``await nbflow.wait_first_async(hs)``
    (recorded in an ``async def`` workflow body)."""
    waited = _waited(handles, timeout)
    ids = [h.workflow_id for h in waited.handles]
    engine = waited.core.engine
    return _winner(waited, await _waits.wait_first_async(engine, waited.body, ids, timeout))
