"""Tracing with OpenTelemetry: a span per workflow, and a child span per step attempt, ``nbflow.map``
and its items, child workflow call and start.

Tracing is on when ``opentelemetry`` is imported and a tracer provider is set (not the API's
proxy or no-op one), looked at as each workflow begins until one is found; or as the runtime's
``tracing`` option (or ``$NBFLOW_TRACING``) says. Nothing imports ``opentelemetry`` while it is
off. An :class:`~nbflow.engine._execution.Execution` traced carries a :class:`RunTrace` as
``trace`` (None while off: the one check the engine makes, once per workflow, map or child; a
step's is the class its :class:`~nbflow.engine._workflows.WorkflowRun` picked at its start).

Spans and attributes follow DBOS Transact's tracer (``dbos/_tracer.py``, ``dbos/_context.py``):
a span is named after its workflow or step; ``operationUUID`` is the workflow's id,
``operationType`` ``"workflow"`` or ``"step"`` (``"map"`` here for a map), ``executorID`` and
``queueName`` as DBOS has them; a span's status is OK, or ERROR with the exception's text. To
these nbflow adds ``operationName`` (the name again, as an attribute) and ``nbflow.*``:
``function_id``, ``attempt``, ``status`` (``SUCCESS``, ``ERROR``; a workflow's final status),
``replayed`` (an outcome recorded before, returned without running: a span as DBOS makes one),
``cached`` and ``cached_from`` (a result taken from the step cache or an earlier run),
``map_index``, ``items``, ``child_workflow_id``, ``parent_id``, ``remote`` and ``late`` (a map
item in another process, traced from here), and ``retryIntervalSeconds`` (DBOS's name) on an
attempt that failed and is retried; the exception is recorded on the span of an error.

A step's parent is its map's span for a map item (in whatever thread it runs), else the span
current where it runs when there is one (a user's span in the body), else its workflow's. A
workflow's parent is the span current where it began: a child's, its parent's call or start.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from nbflow._errors import (
    ConfigurationError,
    InvalidValueError,
    WorkflowCancelledError,
    WorkflowInterruptedError,
)
from nbflow.engine._execution import Execution
from nbflow.engine._steps import StepRun
from nbflow.store import ReplayRecord, WorkflowRow

if TYPE_CHECKING:
    import concurrent.futures

    from opentelemetry.context import Context
    from opentelemetry.trace import Span

__all__ = ["RunTrace", "TracedStepRun", "Tracer", "Tracing", "operation", "traced"]

_ENV = "NBFLOW_TRACING"
_WORDS = {"1": True, "true": True, "on": True, "0": False, "false": False, "off": False}
_EXTRA = "pip install 'nbflow[otel]'"


class Tracing:
    """Whether a runtime traces, and through which tracer provider.

    Args:
        setting: None: on once a tracer provider is set in this process (``$NBFLOW_TRACING``
            ``1``/``0`` forces it on or off); True: on, through the global provider; False:
            off; an OpenTelemetry ``TracerProvider``: on, through it.

    Raises:
        ConfigurationError: Tracing asked for without ``opentelemetry`` installed, or
            ``$NBFLOW_TRACING`` set to another word.
        InvalidValueError: ``setting`` is none of the above.
    """

    def __init__(self, setting: object = None) -> None:
        if setting is None:
            setting = _from_env()
        self._auto = setting is None
        self._tracer: Tracer | None = None
        if setting is None or setting is False:
            return
        if setting is not True and not callable(getattr(setting, "get_tracer", None)):
            raise InvalidValueError(
                f"tracing= takes None, True, False or an OpenTelemetry TracerProvider, not "
                f"{setting!r}.",
                what="tracing",
                value=setting,
            )
        self._tracer = Tracer(None if setting is True else setting)

    def run(self, ex: Execution, row: WorkflowRow) -> RunTrace | None:
        """The trace of a workflow beginning now, or None when tracing is off."""
        tracer = self.tracer()
        return None if tracer is None else tracer.run(ex, row)

    def tracer(self) -> Tracer | None:
        """The tracer for a workflow beginning now, or None when tracing is off."""
        if self._tracer is not None or not self._auto:
            return self._tracer
        trace = sys.modules.get("opentelemetry.trace")  # (never imported here)
        if trace is None:
            return None
        provider = trace.get_tracer_provider()
        if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
            return None
        self._tracer = Tracer(provider)  # a global provider is set once: it stays
        return self._tracer


def _from_env() -> bool | None:
    word = os.environ.get(_ENV, "").strip().lower()
    if not word:
        return None
    if word not in _WORDS:
        raise ConfigurationError(
            f"${_ENV}={word!r}: set it to 1 (trace every workflow through OpenTelemetry's "
            "tracer provider) or 0 (never), or unset it (trace once a provider is set)."
        )
    return _WORDS[word]


class Tracer:
    """nbflow's OpenTelemetry tracer, from ``provider`` (None: the global one)."""

    def __init__(self, provider: Any = None) -> None:
        try:
            from opentelemetry import context, trace
        except ImportError as exc:
            raise ConfigurationError(
                f"Tracing needs OpenTelemetry's API: {_EXTRA}, and configure a tracer provider."
            ) from exc
        if provider is None:
            provider = trace.get_tracer_provider()
        self.otel = provider.get_tracer("nbflow")
        self.context, self.trace = context, trace
        self.ok = trace.Status(trace.StatusCode.OK)

    def run(self, ex: Execution, row: WorkflowRow) -> RunTrace:
        """The trace of ``ex``, a child of the span current here (where it begins)."""
        return RunTrace(self, ex, row, self.context.get_current())

    def error(self, span: Span, error: BaseException | str) -> None:
        """Mark ``span`` failed with ``error`` (an exception, recorded; or a recorded error's
        text)."""
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        span.set_attribute("nbflow.status", "ERROR")
        if not isinstance(error, str):
            span.record_exception(error)
        span.set_status(self.trace.Status(self.trace.StatusCode.ERROR, text))

    def success(self, span: Span) -> None:
        span.set_attribute("nbflow.status", "SUCCESS")
        span.set_status(self.ok)


