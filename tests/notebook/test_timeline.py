"""Timeline: the SVG of real workflows on a real DuckDB file, parsed and checked element by
element (bars where the steps' times put them, ticks, markers, child rows, lanes, escaping), a
running workflow drawn live then static, and the reader thread's end; the live view's Timeline
toggle."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

import nbflow
from nbflow.engine._timelayout import MAX_LANES, STEP_ROWS
from nbflow.notebook import LiveView, Timeline
from nbflow.text._gantt import LABELS, RIGHT, WIDTH
from tests.support.helpers import Gate, interrupt, nbflow_threads, wait_until

SVG = "{http://www.w3.org/2000/svg}"
NAME = 'tests.timeline.<odd & "quoted">'


class Drawn(NamedTuple):
    """One row of a drawn chart."""

    label: str
    kind: str
    bars: list[ET.Element]
    ticks: list[ET.Element]
    element: ET.Element


def parse(svg: str) -> tuple[ET.Element, list[Drawn]]:
    """The ``<svg>`` element and its rows, in order (fails on anything that is not XML)."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    rows = []
    for g in root.iter(f"{SVG}g"):
        classes = g.get("class", "").split()
        if "nbflow-row" not in classes:
            continue
        label = g.find(f"{SVG}text")
        assert label is not None
        kind = next(c for c in classes if c.startswith("nbflow-row-")).removeprefix("nbflow-row-")
        bars = [r for r in g.iter(f"{SVG}rect") if "nbflow-bar" in r.get("class", "")]
        ticks = [t for t in g.iter(f"{SVG}line") if t.get("class") == "nbflow-tick"]
        tip = label.find(f"{SVG}title")
        text = (label.text if tip is None else tip.tail) or ""
        rows.append(Drawn(text, kind, bars, ticks, g))
    return root, rows


def title(element: ET.Element) -> str:
    found = element.find(f"{SVG}title")
    return "" if found is None else found.text or ""


def marks(row: Drawn, kind: str) -> list[ET.Element]:
    return [e for e in row.element.iter() if e.get("class") == f"nbflow-{kind}-mark"]


@pytest.fixture
def timelines() -> Iterator[Callable[..., Timeline]]:
    """Make timelines; every one is closed after the test."""
    made: list[Timeline] = []

    def make(workflow_id: str, **options: Any) -> Timeline:
        made.append(Timeline(workflow_id, **options))
        return made[-1]

    yield make
    for timeline in made:
        timeline.close()


# -- workflows --------------------------------------------------------------------------------


@nbflow.step(name="tests.timeline.nap")
def nap(seconds: float) -> float:
    threading.Event().wait(seconds)
    return seconds


@nbflow.step(name="tests.timeline.item")
def item(i: int) -> int:
    nbflow.write_stream("rows", i)
    return i


@nbflow.workflow(name="tests.timeline.plain")
def plain() -> None:
    nap(0.05)
    nap(0.1)
    for i in range(4):
        nbflow.write_stream("rows", i)


_tries: dict[str, int] = {}


@nbflow.step(name="tests.timeline.flaky", retries=2, interval=0.01)
def flaky(key: str) -> str:
    _tries[key] = _tries.get(key, 0) + 1
    if _tries[key] == 1:
        raise ConnectionError("the first attempt fails")
    return key


@nbflow.step(name="tests.timeline.broken")
def broken() -> None:
    raise ValueError("broken <input> & more")


@nbflow.workflow(name="tests.timeline.failing")
def failing(key: str) -> None:
    flaky(key)
    broken()


@nbflow.step(name=NAME)
def odd() -> None:
    pass


@nbflow.workflow(name="tests.timeline.child")
def child(n: int) -> int:
    odd()
    return sum(nbflow.map(item, range(n)))


@nbflow.workflow(name="tests.timeline.mapping")
def mapping(n: int, children: int = 0) -> int:
    total = sum(nbflow.map(item, range(n), concurrency=4))
    for i in range(children):
        total += child(i + 1)
    return total


GATES: dict[str, Gate] = {}  # a gated workflow's gate, by the key it is given


@nbflow.workflow(name="tests.timeline.gated")
def gated(key: str) -> None:
    nap(0.01)
    nbflow.run_step(GATES[key].wait)
    nap(0.01)


def start_gated(g: Gate) -> nbflow.WorkflowHandle:
    """Start ``gated`` at the gate ``g``, once it waits there."""
    key = str(id(g))
    GATES[key] = g
    handle = nbflow.start(gated, key)
    g.reached()
    return handle


# -- the drawing ------------------------------------------------------------------------------


