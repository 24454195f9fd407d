"""Workflows and the world: durable sleep, events and messages (as DBOS Transact has them).

Each is a checkpointed operation of the workflow body, recorded as a step named ``nbflow.…`` (so
``list_steps`` shows them), and a replay returns what it returned the first time:

- ``sleep`` records its wake-up time: after a crash the workflow sleeps only what is left.
- ``set_event`` records the value; ``get_event`` (from anywhere) returns the last value recorded.
- ``send`` from a workflow records the send, and the message's id is the sender's (workflow id,
  function id), so a replay never sends twice; from outside, it returns once the message is
  durable.
- ``recv`` takes the oldest message on its topic: the step that records it and the message's
  deletion are one transaction, so a message is received exactly once, across crashes.

Waits wake on the committer's notification (and, on PostgreSQL, another process's), and are cut
short by a cancel or a closing runtime.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from nbflow._errors import WorkflowNotFoundError
from nbflow._execution import Execution, current_execution, require_execution
from nbflow._serialization import check_text, decode, encode
from nbflow.store._ops import Consume, MessageRow, SetEvent, StepRow, event_step_name

if TYPE_CHECKING:
    from nbflow._runtime import Runtime

__all__ = ["get_event", "recv", "send", "set_event", "sleep"]

T = TypeVar("T")


def _check_seconds(value: float | None, what: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{what} must be a number of seconds, not {value!r}.")
    if value < 0:
        raise ValueError(f"{what} must be >= 0 seconds, not {value!r}.")


def wait_for(
    runtime: Runtime,
    workflow_id: str,
    probe: Callable[[], T | None],
    timeout: float | None,
    ex: Execution | None = None,
) -> T | None:
    """Call ``probe`` until it returns something, waking when the workflow changes.

    Returns None when ``timeout`` seconds pass first. Inside a workflow (``ex``), a cancel or a
    closing runtime ends the wait with the workflow's own error.
    """
    event = ex.wakeup if ex is not None else threading.Event()
    sub = runtime._notifier.subscribe(workflow_id, None, event.set)
    deadline = None if timeout is None else time.monotonic() + timeout
    poll = runtime.store.poll_interval
    try:
        while True:
            event.clear()
            if ex is not None:
                ex.check_running()
            found = probe()
            if found is not None:
                return found
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            event.wait(left if poll is None else min(poll, left if left is not None else poll))
            runtime._check_open()
    finally:
        runtime._notifier.unsubscribe(sub)


def _body() -> Execution | None:
    """The current execution when called from a workflow body (not from inside a step)."""
    ex = current_execution()
    return ex if ex is not None and ex.in_step is None else None


# -- durable sleep ------------------------------------------------------------------------------


def _wake_time(seconds: float) -> float:
    return time.time() + seconds


def sleep(seconds: float) -> None:
    """Sleep ``seconds``, durably: after a crash and recovery, only the time that is left.

    Outside a workflow (or inside a step) it is :func:`time.sleep`. A cancel wakes it.
    """
    _check_seconds(seconds, "sleep()")
    ex = _body()
    if ex is None:
        time.sleep(seconds)
        return
    wake_at = ex.run_step("nbflow.sleep", _wake_time, (seconds,), {})
    ex.runtime._log.wait_durable()  # the wake-up time is recorded before the wait begins
    while True:
        ex.wakeup.clear()
        ex.check_running()
        left = wake_at - time.time()
        if left <= 0:
            return
        ex.wakeup.wait(left)


# -- events -------------------------------------------------------------------------------------


def set_event(key: str, value: Any) -> None:
    """Publish ``value`` under ``key`` for this workflow; :func:`get_event` reads the last one.

    Raises:
        NotInWorkflowError: Called outside a workflow body.
    """
    check_text(key, "An event key")
    ex = require_execution("set_event")
    if ex.in_step is not None:
        raise RuntimeError("set_event() is called from the workflow body, not from inside a step.")
    name = event_step_name(key)
    function_id = ex.next_function_id()
    if ex.replayed(function_id, "step", name) is not None:
        return
    ex.check_running()
    value_json, value_pickle = encode(
        value, what=f"the output of step {name!r}", allow_pickle=ex.runtime.allow_pickle
    )
    now = time.time()
    step = StepRow(
        workflow_id=ex.workflow_id,
        function_id=function_id,
        name=name,
        output_json=value_json,
        output_pickle=value_pickle,
        error=None,
        error_pickle=None,
        started_at=now,
        ended_at=now,
        attempts=1,
    )
    ex.append(SetEvent(step, key))


def get_event(runtime: Runtime, workflow_id: str, key: str, timeout: float | None = 60.0) -> Any:
    """The last value the workflow set for ``key``; waits up to ``timeout`` s, then None.

    From a workflow body the value it got is recorded, so a replay gets the same.
    """
    check_text(workflow_id, "A workflow id")
    check_text(key, "An event key")
    _check_seconds(timeout, "timeout")
    store, name = runtime.store, event_step_name(key)

    def wait(ex: Execution | None) -> Any:
        found = wait_for(runtime, workflow_id, lambda: store.get_event(workflow_id, name), timeout, ex)  # fmt: skip
        if found is None:
            return None
        what = f"event {key!r} of workflow {workflow_id!r}"
        return decode(found[0], found[1], what=what, allow_pickle=runtime.allow_pickle)

    ex = _body()
    if ex is None:
        return wait(None)
    return ex.run_step(f"nbflow.get_event({workflow_id!r}, {key!r})", wait, (ex,), {})


# -- messages -----------------------------------------------------------------------------------


def send(runtime: Runtime, workflow_id: str, message: Any, topic: str | None = None) -> None:
    """Send ``message`` to a workflow, on ``topic``; it gets it with :func:`recv`.

    Raises:
        WorkflowNotFoundError: No workflow has this id.
        SerializationError: The message cannot be stored (nothing was sent).
    """
    check_text(workflow_id, "A workflow id")
    if topic is not None:
        check_text(topic, "A topic")
    ex = _body()
    function_id = 0
    if ex is not None:
        function_id = ex.next_function_id()
        if ex.replayed(function_id, "step", f"nbflow.send({workflow_id!r})") is not None:
            return
        ex.check_running()
    if not runtime.exists(workflow_id):
        raise WorkflowNotFoundError(workflow_id, runtime.database)
    value_json, value_pickle = encode(message, what=f"a message to workflow {workflow_id!r}", allow_pickle=runtime.allow_pickle)  # fmt: skip
    now = time.time()
    log = runtime._log
    if ex is None:
        row = MessageRow(str(uuid.uuid4()), workflow_id, topic, value_json, value_pickle, now)
        log.wait_durable(log.append(row))
        return
    row = MessageRow(f"{ex.workflow_id}:{function_id}", workflow_id, topic, value_json, value_pickle, now)  # fmt: skip
    step = StepRow(
        workflow_id=ex.workflow_id,
        function_id=function_id,
        name=f"nbflow.send({workflow_id!r})",
        output_json="null",
        output_pickle=None,
        error=None,
        error_pickle=None,
        started_at=now,
        ended_at=now,
        attempts=1,
    )
    with log.lock:
        ex.check_running()
        log.append_locked(row)
        log.append_locked(step)


def recv(topic: str | None = None, timeout: float | None = 60.0) -> Any:
    """The oldest message sent to this workflow on ``topic``; waits up to ``timeout`` s, then None.

    Each message is received once, also across a crash between the receive and the next step.

    Raises:
        NotInWorkflowError: Called outside a workflow body.
    """
    if topic is not None:
        check_text(topic, "A topic")
    _check_seconds(timeout, "timeout")
    ex = require_execution("recv")
    if ex.in_step is not None:
        raise RuntimeError("recv() is called from the workflow body, not from inside a step.")
    runtime = ex.runtime
    name = f"nbflow.recv({topic!r})"
    function_id = ex.next_function_id()
    record = ex.replayed(function_id, "step", name)
    what = f"a message to workflow {ex.workflow_id!r}"
    if record is not None:
        return decode(record.output_json, record.output_pickle, what=what, allow_pickle=runtime.allow_pickle)  # fmt: skip
    ex.check_running()
    ex.wait_row_durable()
    started = time.time()
    store, workflow_id = runtime.store, ex.workflow_id
    message = wait_for(runtime, workflow_id, lambda: store.next_message(workflow_id, topic), timeout, ex)  # fmt: skip
    log = runtime._log
    step = StepRow(
        workflow_id=workflow_id,
        function_id=function_id,
        name=name,
        output_json="null" if message is None else message.value_json,
        output_pickle=None if message is None else message.value_pickle,
        error=None,
        error_pickle=None,
        started_at=started,
        ended_at=time.time(),
        attempts=1,
    )
    if message is None:
        ex.append(step)
        return None
    with log.lock:
        ex.check_running()
        seq = log.append_locked(Consume(message.message_id, step))
    log.wait_durable(seq)  # the next recv must not find it again
    return decode(message.value_json, message.value_pickle, what=what, allow_pickle=runtime.allow_pickle)  # fmt: skip
