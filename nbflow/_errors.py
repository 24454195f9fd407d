"""Every error nbflow raises, in one tree.

Each error names what it is about (workflow ids, stream keys, files) as attributes, and says in its
message what to do next::

    NbflowError
    ├── ConfigurationError (ValueError)      a database URL or option nbflow cannot use
    ├── DatabaseError                        the system database cannot be used
    │   ├── DatabaseLockedError              another process holds the DuckDB file
    │   ├── DatabaseCorruptError             the file is not a DuckDB database
    │   └── SchemaVersionError               the file was written by a newer nbflow
    ├── RuntimeClosedError                   the runtime was closed
    ├── NotInWorkflowError (RuntimeError)    a workflow-only call made outside a workflow
    ├── ConcurrencyError (RuntimeError)      a workflow call from a thread with a copied context
    ├── WorkflowNotFoundError (LookupError)  no workflow has this id
    ├── WorkflowConflictError                an id given to one workflow function is another's
    ├── FunctionNotRegisteredError           a workflow's function is not declared in this process
    ├── NondeterminismError                  a replay called a different operation at a position
    ├── InvalidValueError (TypeError, ValueError)  a name nbflow cannot store (id, key, topic…)
    ├── SerializationError (TypeError)       a value cannot be stored, or loaded
    ├── StreamClosedError                    a write after the stream was closed
    ├── WorkflowCancelledError               the workflow was cancelled
    ├── WorkflowInterruptedError             the workflow was interrupted and is not running
    ├── MaxRecoveryAttemptsExceededError     recovered too often: never again by itself
    ├── WorkflowRunningError                 a running workflow cannot be deleted
    ├── ImportConflictError                  an imported workflow's id holds another workflow
    ├── QueueDeduplicatedError               a workflow with this deduplication id is on the queue
    ├── RecordedError                        a recorded exception that cannot be rebuilt here
    └── WaitTimeoutError (TimeoutError)      a wait ran out of time
        └── StreamTimeoutError               no stream item arrived in time

The database's own errors (``DatabaseError`` and its three) live in :mod:`nbflow._dberrors`.

Messages name the way out as the reader gives commands (:func:`nbflow.text._hints.hint`):
``nbflow.recover()`` in Python, ``%nbflow recover`` in a notebook with the magics loaded,
``nbflow recover`` in a terminal.
"""

from __future__ import annotations

from typing import Any

from nbflow.text._hints import hint
from nbflow.text._refusals import deduplicated_message

__all__ = [
    "ConcurrencyError",
    "ConfigurationError",
    "FunctionNotRegisteredError",
    "ImportConflictError",
    "InvalidValueError",
    "MaxRecoveryAttemptsExceededError",
    "NbflowError",
    "NondeterminismError",
    "NotInWorkflowError",
    "QueueDeduplicatedError",
    "RecordedError",
    "RuntimeClosedError",
    "SerializationError",
    "StreamClosedError",
    "StreamTimeoutError",
    "WaitTimeoutError",
    "WorkflowCancelledError",
    "WorkflowConflictError",
    "WorkflowInterruptedError",
    "WorkflowNotFoundError",
    "WorkflowRunningError",
]


