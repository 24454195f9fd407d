"""Hints: the commands nbflow's messages suggest, named as the reader gives commands.

``nbflow.recover()`` in Python, ``%nbflow recover`` in a notebook with the magics loaded,
``nbflow recover`` in a terminal: the front end in use says which with :func:`set_front_end`
(``%load_ext nbflow`` and the ``nbflow`` command do), and :func:`hint` names a command that way.
The setting is the process's: one process has one reader.

Nothing here imports the rest of nbflow.
"""

from __future__ import annotations

__all__ = ["front_end", "hint", "set_front_end"]

#: How each command is given: in Python, as a magic, and on the command line ({id}: the id).
_COMMANDS = {
    "list": ("nbflow.list_workflows()", "%nbflow list", "nbflow list"),
    "steps": ("nbflow.list_steps({id!r})", "%nbflow steps {id}", "nbflow steps {id}"),
    "resume": ("nbflow.resume({id!r})", "%nbflow resume {id}", "nbflow resume {id}"),
    "recover": ("nbflow.recover()", "%nbflow recover", "nbflow recover"),
    "cancel": ("nbflow.cancel({id!r})", "%nbflow cancel {id}", "nbflow cancel {id}"),
    "db": ("nbflow.configure({id!r})", "%nbflow db {id}", "nbflow --db {id} …"),
}
_FRONT_ENDS = ("python", "magic", "cli")
_front_end = ["python"]


def set_front_end(name: str) -> str:
    """Say where the reader of nbflow's messages gives commands, so that hints name the right
    form (``%load_ext nbflow`` sets ``"magic"``, the ``nbflow`` command ``"cli"``).

    Args:
        name: ``"python"``, ``"magic"`` or ``"cli"``.

    Returns:
        The front end in use before (to put back).
    """
    if name not in _FRONT_ENDS:
        raise ValueError(f"Unknown front end {name!r}; use one of {', '.join(_FRONT_ENDS)}.")
    previous, _front_end[0] = _front_end[0], name
    return previous


def front_end() -> str:
    """Where the reader gives commands: ``"python"``, ``"magic"`` or ``"cli"``."""
    return _front_end[0]


def hint(command: str, workflow_id: str = "ID") -> str:
    """A command as the reader gives it: ``nbflow.recover()``, ``%nbflow recover`` or
    ``nbflow recover`` (the last two in backticks).

    Args:
        command: ``"list"``, ``"steps"``, ``"resume"``, ``"recover"``, ``"cancel"`` or ``"db"``
            (use another database).
        workflow_id: The workflow the command is about (for ``"db"``: the database).

    Returns:
        The command's text.
    """
    forms = _COMMANDS[command]
    where = _front_end[0]
    text = forms[_FRONT_ENDS.index(where)].format(id=workflow_id)
    return text if where == "python" else f"`{text}`"
