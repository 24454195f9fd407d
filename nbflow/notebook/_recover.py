"""Views of recovered workflows: ``nbflow.recover()`` or ``%nbflow recover`` in a notebook shows
what it did, then a live view per workflow it resumed.

Importing :mod:`nbflow.notebook` registers :func:`show_recovered` with the core
(:func:`nbflow.workflow._recovery.on_recover`); it acts only in a Jupyter kernel, when the recover was
called from the kernel's main thread (a cell), so a recover from a background thread or a
script shows nothing.
"""

from __future__ import annotations

import threading

from nbflow.notebook import _capture
from nbflow.notebook._view import LiveView, in_kernel
from nbflow.text._format import format_recover
from nbflow.workflow._recovery import Recovered

__all__ = ["shows_views", "show_recovered"]


def shows_views() -> bool:
    """Whether a recover called here shows views (a kernel's main thread)."""
    return in_kernel() and threading.current_thread() is threading.main_thread()


def show_recovered(recovered: Recovered) -> bool:
    """Print what a recover did and show a live view per resumed workflow (in a cell only);
    whether it did (then the workflows left are not named in a warning as well)."""
    if not shows_views():
        return False
    _capture.install()  # what the resumed workflows print goes to their views
    print("\n".join(format_recover(recovered, here="this kernel")), flush=True)
    for handle in recovered:
        LiveView.follow(handle.workflow_id, None)
    return True
