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
import contextlib
import contextvars
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from threading import get_ident
from typing import TYPE_CHECKING, Any, NamedTuple

from nbflow._errors import ConcurrencyError, NotInWorkflowError
from nbflow.workflow._alarm import Wake
from nbflow.workflow._calls import (
    Args,
    DeclaredQueue,
    DeclaredWorkflow,
    Kwargs,
    MapOptions,
    Step,
    StepAttempt,
    WorkflowCall,
)
from nbflow.workflow._given import (
    assign_id,
    current_timeout,
    deadline,
    set_timeout,
    take_assigned_id,
    unassign_id,
    unset_timeout,
)

if TYPE_CHECKING:
    from nbflow.workflow._handle import WorkflowHandle

logger = logging.getLogger("nbflow")

__all__ = [
    "Runner",
    "SCOPE",
    "Scope",
    "WorkflowContext",
    "add_exit_hook",
    "assign_id",
    "body",
    "current",
    "current_step",
    "current_timeout",
    "deadline",
    "enter",
    "exiting",
    "in_remote_item",
    "leave",
    "mark_remote",
    "remove_exit_hook",
    "require",
    "runner",
    "scope",
    "scoped",
    "set_default_runner",
    "set_timeout",
    "take_assigned_id",
    "unassign_id",
    "unrecorded",
    "unset_timeout",
]


