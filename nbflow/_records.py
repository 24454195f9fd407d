"""Small frozen records for history: workflows, steps and streams, each readable in a notebook."""

from __future__ import annotations

import datetime as dt
import enum
import html
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from nbflow.text._format import format_time, status_word
from nbflow.text._status import status_value, unknown_status
from nbflow.text._tables import step_label

if TYPE_CHECKING:
    import pandas
    import polars
    import pyarrow

__all__ = ["LazyValue", "Records", "Status", "StepInfo", "StepStats", "StreamInfo", "WorkflowInfo"]


class Status(str, enum.Enum):
    """A workflow's status. Compares equal to its name: ``Status.SUCCESS == "SUCCESS"``."""

    PENDING = "PENDING"
    ENQUEUED = "ENQUEUED"
    DELAYED = "DELAYED"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"
    #: Recovered more times than its ``max_recovery_attempts``: never recovered again by itself
    #: (``nbflow.resume(id)`` runs it on).
    MAX_RECOVERY_ATTEMPTS_EXCEEDED = "MAX_RECOVERY_ATTEMPTS_EXCEEDED"

    @property
    def is_final(self) -> bool:
        """True for SUCCESS, ERROR, CANCELLED and MAX_RECOVERY_ATTEMPTS_EXCEEDED (nothing runs it
        on by itself)."""
        return self not in (Status.PENDING, Status.ENQUEUED, Status.DELAYED)

    def __str__(self) -> str:
        return self.value

    @property
    def word(self) -> str:
        """The word the views and tables say: ``running``, ``enqueued``, ``delayed``, ``succeeded``,
        ``failed`` or ``cancelled`` (a view says ``interrupted`` for a PENDING workflow that
        nothing runs: the status alone cannot tell)."""
        return status_word(self.value)

    @classmethod
    def parse(cls, value: str | Status) -> Status:
        """A status from a word a person types, in any case: the views' words or the statuses'
        names, ``running`` or ``pending`` (PENDING), ``enqueued`` or ``queued`` (ENQUEUED),
        ``delayed`` (DELAYED: enqueued with a delay that has not passed),
        ``succeeded`` or ``success`` (SUCCESS), ``failed`` or ``error`` (ERROR), ``cancelled`` or
        ``canceled`` (CANCELLED), ``gave up`` or ``max_recovery_attempts_exceeded``
        (MAX_RECOVERY_ATTEMPTS_EXCEEDED).

        Raises:
            ValueError: The word names no status; the message lists the words and what each
                maps to.
        """
        if isinstance(value, Status):
            return value
        found = status_value(value) if isinstance(value, str) else None
        if found is None:
            raise ValueError(unknown_status(value))
        return cls(found)


def utc(epoch: float | None) -> Any:
    """An epoch time as an aware UTC datetime (None stays None)."""
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc)


