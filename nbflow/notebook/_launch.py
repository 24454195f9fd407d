"""``launch``: start a workflow in the background and show its live view, in one call."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import nbflow
from nbflow._handle import WorkflowHandle
from nbflow._runtime import Runtime
from nbflow.notebook._view import LiveView

__all__ = ["LaunchedHandle", "launch"]


class LaunchedHandle(WorkflowHandle):
    """The handle of a workflow started by :func:`launch`, with its live view.

    Attributes:
        workflow_id: The workflow's id.
        view: Its :class:`LiveView`.
    """

    def __init__(self, handle: WorkflowHandle, view: LiveView) -> None:
        super().__init__(handle.tracker, handle.workflow_id, handle.run)
        self.view = view


def launch(
    fn: Callable[..., Any],
    /,
    *args: Any,
    watch: Iterable[str] | str | None = ("progress",),
    runtime: Runtime | None = None,
    **kwargs: Any,
) -> LaunchedHandle:
    """Start the workflow ``fn(*args, **kwargs)`` in the background and show its live view.

    The view is displayed in the calling cell first, then the workflow starts and the view's
    reader follows it: the widget exists before any thread touches it. Call it from a cell.

    Args:
        fn: A function decorated with ``@nbflow.workflow``.
        *args: Its positional arguments.
        watch: The streams the view shows (``"progress"`` feeds the bar); None: all of them.
        runtime: The runtime to start it in (default: ``nbflow.runtime()``).
        **kwargs: Its keyword arguments (``watch`` and ``runtime`` are taken by ``launch``).

    Returns:
        The workflow's handle; ``handle.view`` is its :class:`LiveView`.

    Example:
        >>> handle = nbflow.notebook.launch(pipeline, urls, watch=("progress", "rows"))
        >>> handle.result()
    """
    rt = runtime if runtime is not None else nbflow.runtime()
    view = LiveView(None, watch, runtime=rt, name=getattr(fn, "name", None))
    view.display()
    try:
        handle = rt.start(fn, *args, **kwargs)
    except BaseException as exc:
        view._fail(exc)
        raise
    view.attach(handle.workflow_id)
    return LaunchedHandle(handle, view)
