"""Tracing with OpenTelemetry: the spans of workflows, step attempts, maps and their items, child
workflows; their parents across threads, processes and asyncio tasks; their attributes and
statuses; and no OpenTelemetry at all while no tracer provider is set.

Spans are read from the SDK's :class:`InMemorySpanExporter` behind a :class:`SimpleSpanProcessor`
on a :class:`TracerProvider` given to the runtime (``tracing=provider``): OpenTelemetry lets a
process set its global provider once, so the tests of the global provider run in child processes.
Tracing does not depend on the store: these run on DuckDB.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import nbflow
from tests.apps import parallel_items
from tests.support.helpers import Gate, interrupt

ROOT = Path(__file__).resolve().parents[2]


class Spans:
    """The spans a test's runtime exported, by name and by parent."""

    runtime: nbflow.Runtime

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    @property
    def all(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.all if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, [s.name for s in self.all]
        return found[0]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        """The spans whose parent is ``parent``, in the order they started."""
        assert parent.context is not None
        found = [
            s
            for s in self.all
            if s.parent is not None and s.parent.span_id == parent.context.span_id
        ]
        return sorted(found, key=lambda s: s.start_time or 0)


def parent_of(span: ReadableSpan, spans: Spans) -> ReadableSpan | None:
    if span.parent is None:
        return None
    return next(s for s in spans.all if s.context and s.context.span_id == span.parent.span_id)


@pytest.fixture
def spans(db_path: Path) -> Iterator[Spans]:
    """The default runtime, tracing through a provider of its own; the spans it exported."""
    found = Spans()
    found.runtime = nbflow.configure(db_path, tracing=found.provider)
    yield found
    nbflow._api._close_default()
    found.provider.shutdown()


@nbflow.step(name="tests.tracing.double")
def double(x: int) -> int:
    return 2 * x


failures = {"left": 0}


@nbflow.step(name="tests.tracing.flaky", retries=3, interval=0.0, backoff=1.0)
def flaky(x: int) -> int:
    if failures["left"] > 0:
        failures["left"] -= 1
        raise ConnectionError(f"try again ({failures['left']} more)")
    return x


@nbflow.step(name="tests.tracing.broken")
def broken() -> None:
    raise KeyError("no such row")


@nbflow.workflow(name="tests.tracing.child")
def child(x: int) -> int:
    return double(x)


@nbflow.workflow(name="tests.tracing.parent")
def parent(x: int) -> int:
    called = child(x)
    started = nbflow.start(child, x + 1).result()
    return called + started


def test_a_workflow_is_a_span_and_each_step_a_child_span_with_dbos_attributes(
    spans: Spans,
) -> None:
    @nbflow.workflow(name="tests.tracing.two_steps")
    def two_steps(x: int) -> int:
        return double(double(x))

    handle = nbflow.start(two_steps, 3)
    assert handle.result(timeout=30) == 12
    wf = spans.one("tests.tracing.two_steps")
    assert wf.parent is None  # nothing was current where it started
    assert wf.status.status_code is StatusCode.OK
    assert dict(wf.attributes or {}) == {
        "operationUUID": handle.workflow_id,
        "operationType": "workflow",
        "operationName": "tests.tracing.two_steps",
        "executorID": spans.runtime.executor_id,
        "nbflow.status": "SUCCESS",
    }
    steps = spans.children(wf)
    assert [s.name for s in steps] == ["tests.tracing.double"] * 2
    for function_id, step in enumerate(steps, 1):
        attributes = dict(step.attributes or {})
        assert attributes["operationUUID"] == handle.workflow_id
        assert attributes["operationType"] == "step"
        assert attributes["operationName"] == "tests.tracing.double"
        assert attributes["nbflow.function_id"] == function_id
        assert attributes["nbflow.attempt"] == 1
        assert attributes["nbflow.status"] == "SUCCESS"
        assert step.status.status_code is StatusCode.OK
        assert step.context is not None and wf.context is not None
        assert step.context.trace_id == wf.context.trace_id


def test_a_workflow_started_under_a_span_of_the_caller_is_its_child(spans: Spans) -> None:
    @nbflow.workflow(name="tests.tracing.under")
    def under(x: int) -> int:
        return double(x)

    with spans.provider.get_tracer("tests").start_as_current_span("notebook.cell"):
        assert nbflow.start(under, 1).result(timeout=30) == 2
    cell, wf = spans.one("notebook.cell"), spans.one("tests.tracing.under")
    assert parent_of(wf, spans) is cell


def test_a_retried_step_has_a_span_per_attempt_and_the_failed_ones_say_why(
    spans: Spans,
) -> None:
    @nbflow.workflow(name="tests.tracing.retrying")
    def retrying(x: int) -> int:
        return flaky(x)

    failures["left"] = 2
    assert nbflow.start(retrying, 7).result(timeout=30) == 7
    wf = spans.one("tests.tracing.retrying")
    attempts = spans.children(wf)
    assert [s.name for s in attempts] == ["tests.tracing.flaky"] * 3
    assert [(s.attributes or {})["nbflow.attempt"] for s in attempts] == [1, 2, 3]
    assert {(s.attributes or {})["nbflow.function_id"] for s in attempts} == {1}
    for failed in attempts[:2]:
        assert failed.status.status_code is StatusCode.ERROR
        assert (failed.attributes or {})["nbflow.status"] == "ERROR"
        assert (failed.attributes or {})["retryIntervalSeconds"] == 0.0
        [event] = failed.events
        assert event.name == "exception"
        assert (event.attributes or {})["exception.type"] == "ConnectionError"
    assert attempts[2].status.status_code is StatusCode.OK
    assert "retryIntervalSeconds" not in (attempts[2].attributes or {})


def test_an_error_sets_the_status_of_the_step_and_the_workflow_to_error(spans: Spans) -> None:
    @nbflow.workflow(name="tests.tracing.failing")
    def failing() -> None:
        broken()

    with pytest.raises(KeyError):
        nbflow.start(failing).result(timeout=30)
    wf, step = spans.one("tests.tracing.failing"), spans.one("tests.tracing.broken")
    assert parent_of(step, spans) is wf
    for span in (step, wf):
        assert span.status.status_code is StatusCode.ERROR
        assert "KeyError" in (span.status.description or "")
        assert (span.attributes or {})["nbflow.status"] == "ERROR"
        assert [e.name for e in span.events] == ["exception"]
        assert "no such row" in str((span.events[0].attributes or {})["exception.message"])


def test_map_items_in_worker_threads_are_children_of_the_maps_span(spans: Spans) -> None:
    threads: list[str] = []

    @nbflow.step(name="tests.tracing.item")
    def item(x: int) -> int:
        """Notes its thread, and opens a span of the user's own (a child of the item's)."""
        threads.append(threading.current_thread().name)
        with spans.provider.get_tracer("tests").start_as_current_span("user.work"):
            return x + 1

    @nbflow.workflow(name="tests.tracing.mapping")
    def mapping(n: int) -> list[int]:
        return nbflow.map(item, range(n), concurrency=3)

    assert nbflow.start(mapping, 6).result(timeout=30) == [1, 2, 3, 4, 5, 6]
    assert threads and all(name.startswith("nbflow-") for name in threads)
    wf, the_map = spans.one("tests.tracing.mapping"), spans.one("nbflow.map")
    assert parent_of(the_map, spans) is wf
    assert (the_map.attributes or {})["operationType"] == "map"
    assert (the_map.attributes or {})["operationName"] == "tests.tracing.item"
    assert (the_map.attributes or {})["nbflow.items"] == 6
    items = spans.children(the_map)
    assert sorted((s.attributes or {})["nbflow.map_index"] for s in items) == list(range(6))
    assert {s.name for s in items} == {"tests.tracing.item"}
    for span in items:  # the user's span inside each item is a child of the item's
        [own] = spans.children(span)
        assert own.name == "user.work"


@pytest.mark.usefixtures("spawnable_main")
def test_map_items_in_other_processes_have_spans_from_the_workflows_side(spans: Spans) -> None:
    @nbflow.workflow(name="tests.tracing.processes")
    def processes(n: int) -> list[int]:
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn) as pool:
            found = nbflow.map(parallel_items.square, range(n), executor=pool)
        return [f["square"] for f in found]

    assert nbflow.start(processes, 3).result(timeout=120) == [0, 1, 4]
    the_map = spans.one("nbflow.map")
    items = spans.children(the_map)
    assert [s.name for s in items] == ["tests.parallel.square"] * 3
    assert all((s.attributes or {})["nbflow.remote"] is True for s in items)
    assert sorted((s.attributes or {})["nbflow.map_index"] for s in items) == [0, 1, 2]


