"""The seam between what user code calls and the engine that does it.

Declarations (``@workflow``, ``@step``, :class:`~nbflow.Queue`) and the in-workflow functions
(``write_stream``, ``sleep``, ``recv``, …) never import the runtime. They ask this module:

- :func:`current`: the :class:`WorkflowContext` of the workflow this code runs in (an abstract
  class the engine implements), found through a context variable, so each thread and asyncio task
  has its own;
- :func:`current_step`: the step attempt running in this thread or task, if any (a stream write
  from inside a step is credited to it);
- :func:`runner`: the :class:`Runner` that starts workflows outside any workflow (the process's
  default runtime, registered by :mod:`nbflow._api`), or the one the current workflow runs in.

The context variables for :func:`~nbflow.set_workflow_id` and :func:`~nbflow.workflow_timeout`
live here too.
"""

from __future__ import annotations

import abc
import contextvars
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from nbflow._errors import NotInWorkflowError

if TYPE_CHECKING:
    from nbflow._handle import WorkflowHandle

__all__ = [
    "SCOPE",
    "RetryPolicy",
    "Runner",
    "StepAttempt",
    "Step",
    "WorkflowCall",
    "WorkflowContext",
    "body",
    "check_seconds",
    "current",
    "current_step",
    "current_timeout",
    "enter",
    "enter_step",
    "leave",
    "require",
    "runner",
    "set_default_runner",
    "take_assigned_id",
]


@dataclass(frozen=True)
class RetryPolicy:
    """How a step is run again when it raises.

    Attributes:
        retries: How many times to run it again (0: never).
        backoff: The factor by which the wait grows after each failed attempt.
        interval: Seconds to wait before the first retry.
    """

    retries: int = 0
    backoff: float = 2.0
    interval: float = 1.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 1 or self.interval < 0:
            raise ValueError(
                f"@nbflow.step needs retries >= 0, backoff >= 1 and interval >= 0 (got "
                f"retries={self.retries}, backoff={self.backoff}, interval={self.interval})."
            )

    def delay(self, failures: int) -> float | None:
        """Seconds to wait after the ``failures``-th failed attempt, or None: give up."""
        if failures > self.retries:
            return None
        return self.interval * self.backoff ** (failures - 1)


NO_RETRY = RetryPolicy()


class StepAttempt(NamedTuple):
    """A step attempt in progress: the step's function id and the attempt number (1, 2, …)."""

    function_id: int
    attempt: int


class Step(NamedTuple):
    """What runs as a step: its name in the history, the function, and its retry policy."""

    name: str
    fn: Callable[..., Any]
    policy: RetryPolicy = NO_RETRY


class WorkflowCall(NamedTuple):
    """A call of a workflow function, with the ids given to it (None: not given)."""

    wf: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    workflow_id: str | None = None
    parent_id: str | None = None


