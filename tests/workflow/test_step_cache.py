"""The step cache: ``@nbflow.step(cache=...)``, ``refresh_cache``, ``clear_cache`` and ``why``."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

import nbflow
from tests.support.helpers import wait_until
from tests.support.notebook_code import CodeCells, Tally

pytestmark = pytest.mark.contract

SOURCE = """
import nbflow

def shout(text):
    return text.upper()

@nbflow.step(cache=True)
def summarize(doc, model="small"):
    calls(doc)
    return shout(doc) + "/" + model

@nbflow.workflow
def pipeline(docs):
    return [summarize(d) for d in docs]
"""


@pytest.fixture
def nb() -> Iterator[CodeCells]:
    cells = CodeCells(f"nbcache_{uuid.uuid4().hex[:8]}", calls=Tally())
    cells.run(SOURCE)
    yield cells
    cells.close()


def test_a_hit_returns_the_kept_result_without_running(rt: nbflow.Runtime, nb: CodeCells) -> None:
    """Inside and outside workflows, in any workflow: the second call takes the result."""
    assert nb.pipeline(["a", "b"]) == ["A/small", "B/small"]
    assert nb.calls.total == 2
    assert nb.pipeline(["b", "c"]) == ["B/small", "C/small"]  # another workflow: b is kept
    assert nb.calls.counts == {"a": 1, "b": 1, "c": 1}
    assert nb.summarize("a") == "A/small"  # outside a workflow
    assert nb.summarize(doc="a", model="small") == "A/small"  # the same call, spelled otherwise
    assert nb.calls.total == 3
    [newest, oldest] = nbflow.list_workflows()[:2]
    [b, c] = nbflow.list_steps(newest.workflow_id)
    assert b.cached_from == oldest.workflow_id and c.cached_from is None
    assert b.code == c.code == nbflow.fingerprint(nb.summarize)


def test_a_miss_when_an_argument_or_the_code_changes(rt: nbflow.Runtime, nb: CodeCells) -> None:
    nb.summarize("a")
    nb.summarize("a", model="large")
    assert nb.calls.total == 2
    nb.run("def shout(text):\n    return text.upper() + '!'\n")  # a helper it calls changes
    assert nb.summarize("a") == "A!/small"
    assert nb.calls.total == 3
    nb.run("def shout(text):\n    # only a comment is new\n    return text.upper() + '!'\n")
    assert nb.summarize("a") == "A!/small"
    assert nb.calls.total == 3


def test_outside_a_workflow_a_result_is_kept_for_workflows(
    rt: nbflow.Runtime, nb: CodeCells
) -> None:
    nb.summarize("x")
    assert nb.pipeline(["x"]) == ["X/small"]
    assert nb.calls.total == 1
    [step] = nbflow.list_steps(nbflow.list_workflows()[0].workflow_id)
    assert step.cached_from == "(no workflow)"


def test_expire(rt: nbflow.Runtime, nb: CodeCells) -> None:
    nb.run("""
        import datetime

        @nbflow.step(cache=nbflow.Cache(expire=datetime.timedelta(seconds=0.3)))
        def fresh_only(x):
            calls(x)
            return x
    """)
    assert nb.fresh_only(1) == 1
    assert nb.fresh_only(1) == 1
    assert nb.calls.total == 1
    deadline = time.time() + 0.35
    wait_until(lambda: time.time() >= deadline, 5)  # the clock passing is the test
    assert nb.fresh_only(1) == 1
    assert nb.calls.total == 2
    assert "expired" in nbflow.why(nb.fresh_only)


def test_calls_in_one_run_take_what_the_run_read_and_kept(
    rt: nbflow.Runtime, nb: CodeCells
) -> None:
    """A run reads its step's kept results once; later calls of a plain step take them by
    their arguments' digest (however spelled), a result kept during the run is taken by the
    calls after it, and one that expired since is not (in any call of the run)."""
    nb.run("""
        import datetime

        @nbflow.step(cache=True)
        def double(x):
            calls(("double", x))
            return 2 * x

        @nbflow.step(cache=nbflow.Cache(expire=datetime.timedelta(seconds=0.3)))
        def briefly(x):
            calls(("briefly", x))
            return -x

        @nbflow.workflow
        def doubles(xs):
            return [double(x) for x in xs] + [double(x=2)] + [briefly(x) for x in xs[:2]]
    """)
    assert nb.doubles([1, 2]) == [2, 4, 4, -1, -2]
    deadline = time.time() + 0.35
    wait_until(lambda: time.time() >= deadline, 5)  # briefly's results expire
    assert nb.doubles([1, 2, 1, 3, 3]) == [2, 4, 2, 6, 6, 4, -1, -2]
    doubled = {("double", x): 1 for x in (1, 2, 3)}
    assert nb.calls.counts == {**doubled, ("briefly", 1): 2, ("briefly", 2): 2}


def test_ignore_and_key(rt: nbflow.Runtime, nb: CodeCells) -> None:
    nb.run("""
        @nbflow.step(cache=nbflow.Cache(ignore=("client",)))
        def ask(prompt, client):
            calls(prompt)
            return prompt * 2

        @nbflow.step(cache=nbflow.Cache(key=lambda prompt, seed: prompt.lower()))
        def ask_any_seed(prompt, seed):
            calls(("key", prompt))
            return prompt
    """)
    assert nb.ask("hi", threading.Lock()) == "hihi"  # a lock: not comparable, but ignored
    assert nb.ask("hi", object()) == "hihi"
    assert nb.calls["hi"] == 1
    assert nb.ask_any_seed("Hi", 1) == "Hi"
    assert nb.ask_any_seed("HI", 2) == "Hi"  # key= says it is the same call
    assert nb.calls[("key", "Hi")] == 1 and nb.calls[("key", "HI")] == 0


def test_refresh_and_clear(rt: nbflow.Runtime, nb: CodeCells) -> None:
    nb.summarize("a")
    nb.summarize("b")
    with nbflow.refresh_cache():
        nb.summarize("a")
        nb.pipeline(["b"])  # a workflow run inside it refreshes too
    assert nb.calls.counts == {"a": 2, "b": 2}
    assert "refreshed" in nbflow.why(nb.summarize)
    nb.summarize("a")
    assert nb.calls["a"] == 2
    assert nbflow.clear_cache(nb.summarize, older_than=3600) == 0
    assert nbflow.clear_cache(nb.summarize) == 2
    assert nbflow.clear_cache() == 0
    nb.summarize("a")
    assert nb.calls["a"] == 3


def test_why_names_each_cause(rt: nbflow.Runtime, nb: CodeCells) -> None:
    assert "never run" in nbflow.why(nb.summarize, "a")
    nb.summarize("a")
    assert "would not run" in nbflow.why(nb.summarize, "a")
    assert "argument 'model' changed" in nbflow.why(nb.summarize, "a", model="large")
    assert "argument 'doc' changed" in nbflow.why(nb.summarize, "b")
    nb.run("""
        def strip(text):
            return text.strip()

        def shout(text):
            return strip(text).upper()
    """)
    said = nbflow.why(nb.summarize, "a")
    assert "the code of `shout` changed" in said and "`shout` now calls `strip`" in said, said
    nb.summarize("a")
    nb.run("def strip(text):\n    return text.strip(' ')\n")  # two levels down
    said = nbflow.why(nb.summarize, "a")
    assert "strip" in said and "two levels down" in said, said
    nb.summarize("a")
    assert "two levels down" in nbflow.why(nb.summarize)  # the last call, by its reason
    assert "two levels down" in nbflow.why(f"{nb.name}.summarize")  # by name


def test_bad_input_says_what_to_do(rt: nbflow.Runtime, nb: CodeCells) -> None:
    with pytest.raises(nbflow.InvalidValueError, match="ignore"):
        nb.summarize(threading.Lock())  # cannot be compared across runs
    with pytest.raises(nbflow.InvalidValueError, match="not one of its arguments"):
        nbflow.step(cache=nbflow.Cache(ignore=("nope",)))(lambda x: x)
    with pytest.raises(nbflow.InvalidValueError, match=r"takes True or nbflow\.Cache"):
        nbflow.step(cache="yes")(lambda x: x)  # type: ignore[call-overload]
    with pytest.raises(nbflow.InvalidValueError, match="expire"):
        nbflow.step(cache=nbflow.Cache(expire=-1))(lambda x: x)
    with pytest.raises(nbflow.InvalidValueError, match="not cached"):
        nbflow.why(nbflow.step(lambda x: x), 1)
    with pytest.raises(nbflow.InvalidValueError, match="not a step declared"):
        nbflow.why("no.such.step")
    with pytest.raises(nbflow.InvalidValueError, match="older_than"):
        nbflow.clear_cache(older_than=-5)
    assert nb.calls.total == 0


def test_same_key_at_once_in_one_process_runs_once(rt: nbflow.Runtime, nb: CodeCells) -> None:
    nb.run("""
        @nbflow.step(cache=True)
        def slow(x):
            calls(x)
            started.set()
            go.wait(10)
            return x * 10
    """)
    nb.module.started, nb.module.go = threading.Event(), threading.Event()
    got: list[int] = []
    threads = [
        threading.Thread(target=lambda: got.append(nb.slow(4)), name=f"caller-{i}")
        for i in range(4)
    ]
    for t in threads:
        t.start()
    assert nb.module.started.wait(10)
    nb.module.go.set()
    for t in threads:
        t.join(10)
    assert got == [40] * 4
    assert nb.calls[4] == 1


def test_a_map_over_a_cached_step_runs_only_new_items(rt: nbflow.Runtime, nb: CodeCells) -> None:
    """10,000 items of which 10 are new run 10, on threads."""
    nb.run("""
        @nbflow.step(cache=True)
        def square(x):
            calls(x)
            return x * x

        @nbflow.workflow
        def squares(n):
            return nbflow.map(square, range(n), concurrency=8)
    """)
    assert nb.squares(9_990)[-1] == 9_989**2
    assert nb.calls.total == 9_990
    nb.calls.clear()
    result = nb.squares(10_000)
    assert result == [x * x for x in range(10_000)]
    assert nb.calls.total == 10
    assert sorted(nb.calls.counts) == list(range(9_990, 10_000))


def test_a_map_on_a_process_pool_keeps_and_takes(rt: nbflow.Runtime, spawnable_main: None) -> None:
    """Remote items hit item by item; their results are kept for the next run."""
    import concurrent.futures
    import multiprocessing

    from tests.apps import cachedsteps

    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn) as pool:

        @nbflow.workflow(name="tests.cache.remote")
        def remote(items: list[int]) -> list[int]:
            return nbflow.map(cachedsteps.cube, items, executor=pool)

        assert remote([1, 2, 3]) == [1, 8, 27]
        assert remote([2, 3, 4]) == [8, 27, 64]
    newest = nbflow.list_workflows()[0].workflow_id
    taken = [s.cached_from is not None for s in nbflow.list_steps(newest)]
    assert taken == [True, True, False]


def test_why_compares_with_the_same_call_when_one_was_kept(
    rt: nbflow.Runtime, nb: CodeCells
) -> None:
    """Only the code changed: why names the code, not an argument (a newer call with other
    arguments was kept meanwhile)."""
    nb.summarize("a")
    nb.summarize("b")
    nb.run("def shout(text):\n    return text.title()\n")
    said = nbflow.why(nb.summarize, "a")
    assert "shout" in said and "argument" not in said, said


def test_a_step_that_logs_its_calls_to_a_global_list_still_hits(
    rt: nbflow.Runtime, nb: CodeCells
) -> None:
    """A global the step changes in place (a call log) is state, not code: its content does not
    count (the fingerprint counted it, so every call changed the step's code and missed)."""
    nb.run("""
        LOG = []
        SEEN = {}

        @nbflow.step(cache=True)
        def logged(x):
            LOG.append(x)
            SEEN[x] = True
            return x + 1
    """)
    assert [nb.logged(1), nb.logged(1), nb.logged(2), nb.logged(1)] == [2, 2, 3, 2]
    assert nb.LOG == [1, 2]


def test_copies_of_an_item_in_a_map_run_once(rt: nbflow.Runtime, nb: CodeCells) -> None:
    """Items with one cache key run once, whatever the concurrency; outside a workflow too."""
    nb.run("""
        @nbflow.step(cache=True)
        def double(x):
            calls(x)
            return 2 * x

        @nbflow.workflow
        def doubles(items, concurrency):
            return nbflow.map(double, items, concurrency=concurrency)
    """)
    assert nb.doubles([3, 3, 3], 1) == [6, 6, 6]
    assert nb.doubles([4, 4, 4, 4], 8) == [8, 8, 8, 8]
    assert nb.calls.counts == {3: 1, 4: 1}
    newest = nbflow.list_workflows()[0].workflow_id
    assert [s.cached_from for s in nbflow.list_steps(newest)][1:] == [newest] * 3
    assert nbflow.map(nb.double, [5, 5, 6]) == [10, 10, 12]  # outside a workflow
    assert nbflow.map(nb.double, [5, 6]) == [10, 12]
    assert nb.double(6) == 12
    assert nb.calls.counts == {3: 1, 4: 1, 5: 1, 6: 1}


def test_an_async_cached_step_in_async_and_sync_bodies_and_outside(
    rt: nbflow.Runtime, nb: CodeCells
) -> None:
    """An ``async def`` cached step: kept by an async body, taken by a sync one (it runs on
    nbflow's loop there) and by an await outside a workflow."""
    import asyncio

    nb.run("""
        @nbflow.step(cache=True)
        async def fetch(url):
            calls(url)
            return url.upper()

        @nbflow.workflow
        async def fetch_all(urls):
            return [await fetch(u) for u in urls]

        @nbflow.workflow
        def fetch_all_sync(urls):
            return [fetch(u) for u in urls]
    """)
    assert nbflow.start(nb.fetch_all, ["a", "b"]).result(timeout=30) == ["A", "B"]
    assert nb.fetch_all_sync(["b", "c"]) == ["B", "C"]
    assert asyncio.run(nb.fetch("c")) == "C"
    assert nb.calls.counts == {"a": 1, "b": 1, "c": 1}
    [b, c] = nbflow.list_steps(nbflow.list_workflows()[0].workflow_id)
    assert b.cached_from is not None and c.cached_from is None


def test_a_cancel_stops_a_workflow_waiting_for_the_same_call_elsewhere(
    rt: nbflow.Runtime, nb: CodeCells
) -> None:
    """A workflow waiting for another thread's call with its key is cancelled like any wait."""
    nb.run("""
        @nbflow.step(cache=True)
        def slow(x):
            calls(x)
            started.set()
            go.wait(30)
            return x

        @nbflow.workflow
        def waits_for_slow(x):
            entered.set()
            return slow(x)
    """)
    nb.module.started, nb.module.go = threading.Event(), threading.Event()
    nb.module.entered = threading.Event()
    first = threading.Thread(target=nb.slow, args=(7,), name="caller")
    first.start()
    try:
        assert nb.module.started.wait(10)
        handle = nbflow.start(nb.waits_for_slow, 7)
        assert nb.module.entered.wait(10)
        wait_until(lambda: handle.status() == nbflow.Status.PENDING, 10)
        handle.cancel()
        with pytest.raises(nbflow.WorkflowCancelledError):
            handle.result(timeout=10)
    finally:
        nb.module.go.set()
        first.join(10)
    assert nb.calls[7] == 1
