"""Recovery limits: a claim that recovers a workflow counts itself, and one past its workflow's
``max_recovery_attempts`` gives up instead of running it.

A workflow whose every run stops its process (an input that crashes it, a kernel that runs out of
memory) would otherwise be recovered, and crash, forever. As DBOS counts them, its body starts at
most ``max_recovery_attempts + 1`` times; the next recovery marks it
``MAX_RECOVERY_ATTEMPTS_EXCEEDED`` (a final status, its streams closed, its error a
:class:`~nbflow.MaxRecoveryAttemptsExceededError`), and no recover runs it again. A resume
(``nbflow.resume(id)``) reopens it and starts the count again.

The count is raised in the claim's own transaction (:meth:`Store.claim
<nbflow.store._base.Store.claim>`), and the claim makes this process the workflow's runner, so
that no other process can claim it between the count and the mark.
"""

from __future__ import annotations

import time

from nbflow._errors import MaxRecoveryAttemptsExceededError
from nbflow._records import Status
from nbflow._serialization import encode_error
from nbflow.engine._engine import Engine
from nbflow.store import WorkflowRow
from nbflow.store._ops import Finish
from nbflow.workflow._calls import DeclaredWorkflow

__all__ = ["claim"]


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
    limit = wf.max_recovery_attempts
    if row is None or not recovery or limit is None or (row.recovery_attempts or 0) <= limit:
        return row
    error = MaxRecoveryAttemptsExceededError(workflow_id, row.recovery_attempts or 0, limit)
    text, pickled = encode_error(error)
    status = Status.MAX_RECOVERY_ATTEMPTS_EXCEEDED.value
    finish = Finish(workflow_id, status, time.time(), error=text, error_pickle=pickled)
    engine.log.wait_durable(engine.log.append(finish))  # (its open streams closed with it)
    if quiet:
        return None
    raise error
