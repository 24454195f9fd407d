"""One status, two vocabularies: the views' words (running, succeeded, failed, cancelled,
enqueued) and the enum's names (PENDING, SUCCESS, ERROR, CANCELLED, ENQUEUED) are both taken
wherever a status is typed; a handle shows its status word, name and progress."""

from __future__ import annotations

import threading

import pytest

import nbflow
from nbflow import Status


@nbflow.step(name="tests.words.score")
def score(city: str) -> int:
    return len(city)


@nbflow.workflow(name="tests.words.score_all")
def score_all(cities: list[str]) -> list[int]:
    return nbflow.map(score, cities)


@nbflow.workflow(name="tests.words.broken")
def broken() -> None:
    raise ValueError("no such city")


release = threading.Event()


@nbflow.workflow(name="tests.words.waits")
def waits(n: int) -> int:
    nbflow.progress(0, n)
    release.wait(30)
    return n


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("running", "PENDING"),
        ("pending", "PENDING"),
        ("Running", "PENDING"),
        ("queued", "ENQUEUED"),
        ("enqueued", "ENQUEUED"),
        ("delayed", "DELAYED"),
        ("Delayed", "DELAYED"),
        ("succeeded", "SUCCESS"),
        ("success", "SUCCESS"),
        ("failed", "ERROR"),
        ("error", "ERROR"),
        ("FAILED", "ERROR"),
        ("cancelled", "CANCELLED"),
        ("canceled", "CANCELLED"),
        ("gave up", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"),
        ("Gave-Up", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"),
        ("max_recovery_attempts_exceeded", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"),
        (Status.ERROR, "ERROR"),
    ],
)
def test_parse_takes_both_words(word: str, status: str) -> None:
    assert Status.parse(word) is Status(status)


def test_parse_names_both_words_of_each_status() -> None:
    with pytest.raises(ValueError, match="Unknown workflow status 'finished'") as raised:
        Status.parse("finished")
    message = str(raised.value)
    assert "failed (ERROR)" in message and "succeeded (SUCCESS)" in message, message
    assert "gave up or gave-up or given up (MAX_RECOVERY_ATTEMPTS_EXCEEDED)" in message
    with pytest.raises(ValueError, match="interrupted workflows are PENDING"):
        Status.parse("interrupted")


def test_a_status_has_the_views_word() -> None:
    words = ["running", "enqueued", "delayed", "succeeded", "failed", "cancelled", "gave up"]
    assert [s.word for s in Status] == words


def test_list_workflows_and_prune_take_the_views_words(rt: nbflow.Runtime) -> None:
    ok = nbflow.start(score_all, ["Oslo"])
    ok.result(timeout=30)
    bad = nbflow.start(broken)
    with pytest.raises(ValueError, match="no such city"):
        bad.result(timeout=30)
    assert [w.workflow_id for w in nbflow.list_workflows(status="failed")] == [bad.workflow_id]
    assert [w.workflow_id for w in nbflow.list_workflows(status=["succeeded"])] == [ok.workflow_id]
    assert rt.prune(older_than=1e-6, status="failed", dry_run=True) == 1
    with pytest.raises(nbflow.InvalidValueError, match="running"):
        rt.prune(older_than=1e-6, status="running")


def test_a_handle_shows_its_status_word_name_and_progress(rt: nbflow.Runtime) -> None:
    handle = nbflow.start(score_all, ["Oslo", "Lima", "Rome"])
    handle.result(timeout=30)
    shown = repr(handle)
    assert shown == f"<WorkflowHandle {handle.workflow_id!r} tests.words.score_all: succeeded, 3/3>"
    page = handle._repr_html_()
    assert "succeeded" in page and "3/3" in page and handle.workflow_id in page, page
    assert handle.status() is Status.SUCCESS  # the API keeps the enum


def test_a_running_handle_says_running_and_its_progress(rt: nbflow.Runtime) -> None:
    release.clear()
    handle = nbflow.start(waits, 7)
    try:
        rt.flush()
        shown = repr(handle)
        assert ": running" in shown and "tests.words.waits" in shown, shown
    finally:
        release.set()
    handle.result(timeout=30)
    assert repr(handle).endswith(": succeeded, 0/7>"), repr(handle)


def test_a_failed_handle_and_a_closed_runtime(database: str) -> None:
    rt = nbflow.configure(database)
    handle = nbflow.start(broken)
    with pytest.raises(ValueError):
        handle.result(timeout=30)
    assert repr(handle) == f"<WorkflowHandle {handle.workflow_id!r} tests.words.broken: failed>"
    rt.close()
    shown = repr(handle)  # never raises
    assert shown.startswith(f"<WorkflowHandle {handle.workflow_id!r}") and "closed" in shown, shown
    assert "closed" in handle._repr_html_()
    nbflow._api._close_default()
