"""Steps in full and their statistics, on both stores: ``StepInfo``'s end, child workflow and
output (read only when asked for), and ``step_stats`` per step name."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any

import pytest

import nbflow
from nbflow import SerializationError, StepStats
from tests.support.helpers import wait_until

pytestmark = pytest.mark.contract

failures: dict[str, int] = {}


@pytest.fixture(autouse=True)
def _fresh() -> None:
    failures.clear()


class Opaque:
    """A value that is not JSON: stored pickled."""

    def __init__(self, n: int) -> None:
        self.n = n


@nbflow.step(name="tests.stats.flaky", retries=3, interval=0.0)
def flaky(key: str) -> str:
    failures[key] = failures.get(key, 0) + 1
    if failures[key] < 3:
        raise OSError("try again")
    return key


@nbflow.step(name="tests.stats.broken")
def broken() -> None:
    raise ValueError("broken")


@nbflow.step(name="tests.stats.opaque")
def opaque() -> Opaque:
    return Opaque(7)


@nbflow.workflow(name="tests.stats.child")
def child(x: int) -> int:
    return x * 2


@nbflow.workflow(name="tests.stats.body")
def body(key: str) -> list[Any]:
    out = [flaky(key), opaque().n, child(3)]
    nbflow.sleep(0)
    handle = nbflow.start(child, 4)
    with nbflow.set_workflow_id(f"{key}-custom"):
        out.append(child(5))
    out.append(handle.result())
    try:
        broken()
    except ValueError:
        out.append("caught")
    return out


def run(rt: nbflow.Runtime, key: str) -> list[Any]:
    with nbflow.set_workflow_id(key):
        return rt.start(body, key).result()  # type: ignore[no-any-return]


def test_steps_carry_their_end_child_and_output(rt: nbflow.Runtime) -> None:
    assert run(rt, "w") == ["w", 7, 6, 10, 8, "caught"]
    steps = rt.list_steps("w")
    by_name = {s.name: s for s in steps}
    assert [s.name for s in steps] == [
        "tests.stats.flaky",
        "tests.stats.opaque",
        "tests.stats.child",
        "nbflow.sleep",
        "nbflow.start('tests.stats.child')",
        "tests.stats.child",
        "tests.stats.broken",
    ]
    assert [s.child_workflow_id for s in steps] == [
        None,
        None,
        "w-3",
        None,
        "w-5",
        "w-custom",
        None,
    ]
    for s in steps:
        assert s.started_at <= s.ended_at
        assert abs((s.ended_at - s.started_at).total_seconds() - s.duration) < 1e-5
    assert by_name["tests.stats.flaky"].output == "w"
    assert by_name["tests.stats.flaky"].attempts == 3
    assert by_name["tests.stats.opaque"].output.n == 7
    assert steps[2].output == 6
    assert by_name["tests.stats.broken"].output is None
    assert by_name["tests.stats.broken"].status == "ERROR"
    # the existing fields keep their order; the CLI's dataclasses.asdict still works
    names = [f.name for f in dataclasses.fields(nbflow.StepInfo)]
    assert names[:9] == ["function_id", "name", "status", "started_at", "duration", "attempts",
                         "error", "code", "cached_from"]  # fmt: skip
    assert "output" not in repr(steps[0]) and dataclasses.asdict(steps[0])["name"]


def test_an_output_is_read_only_when_asked_for(database: str) -> None:
    with nbflow.Runtime(database) as rt:
        assert run(rt, "w")[1] == 7
    with nbflow.Runtime(database, allow_pickle=False) as strict:
        steps = strict.list_steps("w")  # listing reads no output: the pickle is not refused
        assert steps[0].output == "w"
        with pytest.raises(SerializationError, match="allow_pickle"):
            _ = steps[1].output


def test_step_stats_per_name(rt: nbflow.Runtime) -> None:
    before = time.time()
    run(rt, "a")
    middle = time.time()
    wait_until(lambda: time.time() > middle)
    run(rt, "b")
    stats = {s.name: s for s in rt.step_stats()}
    assert "nbflow.sleep" not in stats and "nbflow.start('tests.stats.child')" not in stats
    flaky_stats = stats["tests.stats.flaky"]
    assert (flaky_stats.count, flaky_stats.errors, flaky_stats.retries) == (2, 0, 4)
    assert 0 <= flaky_stats.p50_s <= flaky_stats.p95_s <= flaky_stats.max_s <= flaky_stats.total_s
    assert (stats["tests.stats.broken"].count, stats["tests.stats.broken"].errors) == (2, 2)
    assert stats["tests.stats.child"].count == 4
    assert [s.name for s in nbflow.step_stats(name="nbflow.sleep")] == ["nbflow.sleep"]
    since_middle = rt.step_stats(name="tests.stats.flaky", since=middle)
    assert [s.count for s in since_middle] == [1]
    at = dt.datetime.fromtimestamp(middle, tz=dt.timezone.utc)
    assert [s.count for s in rt.step_stats(name="tests.stats.flaky", until=at)] == [1]
    assert rt.step_stats(until=before) == []
    assert isinstance(since_middle[0], StepStats)


def test_step_stats_refuses_bad_values(rt: nbflow.Runtime) -> None:
    with pytest.raises(nbflow.InvalidValueError, match="since"):
        rt.step_stats(since="today")  # type: ignore[arg-type]
    with pytest.raises(nbflow.InvalidValueError, match="step name"):
        rt.step_stats(name="")
