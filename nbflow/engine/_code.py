"""What a run knows of code: its functions' fingerprints, the replayed steps whose code changed,
and the checkpoints of an earlier run it may take instead of running.

A step's fingerprint (:func:`nbflow.fingerprint`) is computed once per run, at its first call,
and recorded with every checkpoint of it. A replay compares each recorded step's fingerprint
with the code now: a step that changed is replayed all the same (a replay is deterministic), and
once the replay is over one warning names them and says how to run them again
(``nbflow.resume(id, rerun_changed=True)``). Such a re-run is a new workflow whose
:class:`Reuse` holds the old run's successful checkpoints: a step call whose name, fingerprint
and arguments match one takes its output without running (each checkpoint used once, in order).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from nbflow._fingerprint import fingerprint
from nbflow.store._ops import StepRow
from nbflow.text._tables import step_label
from nbflow.workflow._calls import Step

__all__ = ["Reuse", "RunCode", "code_of_step"]

logger = logging.getLogger("nbflow")


def code_of_step(step: Step) -> Callable[..., Any]:
    """The function whose code identifies ``step`` (a map's or an async step's wrapper stands
    for the function it wraps)."""
    return step.origin if step.origin is not None else step.fn


class Reuse:
    """The successful checkpoints of an earlier run, by step name, fingerprint and arguments.

    Args:
        source_id: The earlier run's id.
        rows: Its checkpoints, in order.
    """

    def __init__(self, source_id: str, rows: Iterable[StepRow]) -> None:
        self.source_id = source_id
        self._rows: dict[tuple[str, str, str], collections.deque[StepRow]] = {}
        for row in rows:
            if row.error is None and row.code is not None and row.args_hash is not None:
                key = (row.name, row.code, row.args_hash)
                self._rows.setdefault(key, collections.deque()).append(row)
        self._lock = threading.Lock()

    def take(self, name: str, code: str, args_hash: str | None) -> StepRow | None:
        """The oldest unused checkpoint of this call, or None (the call runs)."""
        with self._lock:
            rows = None if args_hash is None else self._rows.get((name, code, args_hash))
            return rows.popleft() if rows else None


class RunCode:
    """One run's fingerprints, changed steps and :class:`Reuse`.

    Attributes:
        codes: function -> its fingerprint, computed once per run.
        changed: Names of replayed steps whose code changed since they were recorded.
        reuse: An earlier run's checkpoints to take, or None.
        refresh: Whether the run was started inside ``nbflow.refresh_cache()``.
    """

    __slots__ = (
        "arity",
        "cached",
        "changed",
        "codes",
        "kept",
        "parts",
        "refresh",
        "reuse",
        "warned",
    )

    def __init__(self) -> None:
        self.codes: dict[Any, str] = {}
        #: function -> what its fingerprint covers (CodeParts), for a cached step that missed
        self.parts: dict[Any, Any] = {}
        #: step name -> its newest cache row when the run first missed (what a miss compares to)
        self.kept: dict[str, Any] = {}
        #: (step name, code) -> its cache rows by args_hash, read once per run (None: too many
        #: to read at once: each call looks itself up)
        self.cached: dict[tuple[str, str], dict[str, Any] | None] = {}
        #: cached step name -> how many arguments its calls pass in order (plain_arity)
        self.arity: dict[str, int | None] = {}
        self.changed: set[str] = set()
        self.warned = False
        self.reuse: Reuse | None = None
        self.refresh = False

    def of(self, step: Step) -> str:
        """The fingerprint of ``step``'s code in this run."""
        fn = code_of_step(step)
        code = self.codes.get(fn)
        if code is None:
            code = self.codes[fn] = fingerprint(fn)
        return code

    def replayed(self, step: Step, recorded: str) -> None:
        """A checkpoint of ``step`` recorded with the fingerprint ``recorded`` is replayed."""
        if step.name not in self.changed and self.of(step) != recorded:
            self.changed.add(step.name)

    def warn_changed(self, workflow_id: str) -> None:
        """Once the replay is over: one warning naming the replayed steps whose code changed."""
        if not self.changed or self.warned:
            return
        self.warned = True
        names = ", ".join(f"{step_label(n)!r}" for n in sorted(self.changed))
        logger.warning(
            "nbflow: workflow %r replayed steps whose code changed since they ran: %s. Their "
            "recorded outputs were used, as a resume does. To run them again with the new code "
            "(and reuse every step whose code and arguments did not change): "
            "nbflow.resume(%r, rerun_changed=True).",
            workflow_id,
            names,
            workflow_id,
        )
