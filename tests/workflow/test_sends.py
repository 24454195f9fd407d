"""Idempotent sends (``nbflow.send(..., idempotency_key=...)``) on every store: DBOS's
``test_send_idempotency_key`` (``tests/test_dbos.py``) restated, a key that is sent again after
its message was received, and two processes sending with one key at once."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

import nbflow
from tests.support.processes import ROOT, run_together

pytestmark = pytest.mark.contract

received: list[threading.Event] = []


@pytest.fixture(autouse=True)
def _fresh() -> None:
    received.clear()
    received.append(threading.Event())


@nbflow.workflow(name="tests.sends.two")
def recv_two(topic: str | None = None, second_timeout: float = 1.0) -> list[object]:
    first = nbflow.recv(topic, timeout=30)
    received[0].set()
    return [first, nbflow.recv(topic, timeout=second_timeout)]


def test_a_key_delivers_once_also_after_the_message_was_received(rt: nbflow.Runtime) -> None:
    """DBOS ``test_send_idempotency_key`` (1): the same key sent again, after the first message
    was received (and so is no longer waiting), delivers nothing."""
    handle = nbflow.start(recv_two)
    nbflow.send(handle.workflow_id, "hello", idempotency_key="k")
    assert received[0].wait(30)
    nbflow.send(handle.workflow_id, "hello again", idempotency_key="k")
    assert handle.result(timeout=30) == ["hello", None]


def test_a_key_sent_twice_before_it_is_received_delivers_once(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(recv_two, "t", 30.0)
    nbflow.send(handle.workflow_id, "one", "t", idempotency_key="k")
    nbflow.send(handle.workflow_id, "two", "t", idempotency_key="k")
    nbflow.send(handle.workflow_id, "three", "t")  # no key: always delivered
    assert handle.result(timeout=30) == ["one", "three"]


def test_other_keys_and_other_topics_deliver(rt: nbflow.Runtime) -> None:
    """DBOS ``test_send_idempotency_key`` (2): different keys are different messages; a key
    counts per (workflow, topic, key)."""
    handle = nbflow.start(recv_two, "t", 30.0)
    nbflow.send(handle.workflow_id, "a", "t", idempotency_key="k1")
    nbflow.send(handle.workflow_id, "b", "t", idempotency_key="k2")
    assert handle.result(timeout=30) == ["a", "b"]
    other = nbflow.start(recv_two, "u", 30.0)
    nbflow.send(other.workflow_id, "on u", "u", idempotency_key="k1")  # the same key: u, not t
    nbflow.send(other.workflow_id, "again", "u", idempotency_key="k3")
    assert other.result(timeout=30) == ["on u", "again"]


@nbflow.workflow(name="tests.sends.sender")
def sender(destination: str, key: str) -> None:
    nbflow.send(destination, "from a workflow", idempotency_key=key)
    nbflow.send(destination, "from a workflow, again", idempotency_key=key)


def test_in_a_workflow_a_key_is_the_message_s_id(rt: nbflow.Runtime) -> None:
    """DBOS ``test_send_idempotency_key`` (3): sends with one key from a workflow deliver once,
    as a send with that key from outside does (the key is the message's id everywhere)."""
    handle = nbflow.start(recv_two, None, 1.0)
    nbflow.start(sender, handle.workflow_id, "wk").result(timeout=30)
    assert received[0].wait(30)
    nbflow.send(handle.workflow_id, "from outside", idempotency_key="wk")
    assert handle.result(timeout=30) == ["from a workflow", None]


def test_a_bad_key_is_refused(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(recv_two, None, 0.1)
    for bad in ("", 3, "a\x00b"):
        with pytest.raises(nbflow.InvalidValueError, match="idempotency key"):
            nbflow.send(handle.workflow_id, "x", idempotency_key=bad)  # type: ignore[arg-type]
    nbflow.send(handle.workflow_id, "ok", idempotency_key="good")
    assert handle.result(timeout=30) == ["ok", None]  # the refused sends delivered nothing


@pytest.mark.postgres
def test_two_processes_sending_one_key_deliver_once(pg_url: str, tmp_path: Path) -> None:
    """Two processes send with one key at the same moment: one message is delivered."""
    rt = nbflow.configure(pg_url)
    handle = rt.start(recv_two, None, 1.0)
    app = ROOT / "tests" / "apps" / "sendapp.py"
    commands = [
        [sys.executable, str(app), pg_url, handle.workflow_id, "once", f"from {n}"] for n in (1, 2)
    ]
    run_together(commands, tmp_path)
    first, second = handle.result(timeout=60)
    assert first in ("from 1", "from 2") and second is None
