"""Robustness of recover() and cancel(): one workflow that cannot be loaded does not stop the
recovery of the others, and cancel() never returns while the workflow's end is still on its way."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

import nbflow
from nbflow import DatabaseError, Status
from tests.support.helpers import Gate, interrupt, sql

pytestmark = pytest.mark.contract


def _interrupted_sums(rt: nbflow.Runtime, g: Gate, inputs: dict[str, Any]) -> None:
    """Start ``tests.robust.sum`` once per id (in order), each blocked in a step; interrupt them."""

    @nbflow.step(name="tests.robust.wait")
    def wait() -> None:
        g.wait()

    @nbflow.workflow(name="tests.robust.sum")
    def total(items: Any) -> int:
        wait()
        return sum(items)

    for workflow_id, items in inputs.items():
        with nbflow.set_workflow_id(workflow_id):
            nbflow.start(total, items)
    g.reached()
    interrupt(rt, g)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_recover_without_pickle_resumes_every_workflow_it_can_load(
    rt: nbflow.Runtime,
    database: str,
    gate: Callable[[], Gate],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A workflow whose inputs were pickled is left PENDING and named (with the reason, and with
    the workflows whose function is not declared) in one warning; the others run to SUCCESS."""
    sql(
        rt,
        "insert into workflows (workflow_id, name, status, inputs_json, created_at, updated_at) "
        "values ('ghost', 'tests.no_such_workflow', 'PENDING', '{\"args\":[],\"kwargs\":{}}', 1, 1)",
    )
    _interrupted_sums(rt, gate(), {"first": [1, 2], "pickled": {3, 4}, "last": [5, 6]})
    reopened = nbflow.configure(database, allow_pickle=False)
    [(blob,)] = sql(reopened, "select inputs_pickle from workflows where workflow_id = 'pickled'")
    assert blob is not None  # the premise: a set is pickled
    with caplog.at_level(logging.WARNING, logger="nbflow"):
        handles = nbflow.recover()
    assert sorted(h.workflow_id for h in handles) == ["first", "last"]
    assert [h.result(timeout=10) for h in sorted(handles, key=lambda h: h.workflow_id)] == [3, 11]
    assert nbflow.get_workflow("pickled").status() == Status.PENDING
    assert nbflow.get_workflow("ghost").status() == Status.PENDING
    [message] = _warnings(caplog)
    assert "pickled" in message and "pickl" in message.split("'pickled'", 1)[1], message
    assert "ghost" in message and "tests.no_such_workflow" in message, message
    assert "first" not in message and "last" not in message, message
    # a process that may unpickle recovers it later
    nbflow.configure(database)
    [handle] = nbflow.recover()
    assert (handle.workflow_id, handle.result(timeout=10)) == ("pickled", 7)


def test_recover_goes_on_after_a_workflow_that_cannot_be_loaded(
    rt: nbflow.Runtime,
    database: str,
    gate: Callable[[], Gate],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A SerializationError raised while a workflow is taken over (its claim made, with the
    others', in one transaction: here its pickled inputs cannot be unpickled) leaves that one
    PENDING and named; the others of the batch run."""
    _interrupted_sums(rt, gate(), {"first": [1], "broken": [2], "last": [3]})
    reopened = nbflow.configure(database)
    sql(
        reopened,
        "update workflows set inputs_json = NULL, inputs_pickle = ? where workflow_id = 'broken'",
        b"\x80\x04not a pickle",
    )
    with caplog.at_level(logging.WARNING, logger="nbflow"):
        handles = nbflow.recover()
    assert sorted(h.workflow_id for h in handles) == ["first", "last"]
    assert all(h.result(timeout=10) in (1, 3) for h in handles)
    [message] = _warnings(caplog)
    assert "broken" in message and "unpickling failed" in message, message
    assert nbflow.get_workflow("broken").status() == Status.PENDING


def test_recover_lets_database_errors_through(
    rt: nbflow.Runtime,
    database: str,
    gate: Callable[[], Gate],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A DatabaseError while workflows are taken over is no reason to skip them: recover()
    raises, and they stay PENDING."""
    _interrupted_sums(rt, gate(), {"first": [1]})
    reopened = nbflow.configure(database)

    def down(workflow_ids: Any) -> Any:
        raise DatabaseError("the database is down", path=database)

    monkeypatch.setattr(reopened.store, "load_replays", down)
    with pytest.raises(DatabaseError, match="down"):
        nbflow.recover()
    assert nbflow.get_workflow("first").status() == Status.PENDING


def test_cancel_returns_once_the_status_is_final(rt: nbflow.Runtime) -> None:
    """cancel() racing a workflow's own end: once it returns, the status is CANCELLED or the
    workflow's own final status, never PENDING."""

    @nbflow.workflow(name="tests.robust.trivial")
    def trivial() -> int:
        return 1

    seen = []
    for _ in range(150):
        handle = nbflow.start(trivial)
        nbflow.cancel(handle.workflow_id)
        status = rt.status(handle.workflow_id)
        assert status in (Status.CANCELLED, Status.SUCCESS), status
        seen.append(status)
    assert Status.PENDING not in seen
