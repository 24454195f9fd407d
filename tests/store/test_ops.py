"""The write log's operations: what a committed batch wakes, and event step names."""

from __future__ import annotations

import pytest

from nbflow.store._ops import (
    Changes,
    Consume,
    Enqueue,
    Finish,
    Fork,
    MessageRow,
    SetEvent,
    StepRow,
    StreamRow,
    WorkflowRow,
    changes,
    event_key,
    event_step_name,
)


def _step(workflow_id: str, name: str = "s") -> StepRow:
    return StepRow(
        workflow_id=workflow_id,
        function_id=1,
        name=name,
        output_json="null",
        output_pickle=None,
        error=None,
        error_pickle=None,
        started_at=0.0,
        ended_at=0.0,
        attempts=1,
    )


def test_changes_names_what_each_operation_wakes() -> None:
    batch = [
        WorkflowRow("new", "f", "PENDING", None, None),
        Enqueue(WorkflowRow("queued", "f", "ENQUEUED", None, None, queue_name="q1")),
        _step("plain-step"),
        SetEvent(_step("evented", event_step_name("k")), "k"),
        StreamRow("writer", "out", 0, "1", None, False, 2, None, 0.0),
        MessageRow("m1", "receiver", None, "1", None, 0.0),
        Finish(workflow_id="ended", status="SUCCESS", ended_at=0.0),
        Consume("m0", _step("consumer")),
        Fork("source", "forked", 3, 0.0, "executor"),
    ]
    assert changes(batch) == Changes(
        workflows={"evented", "writer", "receiver", "ended", "forked"}, queues={"q1"}
    )


def test_changes_of_nothing() -> None:
    assert changes([]) == Changes(set(), set())


@pytest.mark.parametrize("key", ["k", "with 'quotes'", 'and "double"', "é)", ""])
def test_event_step_name_round_trips(key: str) -> None:
    name = event_step_name(key)
    assert name == f"nbflow.set_event({key!r})"
    assert event_key(name) == key
