"""Workflows and the world: durable sleep, events and messages (as DBOS Transact has them).

Each is a checkpointed operation of the workflow body, recorded as a step named ``nbflow.…`` (so
``list_steps`` shows them), and a replay returns what it returned the first time:

- ``sleep`` records its wake-up time: after a crash the workflow sleeps only what is left.
- ``set_event`` records the value; ``get_event`` (from anywhere) returns the last value recorded.
- ``send`` from a workflow records the send, and the message's id is the sender's (workflow id,
  function id), so a replay never sends twice; from outside, it returns once the message is
  durable. With an idempotency key, the message's id is derived from (destination, topic, key),
  so however often (and from wherever) it is sent, it is delivered once.
- ``recv`` takes the oldest message on its topic: the step that records it and the message's
  deletion are one transaction, so a message is received exactly once, across crashes.

Waits go through the engine's one wait loop, and are cut short by a cancel or a closing runtime.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from nbflow._errors import WorkflowNotFoundError
from nbflow._serialization import Encoded
from nbflow.engine._engine import Engine
from nbflow.engine._execution import Execution
from nbflow.engine._steps import step_row
from nbflow.store._ops import Consume, MessageRow, SetEvent, StepRow, event_key, event_step_name
from nbflow.workflow._calls import Step
from nbflow.workflow._context import WorkflowContext, current_step

__all__ = [
    "GET_EVENTS",
    "KEYED",
    "SEND",
    "get_event",
    "get_event_async",
    "get_event_name",
    "get_events",
    "keyed_message_id",
    "read_events",
    "recv",
    "patched",
    "recv_async",
    "send",
    "set_event",
    "sleep",
    "sleep_async",
]


def _from_body(operation: str) -> None:
    if current_step() is not None:
        raise RuntimeError(
            f"{operation}() is called from the workflow body, not from inside a step."
        )


def _record(ex: Execution, function_id: int, name: str, started: float, output: Encoded) -> StepRow:
    """The step that records an operation of the body whose output is already encoded."""
    return step_row(ex.workflow_id, function_id, name, (started, time.time()), output=output)


_NULL: Encoded = ("null", None)

#: The body that asks (its execution and context), or None outside a workflow body.
Body = tuple[Execution, WorkflowContext] | None

#: The name of a send's checkpoint: by kind, not by destination (a fork may change that).
SEND = "nbflow.send"


def patched(ex: Execution, name: str, *, deprecated: bool = False) -> bool:
    """Whether the run takes the patched path ``name`` (see :func:`nbflow.patched`).

    A replay whose next recorded operation is this patch takes it (True); one whose next
    recorded operation is another passed this point before the patch existed (False, and no
    position is taken). Past the replay a patch is recorded as a step (True); a deprecated
    patch records nothing.
    """
    _from_body("nbflow.patched")
    marker = f"nbflow.patch({name!r})"
    recorded = ex.recorded.get(ex.function_id + 1)
    if recorded is not None:
        if recorded.kind == "step" and recorded.name == marker:
            ex.next_function_id()
            return True
        return deprecated
    if deprecated:
        return True
    ex.check_running()
    started = time.time()
    ex.append(_record(ex, ex.next_function_id(), marker, started, ("true", None)))
    return True


def get_event_name(key: str) -> str:
    """The name of a get_event's checkpoint: by kind and key, not by the workflow it reads (the
    body may pass its own id, which a fork changes)."""
    return f"nbflow.get_event({key!r})"


def sleep(ex: Execution, ctx: WorkflowContext, seconds: float) -> None:
    """Sleep ``seconds`` durably: the wake-up time is recorded before the wait begins."""
    wake_at = ctx.run_step(_SLEEP, (seconds,), {})
    ex.engine.log.wait_durable()
    while True:
        ex.check_running()
        left = wake_at - time.time()
        if left <= 0:
            return
        ex.alarm.pause(left)


def _wake_time(seconds: float) -> float:
    return time.time() + seconds


_SLEEP = Step("nbflow.sleep", _wake_time)


def set_event(ex: Execution, key: str, value: Any) -> None:
    """Record ``value`` as the workflow's event ``key``."""
    _from_body("set_event")
    name = event_step_name(key)
    function_id = ex.next_function_id()
    if ex.replayed(function_id, "step", name) is not None:
        return
    ex.check_running()
    ex.wait_row_durable()
    encoded = ex.engine.encode(value, f"the output of step {name!r}")
    ex.append(SetEvent(_record(ex, function_id, name, time.time(), encoded), key))