def test_a_bar_per_step_where_its_times_put_it_and_a_tick_per_write(
    rt: nbflow.Runtime, timelines: Callable[..., Timeline]
) -> None:
    handle = nbflow.start(plain)
    handle.result()
    timeline = timelines(handle.workflow_id)
    root, rows = parse(timeline.svg)
    data = timeline.data()
    assert timeline.final and not root.findall(f".//{SVG}line[@class='nbflow-now']")
    scale = (WIDTH - LABELS - RIGHT) / (data.end - data.start)
    naps = [r for r in rows if r.label == "tests.timeline.nap"]
    assert len(naps) == 2
    for row, step in zip(naps, data.root.steps, strict=True):
        (bar,) = row.bars
        x, width = float(bar.get("x", "")), float(bar.get("width", ""))
        assert x == pytest.approx(LABELS + (step.started_at - data.start) * scale, abs=0.01)
        assert width == pytest.approx((step.ended_at - step.started_at) * scale, abs=0.01)
        assert "attempts: 1" in title(bar)
    assert float(naps[1].bars[0].get("width", "")) > float(naps[0].bars[0].get("width", ""))
    (workflow,) = [r for r in rows if r.kind == "workflow"]
    assert workflow.label == "tests.timeline.plain" and "nbflow-success" in workflow.bars[0].get(
        "class", ""
    )
    assert float(workflow.bars[0].get("x", "")) == LABELS  # the axis starts at its creation
    (stream,) = [r for r in rows if r.kind == "stream"]
    assert stream.label == "✎ rows (4)" and len(stream.ticks) == 4
    writes = sorted(t.created_at for t in data.root.ticks)
    xs = sorted(float(t.get("x1", "")) for t in stream.ticks)
    assert xs == pytest.approx([LABELS + (w - data.start) * scale for w in writes], abs=0.01)


def test_retries_and_errors_are_marked(
    rt: nbflow.Runtime, timelines: Callable[..., Timeline]
) -> None:
    handle = nbflow.start(failing, "marks")
    with pytest.raises(ValueError, match="broken"):
        handle.result()
    _, rows = parse(timelines(handle.workflow_id).svg)
    by_label = {r.label: r for r in rows}
    retried = by_label["tests.timeline.flaky"]
    assert "nbflow-retry" in retried.bars[0].get("class", "") and len(marks(retried, "retry")) == 1
    assert "attempts: 2" in title(retried.bars[0]) and not marks(retried, "error")
    failed = by_label["tests.timeline.broken"]
    assert "nbflow-error" in failed.bars[0].get("class", "") and len(marks(failed, "error")) == 1
    assert "ValueError: broken <input> & more" in title(failed.bars[0])
    workflow = by_label["tests.timeline.failing"]
    assert "nbflow-error" in workflow.bars[0].get("class", "") and marks(workflow, "error")
    assert "broken <input>" in title(workflow.bars[0])
    assert not marks(by_label["tests.timeline.failing"], "retry")


def test_children_and_map_items_are_rows_and_names_are_escaped(
    rt: nbflow.Runtime, timelines: Callable[..., Timeline]
) -> None:
    handle = nbflow.start(mapping, 3, children=2)
    handle.result()
    svg = timelines(handle.workflow_id).svg
    assert "<script" not in svg and "href" not in svg  # self-contained
    assert "&lt;odd &amp; &quot;quoted&quot;&gt;" in svg
    _, rows = parse(svg)
    items = [r for r in rows if r.label == "tests.timeline.item"]
    assert len(items) == 3 + 1 + 2  # the map's items, then each child's map
    children = [r for r in rows if r.kind == "workflow" and r.label.startswith("↳")]
    assert [r.label for r in children] == ["↳ tests.timeline.child"] * 2
    odd_rows = [r for r in rows if NAME in r.label or NAME in title(r.element.find(f"{SVG}text"))]
    assert len(odd_rows) == 2  # the step of each child, its name whole in its label's tooltip
    assert all(title(r.bars[0]).startswith(NAME) for r in odd_rows)
    first_child = rows.index(children[0])
    assert float(rows[first_child + 1].element.find(f"{SVG}text").get("x", "")) > float(
        children[0].element.find(f"{SVG}text").get("x", "")
    )  # its rows indented under it


def test_a_large_map_is_packed_into_lanes(
    rt: nbflow.Runtime, timelines: Callable[..., Timeline]
) -> None:
    handle = nbflow.start(mapping, 1000)
    handle.result()
    svg = timelines(handle.workflow_id).svg
    _, rows = parse(svg)
    lanes = [r for r in rows if r.kind == "lane"]
    assert lanes[0].label == "tests.timeline.item (1,000)"
    assert 1 <= len(lanes) <= MAX_LANES and all(r.label == "" for r in lanes[1:])
    assert len(rows) < STEP_ROWS  # not a row per item
    drawn = sum(len(r.bars) for r in lanes)
    counted = 0
    for row in lanes:
        for bar in row.bars:
            text = title(bar)
            counted += int(text.split()[0].replace(",", "")) if "drawn as one" in text else 1
    assert drawn < 1000 and counted == 1000  # bars closer than a pixel drawn as one, counted
    (stream,) = [r for r in rows if r.label.startswith("✎ rows")]
    assert stream.label == "✎ rows (1,000)"