class RunTrace:
    """The trace of one execution: its workflow span, and the parents of its map items."""

    def __init__(self, tracer: Tracer, ex: Execution, row: WorkflowRow, parent: Context) -> None:
        self.tracer, self.ex, self.parent = tracer, ex, parent
        self.span: Span | None = None
        self.token: object = None
        self.body: Context | None = None  # the context with the workflow's span
        self.groups: dict[int, tuple[Context, int]] = {}  # map item id -> (map's context, index)
        self.common: dict[str, Any] = {
            "operationUUID": ex.workflow_id,
            "executorID": ex.engine.executor_id,
        }
        self.queue, self.parent_id = row.queue_name, row.parent_id

    # -- the workflow ------------------------------------------------------------------------

    def begin(self) -> None:
        """The body starts (in its thread or task): its span starts, current there."""
        ex, tracer = self.ex, self.tracer
        attributes = {**self.common, "operationType": "workflow", "operationName": ex.name}
        if self.queue is not None:
            attributes["queueName"] = self.queue
        if self.parent_id is not None:
            attributes["nbflow.parent_id"] = self.parent_id
        if ex.recorded:
            attributes["nbflow.replayed"] = True  # resumed: it replays what it recorded
        self.span = span = tracer.otel.start_span(ex.name, self.parent, attributes=attributes)
        self.body = tracer.trace.set_span_in_context(span, self.parent)
        self.token = tracer.context.attach(self.body)

    def end(self) -> None:
        """The body's outcome is durable (or the body was stopped): its span ends."""
        ex, tracer, span = self.ex, self.tracer, self.span
        if span is None:
            return
        tracer.context.detach(self.token)
        if ex.error is None:
            tracer.success(span)
        else:
            tracer.error(span, ex.error)
        status = ex.durable_status or _status(ex.error)
        span.set_attribute("nbflow.status", status)
        span.end()

    # -- operations ----------------------------------------------------------------------------

    def parent_of(self, function_id: int) -> tuple[Context | None, int | None]:
        """The parent context of operation ``function_id`` and its map index: its map's, else
        the context current here if it has a span, else the workflow's."""
        group = self.groups.get(function_id)
        if group is not None:
            return group
        current = self.tracer.context.get_current()
        if self.tracer.trace.get_current_span(current).get_span_context().is_valid:
            return current, None
        return self.body, None

    def start(
        self,
        name: str,
        function_id: int,
        kind: str = "step",
        start: int | None = None,
        **more: Any,
    ) -> Span:
        """Start the span of an operation (``kind``: its ``operationType``; ``start``: when it
        started, in ns; ``more``: ``nbflow.*`` attributes, by their last part)."""
        parent, index = self.parent_of(function_id)
        attributes = {**self.common, "operationType": kind, "operationName": name}
        attributes["nbflow.function_id"] = function_id
        if index is not None:
            attributes["nbflow.map_index"] = index
        for key, value in more.items():
            attributes[f"nbflow.{key}"] = value
        span: Span = self.tracer.otel.start_span(
            name, parent, attributes=attributes, start_time=start
        )
        return span

    def close(self, span: Span, error: BaseException | str | None = None) -> None:
        """End an operation's span: OK, or ERROR with ``error``."""
        if error is None:
            self.tracer.success(span)
        else:
            self.tracer.error(span, error)
        span.end()

    def mark(self, name: str, function_id: int, error: str | None = None, **more: Any) -> None:
        """A span for an operation that did not run: replayed, or taken from a cache."""
        self.close(self.start(name, function_id, **more), error)

    def replayed(self, name: str, function_id: int, record: ReplayRecord) -> None:
        """A span for an operation whose recorded outcome is returned (or raised) again."""
        self.mark(name, function_id, record.error, replayed=True)

    @contextlib.contextmanager
    def current(self, span: Span) -> Iterator[Span]:
        """Make ``span`` current in the block (a child workflow begun there is its child)."""
        token = self.tracer.context.attach(self.tracer.trace.set_span_in_context(span))
        try:
            yield span
        finally:
            self.tracer.context.detach(token)

    @contextlib.contextmanager
    def map(self, name: str, item_ids: range) -> Iterator[None]:
        """The span of a ``nbflow.map`` over the block; its items' spans are its children."""
        span = self.start("nbflow.map", item_ids.start, "map", items=len(item_ids))
        span.set_attribute("operationName", name)  # (its function id: its first item's)
        inner = self.tracer.trace.set_span_in_context(span)
        groups = self.groups
        for index, function_id in enumerate(item_ids):
            groups[function_id] = (inner, index)
        try:
            with self.current(span):
                yield
        except BaseException as exc:
            self.close(span, exc)
            raise
        else:
            self.close(span)
        finally:
            for function_id in item_ids:
                groups.pop(function_id, None)

    def remote(
        self, future: concurrent.futures.Future[Any], name: str, function_id: int, attempt: int
    ) -> None:
        """A span for an attempt of a map item sent to another process, from here: from its
        submission to its outcome."""
        span = self.start(name, function_id, attempt=attempt, remote=True)

        def done(future: concurrent.futures.Future[Any]) -> None:
            error = None if future.cancelled() else future.exception()
            if error is None and getattr(future.result(), "late", False) is True:
                span.set_attribute("nbflow.late", True)  # it did not run: it is sent again
            self.close(span, error)

        future.add_done_callback(done)