def get_event(engine: Engine, body: Body, workflow_id: str, key: str, timeout: float | None) -> Any:
    """The last value ``workflow_id`` set for ``key``; waits up to ``timeout`` s, then None.

    From a workflow ``body`` the value it got is recorded, so a replay gets the same.
    """
    look = _event_probe(engine, workflow_id, key)

    def wait(ex: Execution | None) -> Any:
        with engine.watch(workflow_id, event=None if ex is None else ex.alarm.event) as watch:
            found = watch.wait_until(look, timeout, None if ex is None else ex.check_running)
        return _event_value(engine, found, workflow_id, key)

    if body is None:
        return wait(None)
    ex, ctx = body
    return ctx.run_step(Step(get_event_name(key), wait), (ex,), {})


def read_events(engine: Engine, workflow_id: str) -> dict[str, Any]:
    """The events ``workflow_id`` set (each key's last value), as committed now."""
    engine.flush()  # read your own writes
    found: dict[str, Any] = {}
    for name, value_json, value_pickle in engine.store.list_events(workflow_id):
        key = event_key(name)
        what = f"event {key!r} of workflow {workflow_id!r}"
        found[key] = engine.decode(value_json, value_pickle, what)
    return found


def get_events(engine: Engine, body: Body, workflow_id: str) -> dict[str, Any]:
    """Every event ``workflow_id`` set, each key's last value; from a workflow ``body`` one
    checkpoint (``nbflow.get_events``), so a replay gets the same."""
    if body is None:
        return read_events(engine, workflow_id)
    _, ctx = body
    read = Step(GET_EVENTS, lambda: read_events(engine, workflow_id))
    return ctx.run_step(read, (), {})  # type: ignore[no-any-return]


#: The name of a get_events checkpoint (not of the workflow it reads: a fork changes that id).
GET_EVENTS = "nbflow.get_events"


def _event_probe(
    engine: Engine, workflow_id: str, key: str
) -> Callable[[bool], tuple[str | None, bytes | None] | None]:
    """A probe of the wait loop: the stored value of the event, once it is set."""
    name = event_step_name(key)
    return lambda _: engine.store.get_event(workflow_id, name)


def _event_value(
    engine: Engine, found: tuple[str | None, bytes | None] | None, workflow_id: str, key: str
) -> Any:
    if found is None:
        return None
    return engine.decode(found[0], found[1], f"event {key!r} of workflow {workflow_id!r}")


#: The start of the id of a message sent with an idempotency key (see :func:`keyed_message_id`).
KEYED = "key:"


def keyed_message_id(workflow_id: str, topic: str | None, key: str) -> str:
    """The id of the message sent to ``workflow_id`` on ``topic`` with the idempotency ``key``:
    the same for every such send, so the store inserts it once; ``recv`` marks it consumed
    rather than deleting it, so the key never delivers again."""
    digest = hashlib.sha256(json.dumps([workflow_id, topic, key]).encode()).hexdigest()
    return f"{KEYED}{digest[:40]}"


def send(
    engine: Engine,
    ex: Execution | None,
    exists: Callable[[str], bool],
    workflow_id: str,
    message: Any,
    topic: str | None,
    key: str | None = None,
) -> None:
    """Send ``message`` to ``workflow_id`` on ``topic``, from the body of ``ex`` or from outside;
    with an idempotency ``key``, once for the (destination, topic, key), wherever it is sent."""
    name = SEND
    function_id = 0
    if ex is not None:
        function_id = ex.next_function_id()
        if ex.replayed(function_id, "step", name) is not None:
            return
        ex.check_running()
    if not exists(workflow_id):
        raise WorkflowNotFoundError(workflow_id, engine.database)
    value = engine.encode(message, f"a message to workflow {workflow_id!r}")
    now = time.time()
    log = engine.log
    if key is not None:
        message_id = keyed_message_id(workflow_id, topic, key)
    else:
        message_id = str(uuid.uuid4()) if ex is None else f"{ex.workflow_id}:{function_id}"
    row = MessageRow(message_id, workflow_id, topic, value[0], value[1], now)
    if ex is None:
        log.wait_durable(log.append(row))
    else:
        ex.append(row, _record(ex, function_id, name, now, _NULL))


