"""The Jupyter layer: live views and timelines of workflows, background launch, ``%nbflow`` magics,
durable cells.

Importing this package imports IPython and ipywidgets (the ``notebook`` extra); ``import nbflow``
never does. ``%load_ext nbflow`` loads the magics.
"""

from __future__ import annotations

from typing import Any

from nbflow.notebook import _capture
from nbflow.notebook._launch import LaunchedHandle, launch
from nbflow.notebook._recover import show_recovered
from nbflow.notebook._timeline import Timeline
from nbflow.notebook._view import LiveView, in_kernel
from nbflow.workflow._recovery import on_recover

__all__ = [
    "LaunchedHandle",
    "LiveView",
    "Timeline",
    "launch",
    "load_ipython_extension",
    "unload_ipython_extension",
]


on_recover(show_recovered)  # nbflow.recover() in a cell shows a view per resumed workflow
if in_kernel():  # before anything resumes: a workflow's first lines must not reach a cell
    _capture.install()


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%nbflow`` magics (``%load_ext nbflow``); loading twice is harmless."""
    from nbflow.notebook._magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove what :func:`load_ipython_extension` registered (``%unload_ext nbflow``)."""
    from nbflow.notebook._magics import unload

    unload(ipython)