def _status(error: BaseException | None) -> str:
    """A workflow's status after its body, before (or without) its end being durable."""
    if error is None:
        return "SUCCESS"
    if isinstance(error, WorkflowCancelledError):
        return "CANCELLED"
    if isinstance(error, WorkflowInterruptedError):
        return "PENDING"
    return "ERROR"


@contextlib.contextmanager
def operation(ex: Execution, name: str, function_id: int, **more: Any) -> Iterator[Span | None]:
    """The span of an operation of ``ex`` (a child workflow's call or start), current in the
    block (so that the child is its child); None when ``ex`` is not traced."""
    trace: RunTrace | None = ex.trace
    if trace is None:
        yield None
        return
    span = trace.start(name, function_id, **more)
    try:
        with trace.current(span):
            yield span
    except BaseException as exc:
        trace.close(span, exc)
        raise
    else:
        trace.close(span)


class TracedStepRun(StepRun):
    """:class:`~nbflow.engine._steps.StepRun` with a span per attempt (the last one's ends with
    the step's outcome), or one for a step replayed or taken from a cache."""

    __slots__ = ("began", "context_token", "source", "span")

    def __init__(
        self,
        ex: Execution,
        ctx: Any,
        step: Any,
        function_id: int | None = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.began = time.time_ns()
        self.source: str | None = None
        self.span: Span | None = None
        super().__init__(ex, ctx, step, function_id, args, kwargs)

    def take(self, output: Any, source: str | None) -> None:
        super().take(output, source)
        self.source = source or "(no workflow)"

    def __enter__(self) -> TracedStepRun:
        super().__enter__()
        trace: RunTrace = self.ex.trace
        self.span = span = trace.start(self.step.name, self.function_id, attempt=self.attempt)
        self.context_token = trace.tracer.context.attach(
            trace.tracer.trace.set_span_in_context(span)
        )
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        handled = super().__exit__(kind, exc, tb)
        trace: RunTrace = self.ex.trace
        trace.tracer.context.detach(self.context_token)
        span = self.span
        if span is not None and (self.pending or (not handled and exc is not None)):
            if self.delay is not None:
                span.set_attribute("retryIntervalSeconds", self.delay)
            trace.close(span, exc)  # a retry follows, or an interrupt goes on up
            self.span = None
        return handled

    def outcome(self) -> Any:
        __tracebackhide__ = True
        trace: RunTrace = self.ex.trace
        span, self.span = self.span, None
        if span is None:  # replayed, or taken from a cache or an earlier run
            more: dict[str, Any] = {"replayed": True} if self.source is None else {"cached": True}
            if self.source is not None:
                more["cached_from"] = self.source
            span = trace.start(self.step.name, self.function_id, start=self.began, **more)
        try:
            output = super().outcome()
        except BaseException as exc:
            trace.close(span, exc)
            raise
        trace.close(span)
        return output


def traced(ex: Execution) -> Callable[..., StepRun]:
    """The class of the steps of ``ex``: :class:`TracedStepRun` when it is traced."""
    return StepRun if ex.trace is None else TracedStepRun