def _cell(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return format_time(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, enum.Enum):
        return str(value.value)
    return "" if value is None else str(value)


def _shown(name: str, value: Any) -> str:
    """A field's cell: a ``name`` as the tables show it (``parse``, not ``__main__.parse``: the
    value keeps it)."""
    return step_label(value) if name == "name" and isinstance(value, str) else _cell(value)


class LazyValue:
    """A value read and decoded the first time it is asked for (:attr:`StepInfo.output`).

    Copied (``copy.deepcopy``, ``dataclasses.asdict``) it stays itself; pickled, it is read first
    and travels as its value.
    """

    __slots__ = ("_load", "_loaded", "_value")

    def __init__(self, load: Callable[[], Any]) -> None:
        self._load = load
        self._loaded = False
        self._value: Any = None

    def get(self) -> Any:
        """The value, read and decoded on the first call."""
        if not self._loaded:
            self._value = self._load()
            self._loaded = True
        return self._value

    def __deepcopy__(self, memo: dict[int, Any]) -> LazyValue:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (_loaded_value, (self.get(),))

    def __repr__(self) -> str:
        return f"<LazyValue {'loaded' if self._loaded else 'not read yet'}>"


def _loaded_value(value: Any) -> LazyValue:
    lazy = LazyValue(lambda: value)
    lazy.get()
    return lazy


class _Record:
    """Mixin: an HTML row for notebooks. Fields whose names start with ``_`` are not shown."""

    def _values(self) -> list[tuple[str, Any]]:
        return [
            (f.name, getattr(self, f.name))
            for f in fields(self)  # type: ignore[arg-type]
            if not f.name.startswith("_")
        ]

    def _repr_html_(self) -> str:
        return Records([self])._repr_html_()


@dataclass(frozen=True)
class WorkflowInfo(_Record):
    """One workflow, as ``list_workflows`` returns it.

    Attributes:
        workflow_id: Its id.
        name: The registered name of its function.
        status: Its status.
        created_at: When it was started (UTC).
        ended_at: When it reached its final status, or None.
        duration: Seconds from start to end; None until it ends.
        error: ``"Type: message"`` of its error, then its notes one a line (the step or
            ``nbflow.map`` item that raised it: ``raised in step 'parse' (attempt 3 of 3)``), or
            None.
        parent_id: The workflow that called it, or None.
        queue: The queue it was enqueued on, or None.
        code: The fingerprint of its body when it started (:func:`nbflow.fingerprint`), or None.
        recovery_attempts: How many times it was recovered after its process stopped (0: never;
            ``nbflow.resume`` starts the count again). Past its workflow's
            ``max_recovery_attempts`` it is MAX_RECOVERY_ATTEMPTS_EXCEEDED instead.
    """

    workflow_id: str
    name: str
    status: Status
    created_at: dt.datetime
    ended_at: dt.datetime | None
    duration: float | None
    error: str | None
    parent_id: str | None = None
    queue: str | None = None
    code: str | None = None
    recovery_attempts: int = 0

    @classmethod
    def from_row(cls, row: Any) -> WorkflowInfo:
        end = row.ended_at
        return cls(
            workflow_id=row.workflow_id,
            name=row.name,
            status=Status(row.status),
            created_at=utc(row.created_at),  # type: ignore[arg-type]
            ended_at=utc(end),
            duration=None if end is None else end - row.created_at,
            error=row.error,
            parent_id=row.parent_id,
            queue=row.queue_name,
            code=row.code,
            recovery_attempts=row.recovery_attempts or 0,
        )


@dataclass(frozen=True)
class StepInfo(_Record):
    """One checkpoint of a workflow, as ``list_steps`` returns it.

    Attributes:
        function_id: Its position in the workflow (1, 2, …).
        name: The step's name.
        status: ``"SUCCESS"`` or ``"ERROR"``.
        started_at: When its first attempt started (UTC).
        duration: Seconds, over all attempts.
        attempts: How many times it ran.
        error: ``"Type: message"`` of its last error, or None.
        code: The fingerprint of the step's function (:func:`nbflow.fingerprint`), or None
            (an operation that is not a function of the user's: a stream read, a sleep).
        cached_from: The workflow whose result it took instead of running (a step cache hit,
            or a checkpoint of the run a re-run reuses); ``"(no workflow)"``: a result kept by a
            call outside a workflow; None: it ran.
        ended_at: When its last attempt ended (UTC).
        child_workflow_id: The child workflow it called, started or enqueued, or None.
        arguments: Its call's arguments in a few characters, as the steps table shows them
            (``'https://…/page/3'``, ``42``, ``DataFrame(100x3)``; a keyword argument named like a
            secret shows as ``***``), or None (an operation without arguments of the user's, or
            a checkpoint from before nbflow recorded them).

    ``output`` (a property) is the step's decoded output (None for a step that raised). It is read
    from the database and decoded the first time it is asked for: listing steps reads no outputs,
    and a pickled output under ``allow_pickle=False`` is refused only then.
    """

    function_id: int
    name: str
    status: str
    started_at: dt.datetime
    duration: float
    attempts: int
    error: str | None
    code: str | None = None
    cached_from: str | None = None
    ended_at: dt.datetime | None = None
    child_workflow_id: str | None = None
    arguments: str | None = None
    _output: LazyValue | None = field(default=None, repr=False, compare=False)

    @property
    def output(self) -> Any:
        """The step's output, decoded (read on first access); None for a step that raised."""
        return None if self._output is None or self.error is not None else self._output.get()

    @classmethod
    def from_row(
        cls, row: Any, child_workflow_id: str | None = None, output: LazyValue | None = None
    ) -> StepInfo:
        return cls(
            function_id=row.function_id,
            name=row.name,
            status="ERROR" if row.error is not None else "SUCCESS",
            started_at=utc(row.started_at),  # type: ignore[arg-type]
            duration=row.ended_at - row.started_at,
            attempts=row.attempts,
            error=row.error,
            code=row.code,
            cached_from=row.cached_from,
            ended_at=utc(row.ended_at),
            child_workflow_id=child_workflow_id,
            arguments=row.args_text,
            _output=output,
        )


@dataclass(frozen=True)
class StreamInfo(_Record):
    """One stream of a workflow, as ``list_streams`` returns it.

    Attributes:
        key: The stream's key.
        items: How many items it holds (:func:`nbflow.track` and :func:`nbflow.map` write a
            first ``0/N`` item on ``"progress"`` before any item is done: N + 1 for N items).
        closed: Whether it is closed.
        first_at: When its first item (or end) was written (UTC).
        last_at: When its last item (or end) was written (UTC).
    """

    key: str
    items: int
    closed: bool
    first_at: dt.datetime
    last_at: dt.datetime


@dataclass(frozen=True)
class StepStats(_Record):
    """The statistics of the steps of one name, as ``step_stats`` returns them.

    Durations are seconds from a step's start to its end, over all its attempts.

    Attributes:
        name: The step's name.
        count: How many step records (checkpoints) it has.
        errors: How many of them ended in an error.
        retries: Attempts beyond the first, summed (``attempts - 1`` of each).
        p50_s: The median duration.
        p95_s: The 95th percentile of the durations (interpolated).
        max_s: The longest duration.
        total_s: The durations summed.
    """

    name: str
    count: int
    errors: int
    retries: int
    p50_s: float
    p95_s: float
    max_s: float
    total_s: float


R = TypeVar("R", bound=_Record)


class Records(list[R], Generic[R]):
    """A list of records that shows as a table in a notebook, and converts to a DataFrame.

    :meth:`to_pandas`, :meth:`to_polars` and :meth:`to_arrow` import their library when called
    (extras ``nbflow[pandas]``, ``nbflow[polars]``; pyarrow comes with either): times become
    timezone-aware UTC timestamps, statuses strings, and an empty list still has the columns.
    """

    def __init__(self, items: Any = (), kind: type[R] | None = None) -> None:
        super().__init__(items)
        #: The record type, for the columns of an empty list (else the first item's type).
        self.kind: type[R] | None = kind

    def to_arrow(self) -> pyarrow.Table:
        """The records as a pyarrow Table, a column per field."""
        from nbflow import _frames

        return _frames.to_arrow(self, self.kind)

    def to_pandas(self) -> pandas.DataFrame:
        """The records as a pandas DataFrame, a column per field."""
        from nbflow import _frames

        return _frames.to_pandas(self, self.kind)

    def to_polars(self) -> polars.DataFrame:
        """The records as a polars DataFrame, a column per field."""
        from nbflow import _frames

        return cast("polars.DataFrame", _frames.to_polars(self, self.kind))

    def _repr_html_(self) -> str:
        if not self:
            return "<p><em>(none)</em></p>"
        names = [name for name, _ in self[0]._values()]
        head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
        body = "".join(
            "<tr>"
            + "".join(f"<td>{html.escape(_shown(n, v))}</td>" for n, v in r._values())
            + "</tr>"
            for r in self
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