class _Receive:
    """One ``recv`` of a workflow body: its checkpoint, before and after the wait."""

    def __init__(self, ex: Execution, topic: str | None) -> None:
        _from_body("recv")
        self.ex, self.topic = ex, topic
        self.name = f"nbflow.recv({topic!r})"
        self.what = f"a message to workflow {ex.workflow_id!r}"
        self.function_id = ex.next_function_id()
        self.record = ex.replayed(self.function_id, "step", self.name)
        if self.record is None:
            ex.check_running()
            ex.wait_row_durable()
        self.started = time.time()

    def replay(self) -> Any:
        assert self.record is not None
        record = self.record
        return self.ex.engine.decode(record.output_json, record.output_pickle, self.what)

    def probe(self, _: bool) -> MessageRow | None:
        return self.ex.engine.store.next_message(self.ex.workflow_id, self.topic)

    def took(self, message: MessageRow | None) -> int:
        """Record what the wait got (the message, consumed in the same transaction, or None);
        the log position to wait for before the next recv may look."""
        ex = self.ex
        if message is None:
            return ex.append(_record(ex, self.function_id, self.name, self.started, _NULL))
        value = (message.value_json, message.value_pickle)
        step = _record(ex, self.function_id, self.name, self.started, value)
        return ex.append(Consume(message.message_id, step, message.message_id.startswith(KEYED)))

    def value(self, message: MessageRow | None) -> Any:
        if message is None:
            return None
        return self.ex.engine.decode(message.value_json, message.value_pickle, self.what)


def recv(ex: Execution, topic: str | None, timeout: float | None) -> Any:
    """Take the oldest message to ``ex`` on ``topic``; None after ``timeout`` seconds."""
    receive = _Receive(ex, topic)
    if receive.record is not None:
        return receive.replay()
    with ex.engine.watch(ex.workflow_id, event=ex.alarm.event) as watch:
        message = watch.wait_until(receive.probe, timeout, ex.check_running)
    ex.engine.log.wait_durable(receive.took(message))  # the next recv must not find it again
    return receive.value(message)


async def recv_async(ex: Execution, topic: str | None, timeout: float | None) -> Any:
    """:func:`recv` in an ``async def`` workflow: waits without blocking nbflow's loop."""
    receive = _Receive(ex, topic)
    if receive.record is not None:
        return receive.replay()
    with ex.engine.watch_async(ex.workflow_id, alarm=ex.alarm) as watch:
        message = await watch.wait_until_async(receive.probe, timeout, ex.check_running)
    await asyncio.to_thread(ex.engine.log.wait_durable, receive.took(message))
    return receive.value(message)


async def sleep_async(ex: Execution, ctx: WorkflowContext, seconds: float) -> None:
    """:func:`sleep` in an ``async def`` workflow: waits without blocking nbflow's loop (a cancel
    or a close ends it at once, as it ends the sync sleep)."""
    wake_at = await ctx.run_step_async(_SLEEP_ASYNC, (seconds,), {})
    await asyncio.to_thread(ex.engine.log.wait_durable)
    while True:
        ex.check_running()
        left = wake_at - time.time()
        if left <= 0:
            return
        await ex.alarm.pause_async(left)


async def _wake_time_async(seconds: float) -> float:
    return _wake_time(seconds)


_SLEEP_ASYNC = Step("nbflow.sleep", _wake_time_async)


async def get_event_async(
    engine: Engine, body: Body, workflow_id: str, key: str, timeout: float | None
) -> Any:
    """:func:`get_event` without blocking an event loop (recorded in an async workflow body)."""
    look = _event_probe(engine, workflow_id, key)

    async def wait(ex: Execution | None) -> Any:
        with engine.watch_async(workflow_id, alarm=None if ex is None else ex.alarm) as watch:
            check = None if ex is None else ex.check_running
            found = await watch.wait_until_async(look, timeout, check)
        return _event_value(engine, found, workflow_id, key)

    if body is None:
        return await wait(None)
    ex, ctx = body
    return await ctx.run_step_async(Step(get_event_name(key), wait), (ex,), {})