class WorkflowContext(abc.ABC):
    """What code running inside a workflow can ask of it (the engine implements this).

    Attributes:
        workflow_id: The workflow's id.
        runner: The runtime it runs in.
    """

    workflow_id: str
    runner: Runner

    @abc.abstractmethod
    def run_step(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run ``step`` as the workflow's next step, or return its recorded outcome."""

    @abc.abstractmethod
    async def run_step_async(
        self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """:meth:`run_step` for an ``async def`` step."""

    @abc.abstractmethod
    def write_stream(self, key: str, value: Any, *, is_end: bool = False) -> None:
        """Append ``value`` to stream ``key`` (or, with ``is_end``, close it)."""

    @abc.abstractmethod
    def call_child(self, wf: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run the workflow ``wf`` as a child of this one, durably, and return its result."""

    @abc.abstractmethod
    def sleep(self, seconds: float) -> None:
        """Sleep durably (see :func:`nbflow.sleep`)."""

    @abc.abstractmethod
    def set_event(self, key: str, value: Any) -> None:
        """Publish an event (see :func:`nbflow.set_event`)."""

    @abc.abstractmethod
    def recv(self, topic: str | None, timeout: float | None) -> Any:
        """Receive a message (see :func:`nbflow.recv`)."""


class Runner(abc.ABC):
    """What declarations ask of a runtime: start, call and enqueue workflows.

    :class:`~nbflow.Runtime` implements it. ``wf`` is a workflow function (``@nbflow.workflow``).
    """

    @abc.abstractmethod
    def start(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> WorkflowHandle:
        """Start a workflow in the background."""

    @abc.abstractmethod
    def call(self, wf: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run a workflow durably in this thread and return its result."""

    @abc.abstractmethod
    def run_child(self, call: WorkflowCall) -> Any:
        """Run (or wait for) the child workflow ``call.workflow_id``; return its result."""

    @abc.abstractmethod
    def enqueue(
        self, queue: Any, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> WorkflowHandle:
        """Record a workflow as ENQUEUED on ``queue``."""


#: The scope of this thread or task: its workflow, and the function id and attempt of the step
#: running in it (0, 0 in the workflow body). A plain tuple: it is set around every step.
_Scope = tuple[WorkflowContext, int, int]

_scope: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("nbflow_scope", default=None)

#: The scope variable itself, for the engine's hot path (a step sets it around each attempt):
#: only :func:`enter`, :func:`enter_step` and the engine set it.
SCOPE = _scope
_default_runner: Callable[[], Runner] | None = None


def current() -> WorkflowContext | None:
    """The workflow this code runs in (this thread's or task's), or None."""
    scope = _scope.get()
    return None if scope is None else scope[0]


def body() -> WorkflowContext | None:
    """The workflow whose body (not one of its steps) this code runs in, or None."""
    scope = _scope.get()
    return None if scope is None or scope[1] else scope[0]


def current_step() -> StepAttempt | None:
    """The step attempt running in this thread or task, or None (also outside workflows)."""
    scope = _scope.get()
    return None if scope is None or not scope[1] else StepAttempt(scope[1], scope[2])


def require(operation: str) -> WorkflowContext:
    """The current workflow; raises :class:`NotInWorkflowError` outside one."""
    scope = _scope.get()
    if scope is None:
        raise NotInWorkflowError(operation)
    return scope[0]


Token = contextvars.Token[_Scope | None]


def enter(context: WorkflowContext) -> Token:
    """Make ``context`` the current workflow of this thread or task (undo with :func:`leave`)."""
    return _scope.set((context, 0, 0))


def enter_step(context: WorkflowContext, function_id: int, attempt: int) -> Token:
    """Mark the attempt ``attempt`` of the step ``function_id`` of ``context`` as running in this
    thread or task."""
    return _scope.set((context, function_id, attempt))


def leave(token: Token) -> None:
    """Undo :func:`enter` or :func:`enter_step`."""
    _scope.reset(token)


def set_default_runner(factory: Callable[[], Runner]) -> None:
    """Register how to find the runner outside workflows (done by :mod:`nbflow._api`)."""
    global _default_runner
    _default_runner = factory


def runner() -> Runner:
    """The runner of the current workflow, else the process's default runtime."""
    context = current()
    if context is not None:
        return context.runner
    if _default_runner is None:  # pragma: no cover - nbflow/__init__ imports _api
        raise RuntimeError("import nbflow first: no runtime is registered")
    return _default_runner()


# -- ids and timeouts given by the caller ----------------------------------------------------------

_assigned_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "nbflow_assigned_id", default=None
)
_timeout: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "nbflow_timeout", default=None
)


def assign_id(workflow_id: str) -> contextvars.Token[str | None]:
    """Give the next workflow started in this context ``workflow_id``."""
    return _assigned_id.set(workflow_id)


def unassign_id(token: contextvars.Token[str | None]) -> None:
    _assigned_id.reset(token)


def take_assigned_id() -> str | None:
    """The id given by an enclosing :func:`~nbflow.set_workflow_id`, consumed by its first use."""
    workflow_id = _assigned_id.get()
    if workflow_id is not None:
        _assigned_id.set(None)
    return workflow_id


def set_timeout(seconds: float) -> contextvars.Token[float | None]:
    """Give every workflow started in this context a timeout of ``seconds``."""
    return _timeout.set(seconds)


def unset_timeout(token: contextvars.Token[float | None]) -> None:
    _timeout.reset(token)


def current_timeout() -> float | None:
    """The timeout given by an enclosing :func:`~nbflow.workflow_timeout`, or None."""
    return _timeout.get()


def check_seconds(value: float | None, what: str) -> None:
    """Raise ValueError unless ``value`` is None or a number of seconds >= 0."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{what} must be a number of seconds, not {value!r}.")
    if value < 0:
        raise ValueError(f"{what} must be >= 0 seconds, not {value!r}.")
