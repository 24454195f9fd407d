"""Debouncing: start a workflow once the calls for a key pause (DBOS's ``Debouncer``).

In a notebook, a slider or a text box that re-runs an analysis calls
``debouncer.debounce(key, period, *args)`` on every change; the analysis starts once ``period``
seconds pass with no newer call for ``key``, with the newest arguments (and at the latest
``max_wait`` seconds after the first call of the burst).

It is built from nbflow's own durable parts, so it is durable on every store:

- A burst for a key is one *debouncer*, a workflow named ``nbflow.debounce`` whose id is
  ``nbflow.debounce('<workflow>', '<key>')#<n>``: the n-th burst of the key. A call finds the
  newest debouncer of its key; when there is none or it has ended, it starts the next one (a
  given id: two callers racing for it get one workflow), choosing the id of the workflow it will
  start (the id every handle of the burst has).
- Every call, the first too, sends its arguments to the debouncer (``send``, topic
  ``nbflow.debounce``) and waits until the debouncer acknowledges them (an event named after the
  message), or ends without them (then the call tries the next burst), or is left with nothing
  to run it (its process died or closed: then the call takes it over and runs it on).
- The debouncer ``recv``s calls until none comes for the newest call's ``period`` (or its
  ``max_wait`` passes), then starts the workflow with the newest arguments, under the id it was
  given. The time it decides by is a recorded step, so a replay decides the same.

A debouncer is an ordinary workflow: when its process dies, it stays PENDING, and
``nbflow.recover()`` (or ``nbflow worker``, or the next ``debounce`` call for its key) runs it
on; it starts the workflow once the period is over.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

from nbflow import _api
from nbflow._errors import FunctionNotRegisteredError, WaitTimeoutError, WorkflowNotFoundError
from nbflow._records import Status
from nbflow._serialization import check_text
from nbflow.engine import _messages, _waits
from nbflow.engine._core import RuntimeCore
from nbflow.engine._queries import workflow_query
from nbflow.workflow import _context as context
from nbflow.workflow._calls import Step, check_seconds
from nbflow.workflow._handle import WorkflowHandle
from nbflow.workflow._messages import recv, set_event
from nbflow.workflow._steps import run_step
from nbflow.workflow._workflows import as_workflow, lookup_workflow, set_workflow_id, workflow

__all__ = ["Debouncer"]

P = ParamSpec("P")
R = TypeVar("R")

#: The name of the debouncer workflow, and the topic of the calls it receives.
DEBOUNCER = "nbflow.debounce"
#: How long a new debouncer waits for the call that started it (its caller may have died).
_FIRST_CALL = 60.0
#: How long a call waits for its debouncer to take its arguments.
_ACK = 60.0


def _clock() -> float:
    return time.time()


@workflow(name=DEBOUNCER)
def _debouncer(target: str, target_id: str, deadline: float | None) -> str | None:
    """Receive the calls of one burst; then start ``target`` with the newest call's arguments
    as ``target_id``; its id (None: no call came)."""
    call: dict[str, Any] | None = None
    due = 0.0
    while True:
        wait = _FIRST_CALL
        if call is not None:
            now = run_step(_clock)  # recorded: a replay decides as the first run did
            wait = (due if deadline is None else min(due, deadline)) - now
            if wait <= 0:
                break
        message = recv(DEBOUNCER, timeout=wait)
        if message is None:
            break
        call = message
        due = message["at"] + message["period"]
        set_event(message["id"], target_id)
    if call is None:
        return None
    fn = lookup_workflow(target)
    if fn is None:
        raise FunctionNotRegisteredError(target_id, target)
    with set_workflow_id(target_id):  # a child, in this workflow's runtime
        _core().start(fn, *call["args"], **call["kwargs"])
    return target_id


class DebouncedHandle(WorkflowHandle):
    """The handle of a debounced workflow: before its debouncer has started it, its status is
    DELAYED (CANCELLED: the burst was cancelled) and :meth:`result` waits for the start, then
    for its end.

    Attributes:
        debouncer_id: The id of the debouncer that starts it.
    """

    def __init__(self, core: RuntimeCore, workflow_id: str, debouncer_id: str) -> None:
        super().__init__(core, workflow_id)
        self.debouncer_id = debouncer_id

    def _started(self) -> bool:
        try:
            self.tracker.workflow_row(self.workflow_id)
        except WorkflowNotFoundError:
            return False
        return True

    def status(self) -> Status:
        """DELAYED while the debounce waits (CANCELLED or ERROR when its debouncer ended so),
        then the workflow's durable status."""
        if self._started():
            return super().status()
        burst = self.tracker.status(self.debouncer_id)
        return burst if burst in (Status.CANCELLED, Status.ERROR) else Status.DELAYED

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the debounce to start the workflow, then for its result (see
        :meth:`WorkflowHandle.result`)."""
        __tracebackhide__ = True
        if not self._started():
            began = time.monotonic()
            WorkflowHandle(self.tracker, self.debouncer_id).result(timeout)
            if timeout is not None:
                timeout = max(0.0, timeout - (time.monotonic() - began))
        return super().result(timeout)

    def _glance_words(self) -> str:
        if self._started():
            return super()._glance_words()
        return f": debounced, starts once the calls pause ({self.debouncer_id!r})"


def _core() -> RuntimeCore:
    """The runtime of the workflow this code runs in, else the default one."""
    ctx = context.current()
    runner = ctx.runner if ctx is not None else _api.runtime().runner
    if not isinstance(runner, RuntimeCore):  # pragma: no cover - a runtime is always a core
        raise TypeError(f"nbflow.Debouncer needs an nbflow runtime, not {runner!r}")
    return runner


class Debouncer(Generic[P, R]):
    """Start ``workflow`` once the calls for a key pause, with the newest call's arguments.

    Args:
        workflow: A function decorated with ``@nbflow.workflow``.
        max_wait: Seconds from the first call of a burst after which the workflow starts even
            if calls keep coming (None: no limit).

    Example:
        >>> debouncer = nbflow.Debouncer(analyse, max_wait=10)
        >>> handle = debouncer.debounce("slider", 0.5, threshold)  # on every change
    """

    def __init__(self, workflow: Callable[P, R], *, max_wait: float | None = None) -> None:
        self.workflow = as_workflow(workflow)
        check_seconds(max_wait, "max_wait")
        self.max_wait = max_wait

    def __repr__(self) -> str:
        return f"<nbflow.Debouncer {self.workflow.name!r} max_wait={self.max_wait}>"

    def debounce(
        self, key: str, period: float, /, *args: P.args, **kwargs: P.kwargs
    ) -> DebouncedHandle:
        """Start the workflow ``period`` seconds after the last call for ``key``, with the
        newest arguments; every call of one burst returns a handle of the same workflow.

        The workflow's id is chosen at the burst's first call (an enclosing
        :func:`~nbflow.set_workflow_id` gives it). From a workflow body the call is one
        checkpoint: a replay returns the same handle.

        Raises:
            ValueError: ``period`` is not a number of seconds >= 0.
            TypeError: ``key`` is not a string.
        """
        check_text(key, "A debounce key")
        if period is None:
            raise ValueError("period must be a number of seconds, not None.")
        check_seconds(period, "period")
        given = context.take_assigned_id()
        core = _core()
        body = core.body()
        if body is None:
            target_id, debouncer_id = self._bounce(core, key, period, given, args, kwargs)
        else:
            step = Step(DEBOUNCER, lambda: self._bounce(core, key, period, given, args, kwargs))
            target_id, debouncer_id = body.run_step(step, (), {})
        return DebouncedHandle(core, target_id, debouncer_id)

    def _bounce(
        self,
        core: RuntimeCore,
        key: str,
        period: float,
        given: str | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> list[str]:
        """Hand the call to its burst's debouncer (starting one if none waits); the ids of the
        workflow it starts and of the debouncer."""
        base = f"{DEBOUNCER}({self.workflow.name!r}, {key!r})#"
        message = {"args": list(args), "kwargs": kwargs, "period": period}
        while True:
            debouncer_id = _next_debouncer(core, base)
            first = time.time()
            deadline = None if self.max_wait is None else first + self.max_wait
            target_id = given or str(uuid.uuid4())
            with set_workflow_id(debouncer_id):  # a new burst, or the one running (or taken over)
                core.start(_debouncer, self.workflow.name, target_id, deadline)
            message_id = str(uuid.uuid4())
            message.update(id=message_id, at=time.time())
            engine = core.engine
            _messages.send(engine, None, core.history.exists, debouncer_id, message, DEBOUNCER)
            running_here = core.executions.__contains__
            heard = _waits.wait_event_or_end(engine, debouncer_id, message_id, _ACK, running_here)
            if heard is None:
                raise WaitTimeoutError(
                    f"The debouncer {debouncer_id!r} did not take the call within {_ACK} s; "
                    "it runs in a process that does not answer. Call debounce() again later."
                )
            if heard.set:
                return [heard.value, debouncer_id]
            if core.status(debouncer_id) is Status.ERROR:  # it failed: say why, never loop on
                WorkflowHandle(core, debouncer_id).result(0)


def _next_debouncer(core: RuntimeCore, base: str) -> str:
    """The id of the newest debouncer whose ids start with ``base`` while it waits for calls,
    else of the next one."""
    query = workflow_query(id_prefix=base, limit=1, include_internal=True)
    newest = core.history.list_workflows(query)  # newest first: the key's last burst
    if not newest:
        return f"{base}1"
    last = newest[0]
    if not Status(last.status).is_final:
        return last.workflow_id
    return f"{base}{int(last.workflow_id[len(base) :]) + 1}"
