"""What a recover did: the workflows it resumed, those already running here, those it left.

:meth:`Runtime.recover <nbflow.Runtime.recover>` returns a :class:`Recovered`, a list of the
handles it resumed (so code that treats it as a list keeps working) that also names the
interrupted workflows it did not resume and why, and those it found running in this process.

A front end may ask to be told of each recover (:func:`on_recover`): the notebook layer shows a
live view per resumed workflow that way. The core never imports a front end; it only calls what
was registered.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from nbflow.text._hints import hint
from nbflow.workflow._handle import WorkflowHandle

__all__ = [
    "Recovered",
    "Skipped",
    "announce",
    "note_interrupted",
    "on_recover",
    "reported_by_caller",
]

logger = logging.getLogger("nbflow")


class Skipped(NamedTuple):
    """An interrupted workflow a recover did not resume.

    Attributes:
        workflow_id: Its id.
        name: Its registered name.
        reason: Why (its function is not declared here, its inputs cannot be decoded, …).
    """

    workflow_id: str
    name: str
    reason: str


class Recovered(list[WorkflowHandle]):
    """The handles of the workflows a recover resumed, with what it found besides.

    Attributes:
        running: ``(workflow_id, name)`` of the PENDING workflows already running in this process
            (nothing to resume).
        skipped: The interrupted workflows it could not resume here, with the reason.
        names: The registered name of each workflow it resumed, by id.
    """

    def __init__(
        self,
        handles: Iterable[WorkflowHandle] = (),
        running: Iterable[tuple[str, str]] = (),
        skipped: Iterable[Skipped] = (),
    ) -> None:
        super().__init__(handles)
        self.running = list(running)
        self.skipped = list(skipped)
        self.names: dict[str, str] = {}


_listeners: list[Callable[[Recovered], bool | None]] = []
_lock = threading.Lock()
_caller = threading.local()  # .reports: this thread's caller prints what a recover left


def on_recover(listener: Callable[[Recovered], bool | None]) -> None:
    """Call ``listener`` after each recover of any runtime (once, however often registered);
    a listener that returns True has shown the workflows left, with the reason: the warning
    that names them is not logged as well."""
    with _lock:
        if listener not in _listeners:
            _listeners.append(listener)


def note_interrupted(workflow_ids: list[str], database: str) -> None:
    """Say (at INFO) that a database just opened holds interrupted workflows."""
    if workflow_ids:
        logger.info(
            "%d interrupted workflow(s) in %s; %s resumes them.",
            len(workflow_ids),
            database,
            hint("recover"),
        )


@contextlib.contextmanager
def reported_by_caller() -> Iterator[None]:
    """Within it, a recover of this thread logs no warning of the workflows it left: the caller
    prints them itself (``nbflow recover``), so each reason is said once."""
    before = getattr(_caller, "reports", False)
    _caller.reports = True
    try:
        yield
    finally:
        _caller.reports = before


def announce(recovered: Recovered) -> None:
    """Tell the registered listeners about ``recovered``, then name in one warning the
    workflows it left, with the reason, unless a listener or the caller shows them."""
    with _lock:
        listeners = list(_listeners)
    shown = getattr(_caller, "reports", False)
    for listener in listeners:
        shown = bool(listener(recovered)) or shown
    if recovered.skipped and not shown:
        logger.warning(
            "Not recovered: %d interrupted workflow(s); one left PENDING waits for a process "
            "that can run it (then %s again):\n  %s",
            len(recovered.skipped),
            hint("recover"),
            "\n  ".join(f"{s.workflow_id!r} ({s.name}): {s.reason}" for s in recovered.skipped),
        )
