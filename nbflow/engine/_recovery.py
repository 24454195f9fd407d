"""Recovery limits: a claim that recovers a workflow counts itself, and one past its workflow's
``max_recovery_attempts`` gives up instead of running it.

A workflow whose every run stops its process (an input that crashes it, a kernel that runs out of
memory) would otherwise be recovered, and crash, forever. As DBOS counts them, its body starts at
most ``max_recovery_attempts + 1`` times; the next recovery marks it
``MAX_RECOVERY_ATTEMPTS_EXCEEDED`` (a final status, its streams closed, its error a
:class:`~nbflow.MaxRecoveryAttemptsExceededError`), and no recover runs it again. A resume
(``nbflow.resume(id)``) reopens it and starts the count again.

``recover()`` takes every interrupted workflow at once (:func:`recover`): one query finds them,
one transaction claims them all (:meth:`Store.claim_many <nbflow.store._base.Store.claim_many>`,
each recovery counted in it; on PostgreSQL a row another transaction holds is skipped, and one a
live process runs is left to it), one query reads their replays, and they enter the runtime's
table together.

The count is raised in the claim's own transaction (:meth:`Store.claim
<nbflow.store._base.Store.claim>`), and the claim makes this process the workflow's runner, so
that no other process can claim it between the count and the mark.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container

from nbflow._errors import MaxRecoveryAttemptsExceededError, SerializationError
from nbflow._records import Status
from nbflow._serialization import encode_error
from nbflow.engine._engine import Engine
from nbflow.engine._execution import Execution, Executions
from nbflow.store import WorkflowRow
from nbflow.store._base import Replay
from nbflow.store._ops import Finish
from nbflow.workflow._calls import DeclaredWorkflow
from nbflow.workflow._recovery import Recovered, Skipped
from nbflow.workflow._workflows import lookup_workflow

__all__ = ["claim", "claim_recovered", "recover", "recoverable"]


def claim(
    engine: Engine,
    workflow_id: str,
    wf: DeclaredWorkflow,
    *,
    recovery: bool,
    reopen: bool = False,
    quiet: bool = False,
) -> WorkflowRow | None:
    """Claim a workflow to run it here (see :meth:`Store.claim
    <nbflow.store._base.Store.claim>`); its row, or None when it is not taken.

    Args:
        engine: The runtime's engine.
        workflow_id: The workflow.
        wf: Its function, whose ``max_recovery_attempts`` holds.
        recovery: Whether this claim recovers it (its process stopped): counted, and held to the
            limit; otherwise (a resume) the count starts again.
        reopen: Whether an ended workflow is reopened (a resume).
        quiet: Whether a recovery past the limit returns None instead of raising (the error is
            the workflow's, which its ``result()`` raises).

    Raises:
        MaxRecoveryAttemptsExceededError: This recovery went past the limit: the workflow is
            now MAX_RECOVERY_ATTEMPTS_EXCEEDED, durably, and must not run.
    """
    now = time.time()
    row = engine.store.claim(workflow_id, engine.executor_id, now, reopen=reopen, recovery=recovery)
    if row is None or not recovery:
        return row
    error = _past_limit(row, wf)
    if error is None:
        return row
    engine.log.wait_durable(engine.log.append(_give_up(error)))
    if quiet:
        return None
    raise error


def recover(
    engine: Engine,
    executions: Executions,
    activate: Callable[[WorkflowRow, DeclaredWorkflow, Replay], Execution],
) -> tuple[Recovered, list[Execution]]:
    """Take every interrupted workflow this process can load over, to run it here: the
    executions to run, and a :class:`Recovered` naming the others (with the reason, see
    :func:`recoverable`) and those already running here.

    All are claimed in one transaction (:func:`claim_recovered`) and their replays read in one
    query, and they enter ``executions`` together, under its lock (a parent among them finds its
    children there); ``activate`` makes each one's execution.
    """
    recovered = Recovered()
    wanted = recoverable(engine, executions, recovered)
    activated: list[Execution] = []
    with executions.lock:
        engine.check_open()
        engine.flush()  # e.g. a cancel queued here goes first
        claimed = claim_recovered(engine, wanted, recovered, executions)
        replays = engine.store.load_replays([row.workflow_id for row, _ in claimed])
        for row, wf in claimed:
            try:
                activated.append(activate(row, wf, replays[row.workflow_id]))
            except SerializationError as exc:  # (one that cannot be loaded stops no other)
                recovered.skipped.append(Skipped(row.workflow_id, row.name, str(exc)))
    return recovered, activated


def recoverable(
    engine: Engine, running: Container[str], recovered: Recovered
) -> list[tuple[WorkflowRow, DeclaredWorkflow]]:
    """The interrupted workflows (:meth:`Store.pending_workflows
    <nbflow.store._base.Store.pending_workflows>`) this process can load, with their functions.
    The others are named in ``recovered``: those ``running`` here, and those skipped with the
    reason (function not declared; without pickles, inputs that are pickled)."""
    wanted: list[tuple[WorkflowRow, DeclaredWorkflow]] = []
    for row in engine.store.pending_workflows():
        if row.workflow_id in running:
            recovered.running.append((row.workflow_id, row.name))
            continue
        wf = lookup_workflow(row.name)
        if wf is None:
            reason = "its function is not declared in this process (import or define it)"
            recovered.skipped.append(Skipped(row.workflow_id, row.name, reason))
            continue
        if not engine.allow_pickle:  # before it is claimed (and JSON only: cheap)
            try:
                engine.decode(
                    row.inputs_json,
                    row.inputs_pickle,
                    f"the inputs of workflow {row.workflow_id!r}",
                )
            except SerializationError as exc:
                recovered.skipped.append(Skipped(row.workflow_id, row.name, str(exc)))
                continue
        wanted.append((row, wf))
    return wanted


def claim_recovered(
    engine: Engine,
    wanted: list[tuple[WorkflowRow, DeclaredWorkflow]],
    recovered: Recovered,
    running: Container[str] = (),
) -> list[tuple[WorkflowRow, DeclaredWorkflow]]:
    """Claim interrupted workflows to recover them here, all in one transaction (see
    :meth:`Store.claim_many <nbflow.store._base.Store.claim_many>`); those taken, with their
    functions, in the order given.

    Each recovery is counted and held to its workflow's ``max_recovery_attempts`` as
    :func:`claim` holds one: those past it are marked MAX_RECOVERY_ATTEMPTS_EXCEEDED (one wait
    until all those marks are durable) and named in ``recovered.skipped``. Those ``running``
    here (started since they were found) are named in ``recovered.running`` instead.
    """
    functions = {}
    for row, wf in wanted:
        if row.workflow_id in running:
            recovered.running.append((row.workflow_id, row.name))
        else:
            functions[row.workflow_id] = wf
    if not functions:
        return []
    rows = engine.store.claim_many(list(functions), engine.executor_id, time.time())
    taken: dict[str, WorkflowRow] = {}
    seq = None
    for row in rows:
        error = _past_limit(row, functions[row.workflow_id])
        if error is None:
            taken[row.workflow_id] = row
        else:
            seq = engine.log.append(_give_up(error))  # (its open streams closed with it)
            recovered.skipped.append(Skipped(row.workflow_id, row.name, str(error)))
    if seq is not None:
        engine.log.wait_durable(seq)
    return [(taken[i], wf) for i, wf in functions.items() if i in taken]


def _past_limit(row: WorkflowRow, wf: DeclaredWorkflow) -> MaxRecoveryAttemptsExceededError | None:
    """The error of a recovery past the workflow's ``max_recovery_attempts``, or None."""
    limit = wf.max_recovery_attempts
    if limit is None or (row.recovery_attempts or 0) <= limit:
        return None
    return MaxRecoveryAttemptsExceededError(row.workflow_id, row.recovery_attempts or 0, limit)


def _give_up(error: MaxRecoveryAttemptsExceededError) -> Finish:
    """The end of a workflow recovered past its limit."""
    text, pickled = encode_error(error)
    status = Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED.value
    return Finish(error.workflow_id, status, time.time(), error=text, error_pickle=pickled)