def test_a_running_workflow_is_drawn_live_then_static(
    rt: nbflow.Runtime, gate: Callable[[], Gate], timelines: Callable[..., Timeline]
) -> None:
    g = gate()
    handle = start_gated(g)
    timeline = timelines(handle.workflow_id, rate=20.0)
    drawn: list[str] = []
    timeline.on_update(drawn.append)
    root, rows = parse(timeline.svg)
    assert not timeline.final
    assert root.findall(f".//{SVG}line[@class='nbflow-now']")  # "now": it still runs
    assert "nbflow-running" in rows[0].bars[0].get("class", "")
    timeline.start()
    threads = [t for t in nbflow_threads() if t.name == f"nbflow-timeline-{handle.workflow_id[:8]}"]
    assert len(threads) == 1 and threads[0].daemon
    wait_until(lambda: len(drawn) >= 2)  # redrawn while it runs ("so far" grows)
    g.release.set()
    handle.result()
    assert timeline.wait(10)
    root, rows = parse(timeline.svg)
    assert timeline.final and drawn[-1] == timeline.svg
    assert not root.findall(f".//{SVG}line[@class='nbflow-now']")
    assert "nbflow-success" in rows[0].bars[0].get("class", "")
    assert len([r for r in rows if r.label == "tests.timeline.nap"]) == 2
    wait_until(lambda: not threads[0].is_alive())
    assert timeline.updates == len(drawn)


def test_an_interrupted_workflow_is_drawn_static_up_to_its_last_change(
    db_path: Path, timelines: Callable[..., Timeline]
) -> None:
    g = Gate()
    runtime = nbflow.configure(db_path)
    handle = start_gated(g)
    interrupt(runtime, g)  # closed under it, as a crash: it stays PENDING
    rt = nbflow.configure(db_path)
    assert rt.status(handle.workflow_id) == nbflow.Status.PENDING
    timeline = timelines(handle.workflow_id)
    root, rows = parse(timeline.svg)
    assert timeline.final and not root.findall(f".//{SVG}line[@class='nbflow-now']")
    assert "nbflow-pending" in rows[0].bars[0].get("class", "")
    assert "interrupted" in title(root)
    timeline.start()
    assert timeline.closed and not any(
        t.name.startswith("nbflow-timeline") for t in nbflow_threads()
    )


def test_close_stops_the_reader_of_a_running_workflow(
    rt: nbflow.Runtime, gate: Callable[[], Gate], timelines: Callable[..., Timeline]
) -> None:
    g = gate()
    handle = start_gated(g)
    timeline = timelines(handle.workflow_id, rate=50.0)
    timeline.start()
    name = f"nbflow-timeline-{handle.workflow_id[:8]}"
    assert any(t.name == name for t in nbflow_threads())
    timeline.close()
    assert timeline.closed and not any(t.name == name for t in nbflow_threads())
    g.release.set()
    handle.result()


def test_a_finished_workflow_needs_no_thread_and_html_is_the_svg(
    rt: nbflow.Runtime, timelines: Callable[..., Timeline]
) -> None:
    handle = nbflow.start(plain)
    handle.result()
    timeline = timelines(handle.workflow_id)
    html = timeline._repr_html_()
    assert html.startswith('<div class="nbflow-timeline-view"') and timeline.svg in html
    timeline.start()
    assert timeline.closed and not any(
        t.name.startswith("nbflow-timeline") for t in nbflow_threads()
    )
    assert repr(timeline).startswith("nbflow timeline · tests.timeline.plain")
    with pytest.raises(nbflow.WorkflowNotFoundError):
        Timeline("no-such-workflow")


def test_the_live_view_s_timeline_toggle(rt: nbflow.Runtime, gate: Callable[[], Gate]) -> None:
    g = gate()
    handle = start_gated(g)
    view = LiveView(handle.workflow_id, widgets=True)
    try:
        tab = view.renderer.timeline
        assert tab is not None and tab.chart.layout.display == "none" and not tab.chart.value
        tab.button.value = True  # what a click does
        assert tab.chart.layout.display == "" and "<svg" in tab.chart.value
        assert tab.timeline is not None and not tab.timeline.closed
        tab.button.value = False  # off: its reader stops
        assert tab.timeline is None and tab.chart.layout.display == "none"
        assert not any(t.name.startswith("nbflow-timeline") for t in nbflow_threads())
        tab.button.value = True
        view.start()
        g.release.set()
        handle.result()
        assert view.wait(10)
        assert tab.timeline is None  # the view's end stopped it, with the last drawing
        assert "nbflow-success" in tab.chart.value
    finally:
        view.close()