class NbflowError(Exception):
    """The root of every error nbflow raises.

    Every one pickles (a process pool or a Dask worker sends it back) whatever its
    constructor takes: it is rebuilt from its message and attributes, not by calling it again.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuilt, (type(self), self.args, self.__dict__))


def _rebuilt(kind: type[NbflowError], args: tuple[Any, ...], state: dict[str, Any]) -> NbflowError:
    """An error unpickled: its message and attributes as they were (see :class:`NbflowError`)."""
    error = kind.__new__(kind)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ConfigurationError(NbflowError, ValueError):
    """A database URL or runtime option that nbflow cannot use."""


class RuntimeClosedError(NbflowError):
    """The runtime was closed; open a new one with nbflow.configure() or Runtime()."""


class NotInWorkflowError(NbflowError, RuntimeError):
    """A call that only makes sense inside a workflow was made outside one.

    Attributes:
        operation: The call, e.g. ``"write_stream"``.
    """

    def __init__(self, operation: str, remote_step: str | None = None) -> None:
        if remote_step is None:
            message = (
                f"nbflow.{operation}() was called outside a workflow. Call it from a function "
                "decorated with @nbflow.workflow (started with nbflow.start() or called directly)."
            )
        else:
            message = (
                f"nbflow.{operation}() was called from an item of nbflow.map({remote_step}) that "
                "runs in another process (a process pool or a Dask cluster), where no workflow "
                "can be reached. Return the value from the item instead, or map on threads."
            )
        super().__init__(message)
        self.operation = operation


class ConcurrencyError(NbflowError, RuntimeError):
    """A workflow operation was called from a thread its body's context was copied into.

    A step or stream write from such a thread would take a position in the workflow that depends
    on timing, and a replay could hand it another call's record: nbflow refuses it.

    Attributes:
        workflow_id: The workflow.
        thread: The name of the thread that made the call.
    """

    def __init__(self, workflow_id: str, thread: str) -> None:
        super().__init__(
            f"A step or stream write of workflow {workflow_id!r} was called from thread "
            f"{thread!r}, which runs with a copy of the workflow body's context: its position "
            "in the workflow would depend on timing, so a replay could return another call's "
            "result. Run parallel steps with nbflow.map(fn, items), or submit them to "
            "nbflow.Executor(), which checkpoint them in program order."
        )
        self.workflow_id = workflow_id
        self.thread = thread


class WorkflowNotFoundError(NbflowError, LookupError):
    """No workflow with this id exists in the database.

    Attributes:
        workflow_id: The id that was asked for.
    """

    def __init__(self, workflow_id: str, database: str | None = None) -> None:
        where = f" in {database}" if database else ""
        super().__init__(
            f"No workflow with id {workflow_id!r}{where}. Check the id with {hint('list')}, "
            "and that the runtime opened the database you meant."
        )
        self.workflow_id = workflow_id

    def __str__(self) -> str:  # LookupError subclasses would otherwise quote the message
        return str(self.args[0])


class WorkflowConflictError(NbflowError):
    """A workflow id that exists already was given to a different workflow function.

    Attributes:
        workflow_id: The id.
        recorded: The name of the workflow function it belongs to.
        called: The name of the one it was given to now.
    """

    def __init__(self, workflow_id: str, recorded: str, called: str) -> None:
        super().__init__(
            f"Workflow id {workflow_id!r} belongs to a run of {recorded!r}, not {called!r}. "
            "Give this workflow another id (ids name one run of one workflow function)."
        )
        self.workflow_id = workflow_id
        self.recorded = recorded
        self.called = called


class FunctionNotRegisteredError(NbflowError):
    """A workflow's function is not declared in this process, so it cannot be resumed here.

    Attributes:
        workflow_id: The workflow.
        name: The registered name it was recorded under.
    """

    def __init__(self, workflow_id: str, name: str) -> None:
        super().__init__(
            f"Workflow {workflow_id!r} runs the function {name!r}, which is not declared in this "
            "process. Import or define it (decorated with @nbflow.workflow, with the same name) "
            "before resuming."
        )
        self.workflow_id = workflow_id
        self.name = name


class NondeterminismError(NbflowError):
    """A replay called a different operation than the one recorded at the same position.

    Attributes:
        workflow_id: The workflow being replayed.
        function_id: The position in the workflow.
        recorded: What the recorded run did there.
        called: What the replay did instead.
    """

    def __init__(self, workflow_id: str, function_id: int, recorded: str, called: str) -> None:
        super().__init__(
            f"Workflow {workflow_id!r} is not deterministic: at operation #{function_id} the "
            f"recorded run called {recorded}, but this run called {called}. A workflow must make "
            "the same calls in the same order when it is replayed; move anything that varies "
            "(time, randomness, I/O) into a step, or start a new workflow."
        )
        self.workflow_id = workflow_id
        self.function_id = function_id
        self.recorded = recorded
        self.called = called


class InvalidValueError(NbflowError, TypeError, ValueError):
    """A name nbflow would store breaks its rules; nothing was written.

    Every name nbflow stores (workflow ids, stream keys, event keys, topics, queue names, workflow
    names) must be a non-empty ``str`` of valid Unicode (no lone surrogates), without NUL, of at
    most 1,000 UTF-8 bytes, on both stores. It is a TypeError and a ValueError, so code that caught
    either for a bad name still catches it.

    Attributes:
        what: The name's role, e.g. ``"A stream key"``.
        value: The value that was refused.
    """

    def __init__(self, message: str, *, what: str = "", value: object = None) -> None:
        super().__init__(message)
        self.what = what
        self.value = value


class SerializationError(NbflowError, TypeError):
    """A value cannot be stored (or a stored value cannot be loaded). Nothing was written.

    Attributes:
        what: What the value was for, e.g. ``"stream 'rows'"``.
        type_name: The value's type.
    """

    def __init__(self, message: str, *, what: str = "", type_name: str = "") -> None:
        super().__init__(message)
        self.what = what
        self.type_name = type_name


class StreamClosedError(NbflowError):
    """A write to a stream that was already closed.

    Attributes:
        workflow_id: The workflow.
        key: The stream's key.
    """

    def __init__(self, workflow_id: str, key: str) -> None:
        super().__init__(
            f"Stream {key!r} of workflow {workflow_id!r} is closed; nothing was written. "
            "Write every item before nbflow.close_stream(), or write to another key."
        )
        self.workflow_id = workflow_id
        self.key = key


class WorkflowCancelledError(NbflowError):
    """The workflow was cancelled; it stops at its next step or stream write.

    Attributes:
        workflow_id: The workflow.
    """

    def __init__(self, workflow_id: str) -> None:
        super().__init__(
            f"Workflow {workflow_id!r} was cancelled. Resume it with "
            f"{hint('resume', workflow_id)} to run it on from its last checkpoint."
        )
        self.workflow_id = workflow_id


#: Why a workflow was interrupted, besides its process stopping (``WorkflowInterruptedError``).
NO_THREAD = "no thread could be started for it: the process is out of threads or memory"
TAKEN_OVER = (
    "another process took it over: this one was judged dead (its database sessions were lost) "
    "while it ran, so nothing more of it is written here"
)


class WorkflowInterruptedError(NbflowError):
    """The workflow is PENDING but not running: its process stopped before it finished.

    Attributes:
        workflow_id: The workflow.
    """

    def __init__(self, workflow_id: str, *, reason: str = "its process stopped") -> None:
        super().__init__(
            f"Workflow {workflow_id!r} was interrupted ({reason}) and is not running. "
            f"Resume it with {hint('resume', workflow_id)}, or all interrupted workflows with "
            f"{hint('recover')}."
        )
        self.workflow_id = workflow_id


class MaxRecoveryAttemptsExceededError(NbflowError):
    """Each run of the workflow stopped its process, more often than ``max_recovery_attempts``
    allows: it is MAX_RECOVERY_ATTEMPTS_EXCEEDED, run again only by a resume. Attributes:
    ``workflow_id``, ``attempts`` (recoveries, the last one given up), ``limit`` (or None)."""

    def __init__(self, workflow_id: str, attempts: int, limit: int | None = None) -> None:
        allowed = "" if limit is None else f" (max_recovery_attempts={limit})"
        super().__init__(
            f"Workflow {workflow_id!r} gave up at recovery {attempts}{allowed}: its first run and "
            "every recovery stopped before it ended (an input that crashes its process?). It is "
            f"not recovered again by itself; fix the cause, then {hint('resume', workflow_id)}."
        )
        self.workflow_id, self.attempts, self.limit = workflow_id, attempts, limit


class WorkflowRunningError(NbflowError):
    """A workflow that has not finished (PENDING, ENQUEUED or DELAYED) cannot be deleted; nothing was.

    Attributes:
        workflow_id: The workflow that has not finished.
        status: Its status.
        asked: The workflow whose deletion was asked for (its parent or itself).
    """

    def __init__(self, workflow_id: str, status: str, asked: str | None = None) -> None:
        which = f"Workflow {workflow_id!r}"
        if asked is not None and asked != workflow_id:
            which = f"Workflow {asked!r} has a child workflow {workflow_id!r} that"
        super().__init__(
            f"{which} is {status} (not finished), so nothing was deleted. Cancel it first with "
            f"{hint('cancel', workflow_id)}, or wait until it ends, then delete again."
        )
        self.workflow_id, self.status, self.asked = workflow_id, status, asked


class ImportConflictError(NbflowError):
    """An imported workflow's id holds a different one here: ``workflow_id``, ``differences``."""

    def __init__(self, workflow_id: str, database: str, differences: list[str]) -> None:
        super().__init__(
            f"Workflow {workflow_id!r} exists in {database!r} with different content "
            f"({'; '.join(differences)}): not imported. Keep it, or delete it and import again."
        )
        self.workflow_id, self.database, self.differences = workflow_id, database, differences