class WorkflowContext(abc.ABC):
    """What code running inside a workflow can ask of it (the engine implements this).

    Attributes:
        workflow_id: The workflow's id.
        runner: The runtime it runs in.
        thread: The ident of the thread its body was entered in (0 until then): a front end tells
            by it whether the workflow runs in the background (see :mod:`nbflow.notebook._capture`).
    """

    workflow_id: str
    runner: Runner
    thread: int = 0

    @abc.abstractmethod
    def run_step(
        self, step: Step, args: Args, kwargs: Kwargs, function_id: int | None = None
    ) -> Any:
        """Run ``step`` as the workflow's next step (or at the reserved ``function_id``, from any
        thread), or return its recorded outcome."""

    @abc.abstractmethod
    async def run_step_async(
        self, step: Step, args: Args, kwargs: Kwargs, function_id: int | None = None
    ) -> Any:
        """:meth:`run_step` for an ``async def`` step."""

    @abc.abstractmethod
    def reserve(self, count: int) -> range:
        """Reserve the next ``count`` function ids, in program order, for operations that run
        later or elsewhere (a step awaited later, the items of a map)."""

    @abc.abstractmethod
    def run_coroutine(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run the ``async def`` step on nbflow's loop from a sync body, and wait for it."""

    @abc.abstractmethod
    def map(self, fn: Callable[..., Any], items: list[Any], options: MapOptions) -> list[Any]:
        """Run ``fn`` over ``items`` as checkpointed steps (see :func:`nbflow.map`)."""

    @abc.abstractmethod
    def map_async(
        self, fn: Callable[..., Any], items: list[Any], options: MapOptions
    ) -> Awaitable[list[Any]]:
        """:meth:`map` as an awaitable; the ids are reserved at the call."""

    @abc.abstractmethod
    def write_stream(self, key: str, value: Any, *, is_end: bool = False) -> None:
        """Append ``value`` to stream ``key`` (or, with ``is_end``, close it)."""

    @abc.abstractmethod
    def write_output(self, key: str, text: str) -> None:
        """Append the printed line ``text`` to stream ``key``, unrecorded: it takes no function id,
        so whether output is captured never changes the workflow's positions. From the body, the
        lines a replay prints again are dropped; from a step, the line is credited to the step's
        attempt (at least once). Dropped when the workflow no longer runs or the stream is closed.
        """

    @abc.abstractmethod
    def call_child(
        self, wf: DeclaredWorkflow, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Run the workflow ``wf`` as a child of this one, durably, and return its result."""

    @abc.abstractmethod
    async def call_child_async(
        self, wf: DeclaredWorkflow, args: tuple[Any, ...], kwargs: dict[str, Any], function_id: int
    ) -> Any:
        """``await child(...)`` in an async workflow, at the reserved ``function_id``."""

    @abc.abstractmethod
    def start_child(self, call: WorkflowCall, queue: DeclaredQueue | None = None) -> WorkflowHandle:
        """Start (or, on ``queue``, enqueue) a child workflow, as a checkpointed operation."""

    @abc.abstractmethod
    def read_stream(
        self, workflow_id: str, key: str, start: int, timeout: float | None
    ) -> Iterator[Any]:
        """Read a stream from the body: each value read (and its end) is checkpointed."""

    @abc.abstractmethod
    def read_stream_async(
        self, workflow_id: str, key: str, start: int, timeout: float | None
    ) -> AsyncIterator[Any]:
        """:meth:`read_stream` in an ``async def`` workflow."""

    @abc.abstractmethod
    def sleep(self, seconds: float) -> None:
        """Sleep durably (see :func:`nbflow.sleep`)."""

    @abc.abstractmethod
    def patched(self, name: str, *, deprecated: bool = False) -> bool:
        """Whether the run takes the patched path ``name`` (see :func:`nbflow.patched`)."""

    @abc.abstractmethod
    def set_event(self, key: str, value: Any) -> None:
        """Publish an event (see :func:`nbflow.set_event`)."""

    @abc.abstractmethod
    def recv(self, topic: str | None, timeout: float | None) -> Any:
        """Receive a message (see :func:`nbflow.recv`)."""

    @abc.abstractmethod
    async def sleep_async(self, seconds: float) -> None:
        """:meth:`sleep` in an ``async def`` workflow."""

    @abc.abstractmethod
    async def recv_async(self, topic: str | None, timeout: float | None) -> Any:
        """:meth:`recv` in an ``async def`` workflow."""


class Runner(abc.ABC):
    """What declarations ask of a runtime: start, call and enqueue workflows.

    :class:`~nbflow.Runtime` implements it. ``wf`` is a workflow function (``@nbflow.workflow``).
    """

    @abc.abstractmethod
    def start(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> WorkflowHandle:
        """Start a workflow in the background."""

    @abc.abstractmethod
    def call(self, wf: DeclaredWorkflow, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run a workflow durably in this thread and return its result."""

    @abc.abstractmethod
    def run_child(self, call: WorkflowCall) -> Any:
        """Run (or wait for) the child workflow ``call.workflow_id``; return its result."""

    @abc.abstractmethod
    def begin_child(self, call: WorkflowCall, queue: DeclaredQueue | None = None) -> WorkflowHandle:
        """Start (or enqueue on ``queue``) the child workflow ``call``, whose id is chosen."""

    @abc.abstractmethod
    def open_reader(
        self, workflow_id: str, key: str, start: int, timeout: float | None, wake: Wake | None
    ) -> Any:
        """A stream reader (``.values()``, ``.avalues()``) whose waits ``wake`` may end."""

    @abc.abstractmethod
    def run_on_loop(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on nbflow's event loop thread and wait for its result."""

    @abc.abstractmethod
    def enqueue(
        self,
        queue: DeclaredQueue,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> WorkflowHandle:
        """Record a workflow as ENQUEUED on ``queue``."""

    @abc.abstractmethod
    def run_cached(self, step: Step, args: Args, kwargs: Kwargs) -> Any:
        """Run a cached step outside a workflow body: its kept result, or run it and keep it."""


class Scope(NamedTuple):
    """Where the code of a thread or task runs: set around every workflow body and step attempt.

    Attributes:
        context: Its workflow.
        function_id: The function id of the step running in it (0 in the workflow body).
        attempt: That step's attempt (0 in the body).
        thread: For a body, the ident of the thread it was entered in (0 for a step).
    """

    context: WorkflowContext
    function_id: int = 0
    attempt: int = 0
    thread: int = 0


_scope: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("nbflow_scope", default=None)

#: The scope variable itself, for the engine's hot path (a step sets it around each attempt).
SCOPE = _scope


def scope() -> Scope | None:
    """The scope of this thread or task (None outside workflows)."""
    return _scope.get()


@contextlib.contextmanager
def scoped(where: Scope | None) -> Iterator[None]:
    """Run the block in scope ``where`` (None: outside any workflow), then restore this one."""
    token = _scope.set(where)
    try:
        yield
    finally:
        _scope.reset(token)


_default_runner: Callable[[], Runner] | None = None
_bodies = 0  # workflow bodies running in this process
_warned: set[str] = set()


def current() -> WorkflowContext | None:
    """The workflow this code runs in (this thread's or task's), or None."""
    where = _scope.get()
    return None if where is None else where.context


def body() -> WorkflowContext | None:
    """The workflow whose body (not one of its steps) this code runs in, or None.

    Raises:
        ConcurrencyError: The body's context was copied into another thread (say with
            ``contextvars.copy_context().run``): an operation there would take a position that
            depends on timing, and a replay could hand it another call's record.
    """
    where = _scope.get()
    if where is None or where.function_id:
        return None
    if where.thread != get_ident():
        raise ConcurrencyError(where.context.workflow_id, threading.current_thread().name)
    return where.context


def current_step() -> StepAttempt | None:
    """The step attempt running in this thread or task, or None (also outside workflows)."""
    where = _scope.get()
    if where is None or not where.function_id:
        return None
    return StepAttempt(where.function_id, where.attempt)


def require(operation: str) -> WorkflowContext:
    """The current workflow; raises :class:`NotInWorkflowError` outside one (and
    :class:`ConcurrencyError` in a thread its body's context was copied into)."""
    where = _scope.get()
    if where is None:
        raise NotInWorkflowError(operation, getattr(_remote, "step", None))
    if not where.function_id and where.thread != get_ident():
        raise ConcurrencyError(where.context.workflow_id, threading.current_thread().name)
    return where.context


Token = contextvars.Token[Scope | None]


def enter(context: WorkflowContext) -> Token:
    """Run the body of ``context``'s workflow in this thread or task (undo with :func:`leave`)."""
    global _bodies
    _bodies += 1
    context.thread = get_ident()
    return _scope.set(Scope(context, 0, 0, get_ident()))


def leave(token: Token) -> None:
    """Undo :func:`enter`."""
    global _bodies
    _bodies -= 1
    _scope.reset(token)


#: Called with the context of a body about to end, before its outcome is recorded (a front end
#: writes the partial lines it kept).
_exit_hooks: list[Callable[[WorkflowContext], None]] = []


def add_exit_hook(hook: Callable[[WorkflowContext], None]) -> None:
    """Call ``hook(context)`` when a workflow's body ends, before its end is recorded (once)."""
    if hook not in _exit_hooks:
        _exit_hooks.append(hook)


def remove_exit_hook(hook: Callable[[WorkflowContext], None]) -> None:
    """Undo :func:`add_exit_hook`."""
    with contextlib.suppress(ValueError):
        _exit_hooks.remove(hook)


def exiting(context: WorkflowContext) -> None:
    """The body of ``context``'s workflow ends (in its thread): call the exit hooks; a failing
    hook is logged, never raised into the workflow's end."""
    for hook in list(_exit_hooks):
        try:
            hook(context)
        except Exception:
            logger.exception("An nbflow exit hook failed for workflow %r", context.workflow_id)


_remote = threading.local()


@contextlib.contextmanager
def mark_remote(step: str) -> Iterator[None]:
    """Mark this thread as running an item of a map of ``step`` in another process (where a
    stream write cannot reach the workflow)."""
    _remote.step = step
    try:
        yield
    finally:
        _remote.step = None


def in_remote_item() -> bool:
    """Whether this thread runs an item of a map in another process (:func:`mark_remote`)."""
    return getattr(_remote, "step", None) is not None


def unrecorded(step: str) -> None:
    """A step ran as a plain call in a thread that carries no workflow's context: warn once per
    step while any workflow runs in this process (it may have meant to run inside one)."""
    if _bodies and step not in _warned and getattr(_remote, "step", None) is None:
        _warned.add(step)
        logger.warning(
            "Step %r ran as a plain call in thread %r, which carries no workflow's context, "
            "while a workflow runs in this process: if it belongs to that workflow, it was NOT "
            "checkpointed and runs again on recovery. Run parallel steps with nbflow.map(fn, "
            "items) or submit them to nbflow.Executor(), which checkpoint them in order.",
            step,
            threading.current_thread().name,
        )


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
