"""Background cells: ``%%nbflow background [NAME]`` runs a cell as a workflow in a worker thread.

The workflow (registered as ``nbflow.background``) executes the cell's source in the notebook's
namespace. What its thread prints, on stdout or stderr, becomes lines on the workflow's stream
``stdout`` (one item per line, without the newline), which the cell's live view shows as they come;
the notebook stays usable meanwhile. Other threads print as before.

Printing is routed by a thread-aware stand-in for ``sys.stdout`` and ``sys.stderr``, installed by
``%load_ext nbflow`` and removed by ``%unload_ext nbflow``; the kernel's event loop is never touched
(no nest_asyncio). Because the cell is a workflow, its ``nbflow`` steps are checkpointed and its
lines written exactly once: ``%nbflow recover`` after a kernel restart runs it on from its last
checkpoint (in a namespace that holds what the notebook has defined by then).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import traceback
import uuid
from typing import Any

import nbflow
from nbflow._errors import NbflowError, WorkflowCancelledError, WorkflowInterruptedError

__all__ = ["STREAM", "background_cell", "install", "installed", "run_background", "uninstall"]

#: The stream a background cell's printed lines go to.
STREAM = "stdout"

_local = threading.local()
_install_lock = threading.Lock()


class _Lines:
    """Collects what a background cell prints; each complete line becomes a stream item."""

    def __init__(self) -> None:
        self._partial = ""

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            nbflow.write_stream(STREAM, line)
        return len(text)

    def close(self) -> None:
        """Write the last, unfinished line, if any."""
        partial, self._partial = self._partial, ""
        if partial:
            nbflow.write_stream(STREAM, partial)


class _Router:
    """Stands in for ``sys.stdout``/``sys.stderr``: a background cell's thread writes to its stream,
    every other thread to the stream this replaced (every other attribute is that stream's).
    """

    def __init__(self, target: Any) -> None:
        self._nbflow_target = target

    def write(self, text: str) -> int:
        lines: _Lines | None = getattr(_local, "lines", None)
        if lines is None:
            return int(self._nbflow_target.write(text) or 0)
        return lines.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if getattr(_local, "lines", None) is None:
            self._nbflow_target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._nbflow_target, name)


def install() -> None:
    """Route printing from background cells (idempotent)."""
    with _install_lock:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is not None and not isinstance(stream, _Router):
                setattr(sys, name, _Router(stream))


def uninstall() -> None:
    """Stop routing: put back the streams :func:`install` replaced, where they still are."""
    with _install_lock:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if isinstance(stream, _Router):
                setattr(sys, name, stream._nbflow_target)


def installed() -> bool:
    """Whether printing from background cells is routed to their streams."""
    return isinstance(sys.stdout, _Router)


@nbflow.workflow(name="nbflow.background")
def background_cell(source: str, name: str | None = None) -> None:
    """The workflow of a background cell: execute ``source`` in the notebook's namespace.

    Args:
        source: The cell's source (IPython syntax: magics and ``!`` lines are transformed).
        name: The cell's name, if it was given one.
    """
    from IPython.core.getipython import get_ipython

    shell: Any = get_ipython()
    if shell is not None:
        code = shell.transform_cell(source)
        filename = shell.compile.cache(code, shell.execution_count, raw_code=source)
        globals_, locals_ = shell.user_global_ns, shell.user_ns
    else:  # resumed outside IPython
        code, filename = source, f"<nbflow background cell {name or ''}>"
        globals_ = locals_ = {"__name__": "__main__"}
    compiled = compile(code, filename, "exec", dont_inherit=True)
    lines, previous = _Lines(), getattr(_local, "lines", None)
    _local.lines = lines
    try:
        exec(compiled, globals_, locals_)
    except (WorkflowCancelledError, WorkflowInterruptedError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # the traceback, on the stream too (the cell's frames only)
        with contextlib.suppress(NbflowError):
            frames = exc.__traceback__.tb_next if exc.__traceback__ else None  # not exec's frame
            text = "".join(traceback.format_exception(type(exc), exc, frames))
            lines.write(("\n" if lines._partial else "") + text)
        raise
    finally:
        _local.lines = previous
        with contextlib.suppress(NbflowError):
            lines.close()


def run_background(name: str | None, source: str) -> nbflow.WorkflowHandle:
    """Start a background cell and show its live view (called by ``%%nbflow background``).

    Args:
        name: The cell's name: its workflow id is ``NAME-<8 hex digits>`` (else a uuid).
        source: The cell's source.

    Returns:
        The workflow's handle, with its live view as ``.view``.
    """
    workflow_id = f"{name}-{uuid.uuid4().hex[:8]}" if name else str(uuid.uuid4())
    install()
    from nbflow.notebook._launch import launch  # (imports ipywidgets)

    with nbflow.set_workflow_id(workflow_id):
        return launch(background_cell, source, name, watch=("progress", STREAM))
