"""Background cells: ``%%nbflow background [NAME]`` runs a cell as a workflow in a worker thread.

The workflow (registered as ``nbflow.background``) executes the cell's source in the notebook's
namespace. What it prints, on stdout or stderr, becomes lines on the workflow's stream ``stdout``
(one item per line, without the newline), which the cell's live view shows as they come; the
notebook stays usable meanwhile. Printing is captured as for every workflow started from a notebook
(:mod:`nbflow.notebook._capture`): the lines are unrecorded stream items, so a recovered cell does
not print again what its body printed before. :func:`install` and :func:`uninstall` are the
capture's, kept here for the magics and ``launch``.

Because the cell is a workflow, its ``nbflow`` steps are checkpointed: ``%nbflow recover`` after a
kernel restart runs it on from its last checkpoint (in a namespace that holds what the notebook has
defined by then).
"""

from __future__ import annotations

import contextlib
import traceback
import uuid
from typing import Any

import nbflow
from nbflow._errors import NbflowError, WorkflowCancelledError, WorkflowInterruptedError
from nbflow.notebook import _capture
from nbflow.notebook._capture import STREAM, install, installed, uninstall
from nbflow.workflow import _context

__all__ = ["STREAM", "background_cell", "install", "installed", "run_background", "uninstall"]


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
    if shell is not None:
        install()  # (resumed by nbflow.recover() in a kernel where nothing installed it)
    try:
        exec(compiled, globals_, locals_)
    except (WorkflowCancelledError, WorkflowInterruptedError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # the traceback, on the stream too (the cell's frames only)
        ctx = _context.current()
        with contextlib.suppress(NbflowError):
            frames = exc.__traceback__.tb_next if exc.__traceback__ else None  # not exec's frame
            text = "".join(traceback.format_exception(type(exc), exc, frames))
            if ctx is not None:
                _capture.write(ctx, text)
        raise


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