class QueueDeduplicatedError(NbflowError):
    """An enqueue refused (nothing enqueued): workflow ``holder`` holds ``deduplication_id`` on
    ``queue``, being ENQUEUED, DELAYED or PENDING there; ``workflow_id`` is the refused one's."""

    def __init__(self, workflow_id: str, queue: str, deduplication_id: str, holder: str) -> None:
        super().__init__(deduplicated_message(workflow_id, queue, deduplication_id, holder))
        self.workflow_id, self.holder = workflow_id, holder
        self.queue, self.deduplication_id = queue, deduplication_id


class RecordedError(NbflowError):
    """An exception recorded in the database that cannot be rebuilt in this process.

    Attributes:
        type_name: The original exception's qualified type name.
        message: Its message.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message


class WaitTimeoutError(NbflowError, TimeoutError):
    """A wait ran out of time; nothing was lost, wait again or with a longer timeout."""


class StreamTimeoutError(WaitTimeoutError):
    """No new item arrived on a stream within the reader's timeout.

    Attributes:
        workflow_id: The workflow.
        key: The stream's key.
        offset: The offset the reader was waiting for; pass it as ``start=`` to read on.
    """

    def __init__(self, workflow_id: str, key: str, offset: int, timeout: float) -> None:
        super().__init__(
            f"No item arrived on stream {key!r} of workflow {workflow_id!r} within {timeout} s "
            f"(waiting for offset {offset}). The workflow is still PENDING; read on with "
            f"read_stream(id, {key!r}, start={offset}), or if it was interrupted, resume it with "
            f"{hint('resume', workflow_id)}."
        )
        self.workflow_id, self.key, self.offset = workflow_id, key, offset
