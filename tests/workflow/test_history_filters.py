"""``list_workflows``'s filters on both stores: status (one or a list), name, a literal id prefix,
creation time (datetimes in any zone, naive ones local, or epoch seconds), queue, parent, pages;
nbflow's own record keeping left out unless named; bad values named."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from typing import Any

import pytest

import nbflow
from nbflow import InvalidValueError, Status
from tests.support.helpers import wait_until

pytestmark = pytest.mark.contract

queue = nbflow.Queue("tests.history.queue")


@nbflow.workflow(name="tests.history.ok")
def ok(x: int = 0) -> int:
    return x


@nbflow.workflow(name="tests.history.fails")
def fails() -> None:
    raise ValueError("no")


@nbflow.workflow(name="tests.history.parent")
def parent() -> int:
    return ok(5) + 1


def run(rt: nbflow.Runtime, workflow_id: str, fn: Any = ok, *args: Any) -> None:
    """Run ``fn`` as ``workflow_id`` to its end (an error is fine)."""
    with nbflow.set_workflow_id(workflow_id):
        handle = rt.start(fn, *args)
    with contextlib.suppress(ValueError):
        handle.result()


def tick() -> float:
    """The time now, once the clock has moved past it (creation times then differ)."""
    now = time.time()
    wait_until(lambda: time.time() > now)
    return now


def ids(records: Any) -> list[str]:
    return [w.workflow_id for w in records]


def test_status_name_and_a_literal_id_prefix(rt: nbflow.Runtime) -> None:
    for workflow_id in ("a_%1", "ab%2", "a_x3", "a%_4"):
        run(rt, workflow_id)
        tick()
    run(rt, "a_%5", fails)
    assert ids(rt.list_workflows(id_prefix="a_%")) == ["a_%5", "a_%1"]
    assert ids(rt.list_workflows(id_prefix="a%")) == ["a%_4"]
    assert ids(rt.list_workflows(id_prefix="a_", status="error")) == ["a_%5"]
    assert ids(rt.list_workflows(status=["SUCCESS", Status.ERROR], id_prefix="a_")) == [
        "a_%5",
        "a_x3",
        "a_%1",
    ]
    assert ids(rt.list_workflows(name="tests.history.fails")) == ["a_%5"]
    assert ids(nbflow.list_workflows(status=("PENDING",))) == []


def test_since_and_until_compare_the_creation_time_in_any_zone(rt: nbflow.Runtime) -> None:
    run(rt, "early")
    middle = tick()
    run(rt, "late")
    at = dt.datetime.fromtimestamp(middle, tz=dt.timezone.utc)
    for since in (
        middle,
        at,
        at.astimezone(dt.timezone(dt.timedelta(hours=-7))),
        at.astimezone().replace(tzinfo=None),  # naive: local time
    ):
        assert ids(rt.list_workflows(since=since)) == ["late"], since
        assert ids(rt.list_workflows(until=since)) == ["early"], since
    assert ids(rt.list_workflows(since=0, until=int(time.time()) + 10)) == ["late", "early"]


def test_queue_parent_and_pages(rt: nbflow.Runtime) -> None:
    run(rt, "p", parent)
    handle = queue.enqueue(ok, 2)
    assert handle.result() == 2
    for i in range(3):
        run(rt, f"page{i}")
        tick()
    assert ids(rt.list_workflows(parent_id="p")) == ["p-1"]
    assert ids(rt.list_workflows(queue="tests.history.queue")) == [handle.workflow_id]
    assert ids(rt.list_workflows(id_prefix="page", offset=1, limit=1)) == ["page1"]
    assert ids(rt.list_workflows(id_prefix="page", newest_first=False, limit=2)) == [
        "page0",
        "page1",
    ]
    assert ids(rt.list_workflows(id_prefix="page", offset=3)) == []
    assert ids(rt.list_workflows(id_prefix="page", limit=0)) == []


def test_record_keeping_is_left_out_unless_named(rt: nbflow.Runtime) -> None:
    run(rt, "mine")
    rt.record_step("rec", "cell", {"x": 1}, started=time.time(), ended=time.time())
    rt.record_step(
        "notebook:a.ipynb", "load", None, started=1.0, ended=2.0, workflow_name="nbflow.notebook"
    )
    assert ids(rt.list_workflows()) == ["mine"]
    assert ids(rt.list_workflows(name="nbflow.record")) == ["rec"]
    assert ids(rt.list_workflows(name="nbflow.notebook")) == ["notebook:a.ipynb"]
    assert set(ids(rt.list_workflows(include_internal=True))) == {
        "mine",
        "rec",
        "notebook:a.ipynb",
    }


@pytest.mark.parametrize(
    ("given", "argument"),
    [
        ({"limit": -1}, "limit"),
        ({"offset": -5}, "offset"),
        ({"limit": 2.5}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"until": float("nan")}, "until"),
        ({"status": "DONE"}, "status"),
        ({"status": ["SUCCESS", 3]}, "status"),
    ],
)
def test_bad_values_are_named(rt: nbflow.Runtime, given: dict[str, Any], argument: str) -> None:
    with pytest.raises(InvalidValueError, match=argument) as raised:
        rt.list_workflows(**given)
    assert raised.value.what == argument