def test_a_child_workflows_span_is_a_child_of_its_parents_call(spans: Spans) -> None:
    handle = nbflow.start(parent, 4)
    assert handle.result(timeout=30) == 18
    wf = spans.one("tests.tracing.parent")
    call, start = spans.children(wf)
    assert (
        call.name == "tests.tracing.child" and start.name == "nbflow.start('tests.tracing.child')"
    )
    for operation, argument in ((call, 4), (start, 5)):
        attributes = dict(operation.attributes or {})
        assert attributes["operationType"] == "step"
        assert attributes["operationUUID"] == handle.workflow_id
        [child_wf] = spans.children(operation)
        assert (child_wf.attributes or {})["operationType"] == "workflow"
        assert (child_wf.attributes or {})["operationUUID"] == attributes[
            "nbflow.child_workflow_id"
        ]
        assert (child_wf.attributes or {})["nbflow.parent_id"] == handle.workflow_id
        [step] = spans.children(child_wf)
        assert step.name == "tests.tracing.double"
        assert (
            nbflow.get_workflow(attributes["nbflow.child_workflow_id"]).result(timeout=30)
            == 2 * argument
        )


@nbflow.step(name="tests.tracing.adouble")
async def adouble(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


@nbflow.workflow(name="tests.tracing.achild")
async def achild(x: int) -> int:
    return await adouble(x)


def test_async_workflows_steps_and_children_have_their_parents(spans: Spans) -> None:
    @nbflow.workflow(name="tests.tracing.async")
    async def gathering(n: int) -> int:
        values = await asyncio.gather(*(adouble(i) for i in range(n)))
        return sum(values) + double(1) + await achild(10)

    assert nbflow.start(gathering, 3).result(timeout=30) == 6 + 2 + 20
    wf = spans.one("tests.tracing.async")
    names = sorted(s.name for s in spans.children(wf))
    assert names == ["tests.tracing.achild"] + ["tests.tracing.adouble"] * 3 + [
        "tests.tracing.double"
    ]
    call = next(s for s in spans.children(wf) if s.name == "tests.tracing.achild")
    [child_wf] = spans.children(call)
    assert [s.name for s in spans.children(child_wf)] == ["tests.tracing.adouble"]


def test_a_sync_body_calling_an_async_step_on_nbflows_loop_is_its_parent(spans: Spans) -> None:
    @nbflow.workflow(name="tests.tracing.sync_body")
    def sync_body(x: int) -> int:
        return adouble(x)  # type: ignore[return-value]  # (run on nbflow's loop)

    assert nbflow.start(sync_body, 4).result(timeout=30) == 8
    assert parent_of(spans.one("tests.tracing.adouble"), spans) is spans.one(
        "tests.tracing.sync_body"
    )


def test_a_resumed_workflow_marks_its_replayed_steps(spans: Spans, db_path: Path) -> None:
    gate = Gate()

    @nbflow.step(name="tests.tracing.gated")
    def gated() -> int:
        gate.wait()
        return 1

    @nbflow.workflow(name="tests.tracing.resumed")
    def resumed(x: int) -> int:
        return double(x) + gated()

    handle = nbflow.start(resumed, 5)
    gate.reached()
    interrupt(spans.runtime, gate)
    spans.exporter.clear()
    nbflow.configure(db_path, tracing=spans.provider)
    assert nbflow.resume(handle.workflow_id).result(timeout=30) == 11
    wf = spans.one("tests.tracing.resumed")
    assert (wf.attributes or {})["nbflow.replayed"] is True
    replayed, ran = spans.children(wf)
    assert replayed.name == "tests.tracing.double"
    assert (replayed.attributes or {})["nbflow.replayed"] is True
    assert (replayed.attributes or {})["nbflow.status"] == "SUCCESS"
    assert ran.name == "tests.tracing.gated" and "nbflow.replayed" not in (ran.attributes or {})


@nbflow.step(name="tests.tracing.kept", cache=True)
def kept(x: int) -> int:
    return x * 10


def test_a_cache_hit_is_marked_cached_with_the_workflow_that_computed_it(spans: Spans) -> None:
    @nbflow.workflow(name="tests.tracing.caching")
    def caching(x: int) -> int:
        return kept(x)

    first = nbflow.start(caching, 3)
    assert first.result(timeout=30) == 30
    second = nbflow.start(caching, 3)
    assert second.result(timeout=30) == 30
    computed, hit = sorted(spans.named("tests.tracing.kept"), key=lambda s: s.start_time or 0)
    assert "nbflow.cached" not in (computed.attributes or {})
    assert (hit.attributes or {})["nbflow.cached"] is True
    assert (hit.attributes or {})["nbflow.cached_from"] == first.workflow_id
    assert (hit.attributes or {})["operationUUID"] == second.workflow_id


def test_tracing_takes_none_true_false_or_a_provider(db_path: Path) -> None:
    with pytest.raises(nbflow.InvalidValueError, match="TracerProvider"):
        nbflow.Runtime(db_path, tracing="yes")


def _run(code: str, tmp_path: Path, **env: str) -> str:
    """Run ``code`` in a fresh Python process (with ``db`` a database path); its output."""
    script = tmp_path / "script.py"
    script.write_text(f"db = {str(tmp_path / 'child.duckdb')!r}\n" + textwrap.dedent(code))
    environment = {k: v for k, v in os.environ.items() if k != "NBFLOW_TRACING"}
    environment.update(env)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


WORKFLOW = """
import sys
import nbflow

@nbflow.step
def inc(x):
    return x + 1

@nbflow.workflow
def wf(x):
    return sum(nbflow.map(inc, range(x))) + inc(x)
"""


def test_without_a_tracer_provider_nothing_of_opentelemetry_is_imported(tmp_path: Path) -> None:
    out = _run(
        WORKFLOW
        + """
with nbflow.Runtime(db) as rt:
    assert rt.start(wf, 3).result() == 10
print(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"))
""",
        tmp_path,
    )
    assert out.strip() == "[]"


def test_a_global_tracer_provider_set_after_the_runtime_opened_turns_tracing_on(
    tmp_path: Path,
) -> None:
    out = _run(
        WORKFLOW
        + """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

with nbflow.Runtime(db) as rt:
    rt.start(wf, 2).result()  # opentelemetry imported, no provider set: not traced
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    rt.start(wf, 2).result()
print(sorted(s.name for s in exporter.get_finished_spans()))
""",
        tmp_path,
    )
    assert out.strip() == str(sorted(["__main__.wf", "nbflow.map"] + ["__main__.inc"] * 3))


def test_nbflow_tracing_0_turns_it_off_and_other_words_are_refused(tmp_path: Path) -> None:
    code = (
        WORKFLOW
        + """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
try:
    with nbflow.Runtime(db) as rt:
        rt.start(wf, 2).result()
except nbflow.ConfigurationError as exc:
    print("refused:", exc)
print(len(exporter.get_finished_spans()))
"""
    )
    assert _run(code, tmp_path, NBFLOW_TRACING="0").strip() == "0"
    refused = _run(code, tmp_path, NBFLOW_TRACING="maybe")
    assert "refused: $NBFLOW_TRACING='maybe'" in refused
