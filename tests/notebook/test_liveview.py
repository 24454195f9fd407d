"""LiveView and launch: widgets driven by real streams, the text/HTML fallback, the throttle."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import nbflow
from nbflow import Status
from nbflow.notebook._launch import LaunchedHandle, launch
from nbflow.notebook._render import HandleRenderer, Snapshot, header_html
from nbflow.notebook._rows import failure
from nbflow.notebook._state import Progress, RateMeter, Throttle, ViewState
from nbflow.notebook._view import LiveView, widget_frontend
from nbflow.text._format import format_interval, format_rate, progress_label, text_bar
from tests.support.helpers import Gate, interrupt, wait_until


def gated_step(g: Gate, name: str) -> Callable[[], None]:
    """A step that waits at the gate."""

    @nbflow.step(name=name)
    def wait() -> None:
        g.wait()

    return wait


@pytest.fixture
def views() -> Iterator[Callable[..., LiveView]]:
    """Make widget views on the default runtime; every view is closed after the test."""
    made: list[LiveView] = []

    def make(workflow_id: str, keys: Any = None, **options: Any) -> LiveView:
        options.setdefault("widgets", True)
        made.append(LiveView(workflow_id, keys, **options))
        return made[-1]

    yield make
    for view in made:
        view.close()


@pytest.fixture
def shell() -> InteractiveShell:
    """A real IPython shell (no kernel, so no widget frontend)."""
    return InteractiveShell.instance()


def finished(view: LiveView) -> LiveView:
    """Start the view's reader and wait until it has shown everything."""
    view.start()
    assert view.wait(10), "the view never finished"
    return view


@nbflow.workflow(name="tests.liveview.counting")
def counting(n: int, rows: int = 0) -> int:
    for i in range(n):
        nbflow.progress(i + 1, n)
    for i in range(rows):
        nbflow.write_stream("rows", f"row {i}")
    return n


@nbflow.workflow(name="tests.liveview.failing")
def failing() -> None:
    nbflow.progress(2, 5, message="halfway")
    raise ValueError("boom")


# -- widgets from real streams -----------------------------------------------------------------


def test_success_shows_the_bar_the_header_and_the_output(
    rt: nbflow.Runtime, views: Callable[..., LiveView]
) -> None:
    handle = nbflow.start(counting, 60, 3)
    view = finished(views(handle.workflow_id))
    w = view.renderer
    assert (w.bar.value, w.bar.max, w.bar.bar_style) == (60, 60, "success")
    assert w.label.value.startswith("60/60 100% ")
    assert "it/s" in w.label.value and "ETA" not in w.label.value
    assert "tests.liveview.counting" in w.header.value and "succeeded" in w.header.value
    assert f">{handle.workflow_id}</code>" in w.header.value  # the whole id
    assert w.output.outputs[0]["text"] == "row 0\nrow 1\nrow 2\n"  # one key: no prefix
    assert w.error.value == ""
    assert w.cancel_button.layout.display == "none"  # gone at the end, not merely disabled
    assert w.show_all.layout.display == "none"  # nothing hidden: no toggle
    assert view.status == "SUCCESS" and view.frame.final and view.frame.word == "succeeded"
    bundle = view.widget._repr_mimebundle_()  # what frontends without widgets show
    assert bundle["text/plain"].startswith("nbflow view · tests.liveview.counting · ")
    assert 'class="nbflow-liveview"' in bundle["text/html"] and "60/60 100%" in bundle["text/html"]


def test_error_shows_danger_and_the_error(
    rt: nbflow.Runtime, views: Callable[..., LiveView]
) -> None:
    handle = nbflow.start(failing)
    view = finished(views(handle.workflow_id))
    w = view.renderer
    assert (w.bar.value, w.bar.max, w.bar.bar_style) == (2, 5, "danger")
    assert w.label.value.startswith("2/5 40% ") and w.label.value.endswith("· halfway")
    assert "ValueError: boom" in w.error.value
    assert "failed" in w.header.value


def test_cancel_button_cancels_a_running_workflow(
    rt: nbflow.Runtime, views: Callable[..., LiveView], gate: Callable[[], Gate]
) -> None:
    g = gate()
    blocked = gated_step(g, "tests.liveview.blocked")

    @nbflow.workflow(name="tests.liveview.cancellable")
    def cancellable() -> None:
        nbflow.progress(1, 4)
        blocked()
        nbflow.progress(2, 4)

    handle = nbflow.start(cancellable)
    g.reached()
    view = views(handle.workflow_id)
    view.start()
    w = view.renderer
    wait_until(lambda: w.bar.value == 1)
    assert w.bar.bar_style == "" and not w.cancel_button.disabled
    assert "running" in w.header.value and "ETA" in w.label.value
    w.cancel_button.click()
    assert view.wait(10)
    assert handle.status() == Status.CANCELLED
    assert (w.bar.value, w.bar.bar_style) == (1, "warning")
    assert "cancelled" in w.header.value and w.cancel_button.layout.display == "none"
    g.release.set()
    with pytest.raises(nbflow.WorkflowCancelledError):
        handle.result(timeout=10)


def test_a_finished_workflow_replays_from_offset_zero(
    rt: nbflow.Runtime, views: Callable[..., LiveView]
) -> None:
    handle = nbflow.start(counting, 10, 30)
    handle.result(timeout=10)
    first = finished(views(handle.workflow_id, max_items=100))
    assert first.renderer.output.outputs[0]["text"] == "".join(f"row {i}\n" for i in range(30))
    assert first.renderer.bar.value == 10
    # A finished view reads the same every time: elapsed and rate come from the record.
    again = finished(views(handle.workflow_id, max_items=100))
    assert again.frame == first.frame


@nbflow.workflow(name="tests.liveview.halting")
def halting(gate: str) -> int:
    nbflow.progress(1, 2)
    nbflow.run_step(wait_until, Path(gate).exists, 30)
    nbflow.progress(2, 2)
    return 2


def test_a_view_shows_the_end_only_after_the_last_items(rt: nbflow.Runtime, tmp_path: Path) -> None:
    """A reader that learned a workflow had ended before it read its last items showed
    "succeeded" with the bar short of its end (a browser caught a green bar at 39/40): the end is
    shown once every stream is drained. Here the reader reads 1 of 2, the workflow then ends, the
    reader looks at the status: the view must not read "succeeded" at 1 of 2."""
    import threading

    from nbflow.notebook._follow import Follower

    gate = tmp_path / "go"
    handle = nbflow.start(halting, str(gate))
    wait_until(lambda: nbflow.list_streams(handle.workflow_id), timeout=10)  # progress 1 is in
    state, lock = ViewState(handle.workflow_id), threading.Lock()
    state.add_key("progress")
    frames: list[tuple[str, float, float]] = []

    def apply(force: bool = False) -> None:
        with lock:
            frame = state.frame(0.0)
        frames.append((frame.word, frame.bar_value, frame.bar_max))

    follower = Follower(
        rt, handle.workflow_id, state, lock, apply, threading.Event(), threading.Event(),
        lambda: None, auto_keys=False,
    )  # fmt: skip
    follower.load()
    follower._read("progress", 0.5, 0.5)  # reads progress 1 of 2, then times out
    gate.touch()
    handle.result(timeout=10)
    follower._follow_status(True)  # learns the end before reading progress 2 of 2
    apply()
    follower.loop()
    apply()
    ended = [(value, maximum) for word, value, maximum in frames if word == "succeeded"]
    assert ended and set(ended) == {(2, 2)}, frames  # never "succeeded" short of 2 of 2


def test_a_view_opened_on_a_running_workflow(
    rt: nbflow.Runtime, views: Callable[..., LiveView], gate: Callable[[], Gate]
) -> None:
    g = gate()
    blocked = gated_step(g, "tests.liveview.midway")

    @nbflow.workflow(name="tests.liveview.running")
    def running() -> None:
        for i in range(3):
            nbflow.progress(i + 1, 10)
            nbflow.write_stream("log", f"before {i}")
        blocked()
        for i in range(3, 10):
            nbflow.progress(i + 1, 10)
        nbflow.write_stream("log", "after")

    handle = nbflow.start(running)
    g.reached()
    view = views(handle.workflow_id)
    view.start()
    w = view.renderer
    before = "before 0\nbefore 1\nbefore 2\n"
    wait_until(lambda: w.bar.value == 3 and w.output.outputs[0]["text"] == before)
    assert w.label.value.startswith("3/10 30%")
    assert view.status == "PENDING" and not view.frame.final
    g.release.set()
    assert view.wait(10)
    assert (w.bar.value, w.bar.bar_style) == (10, "success")
    assert w.output.outputs[0]["text"].endswith("before 2\nafter\n")


def test_show_all_and_the_last_items(rt: nbflow.Runtime, views: Callable[..., LiveView]) -> None:
    handle = nbflow.start(counting, 1, 50)
    view = finished(views(handle.workflow_id, ["rows"], max_items=5))
    w = view.renderer
    last = "".join(f"row {i}\n" for i in range(45, 50))
    assert w.output.outputs[0]["text"] == "… 45 earlier items (Show all shows all 50)\n" + last
    assert w.bar.layout.display == "none"  # progress not watched: no bar
    updates = view.updates
    w.show_all.value = True
    assert w.output.outputs[0]["text"] == "".join(f"row {i}\n" for i in range(50))
    assert w.show_all.description == "Show last items"
    assert view.updates == updates + 1
    w.show_all.value = False
    assert w.output.outputs[0]["text"].endswith(last) and w.show_all.description == "Show all"


def test_every_stream_with_key_prefixes_and_streams_created_later(
    rt: nbflow.Runtime, views: Callable[..., LiveView], gate: Callable[[], Gate]
) -> None:
    g = gate()
    blocked = gated_step(g, "tests.liveview.later")

    @nbflow.workflow(name="tests.liveview.keys")
    def keys() -> None:
        nbflow.progress(1, 2)
        nbflow.write_stream("a", "alpha")
        nbflow.write_stream("b", {"n": 1})
        blocked()
        nbflow.write_stream("late", "omega")
        nbflow.progress(2, 2)

    handle = nbflow.start(keys)
    g.reached()
    view = views(handle.workflow_id)  # keys=None: every stream, found while it runs
    view.start()
    w = view.renderer
    wait_until(lambda: w.output.outputs and "{'n': 1}" in w.output.outputs[0]["text"])
    assert w.output.outputs[0]["text"] == "[a] alpha\n[b] {'n': 1}\n"
    g.release.set()
    assert view.wait(10)
    assert w.output.outputs[0]["text"] == "[a] alpha\n[b] {'n': 1}\n[late] omega\n"
    assert (w.bar.value, w.bar.max, w.bar.bar_style) == (2, 2, "success")


def test_close_stops_the_reader_of_a_running_workflow(
    rt: nbflow.Runtime, views: Callable[..., LiveView], gate: Callable[[], Gate]
) -> None:
    g = gate()
    blocked = gated_step(g, "tests.liveview.closing")

    @nbflow.workflow(name="tests.liveview.closed")
    def closed() -> None:
        blocked()

    handle = nbflow.start(closed)
    g.reached()
    view = views(handle.workflow_id)
    view.start()
    assert not view.closed
    view.close()
    assert view.closed and view.wait(
        0
    )  # the thread ended; the autouse fixture checks no thread leaked
    assert handle.status() == Status.PENDING
    g.release.set()
    handle.result(timeout=10)


def test_the_view_ends_when_its_runtime_closes(
    rt: nbflow.Runtime, views: Callable[..., LiveView], gate: Callable[[], Gate]
) -> None:
    g = gate()
    blocked = gated_step(g, "tests.liveview.crashing")

    @nbflow.workflow(name="tests.liveview.interrupted")
    def interrupted() -> None:
        nbflow.progress(1, 2)
        blocked()

    handle = nbflow.start(interrupted)
    g.reached()
    view = views(handle.workflow_id)
    view.start()
    wait_until(lambda: view.renderer.bar.value == 1)
    interrupt(rt, g)  # as a crash would: the workflow stays PENDING
    assert view.wait(10)
    assert view.status == "PENDING" and view.renderer.error.value == ""


def test_an_unknown_workflow_is_refused(rt: nbflow.Runtime) -> None:
    with pytest.raises(nbflow.WorkflowNotFoundError):
        LiveView("no-such-workflow", widgets=True)


# -- the throttle ----------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [20.0, 5.0])
def test_a_fast_stream_updates_the_frontend_at_most_rate_times_a_second(
    rt: nbflow.Runtime, views: Callable[..., LiveView], gate: Callable[[], Gate], rate: float
) -> None:
    g = gate()
    ready = gated_step(g, "tests.liveview.ready")

    @nbflow.workflow(name="tests.liveview.flood")
    def flood(n: int) -> int:
        ready()
        for i in range(n):
            nbflow.progress(i + 1, n)
        return n

    n = 50_000
    handle = nbflow.start(flood, n)
    g.reached()
    view = views(handle.workflow_id, rate=rate)
    changes: list[float] = []
    view.renderer.bar.observe(lambda change: changes.append(change["new"]), names="value")
    view.start()  # the view reads the stream live, while the workflow writes it as fast as it can
    wait_until(lambda: view.updates >= 1)
    g.release.set()
    assert view.wait(30) and handle.result(timeout=30) == n
    assert view.renderer.bar.value == n and view.renderer.bar.bar_style == "success"
    limit = rate * view.update_span + 2  # the rate limit, with the forced final update
    assert 1 <= view.updates <= limit
    assert 1 <= len(changes) <= view.updates and changes == sorted(changes)


# -- without a widget frontend ----------------------------------------------------------------


class RecordingHandle:
    """A display handle that keeps what it was updated with."""

    def __init__(self) -> None:
        self.shown: list[Snapshot] = []

    def update(self, obj: Snapshot) -> None:
        self.shown.append(obj)


def test_no_widget_frontend_outside_a_kernel(shell: InteractiveShell) -> None:
    assert not widget_frontend()  # a plain IPython shell has no kernel


def test_snapshot_text_and_html() -> None:
    state = ViewState("0123456789abcdef", "pkg.etl")
    state.add_key("progress")
    state.add_key("rows")
    state.created_at, state.ended_at, state.status = 100.0, 103.5, "ERROR"
    state.error = "ValueError: <bad>"
    state.feed("progress", {"done": 3, "total": 4, "message": None})
    state.feed("rows", "one")
    snap = Snapshot(state.frame(200.0))
    text = repr(snap).splitlines()
    assert text[0] == "nbflow view · pkg.etl · 0123456789abcdef · failed · 0:03"
    assert text[1].startswith(text_bar(0.75)) and "3/4 75%" in text[1]
    assert text[2:] == ["ValueError: <bad>", "one"]
    page = snap._repr_html_()
    assert "width:75.0%" in page and "ValueError: &lt;bad&gt;" in page and "failed" in page


def test_handle_renderer_updates_every_handle(
    rt: nbflow.Runtime, views: Callable[..., LiveView]
) -> None:
    handle = nbflow.start(counting, 5, 2)
    view = views(handle.workflow_id, widgets=False)
    assert isinstance(view.renderer, HandleRenderer) and view.widget is None
    assert not view.renderer.live  # no kernel: an update prints anew, so only the final one
    recorders = [RecordingHandle(), RecordingHandle()]
    view.renderer.handles += recorders
    finished(view)
    for recorder in recorders:
        assert len(recorder.shown) == 1
        last = repr(recorder.shown[-1])
        assert "succeeded" in last and "5/5 100%" in last and last.endswith("row 0\nrow 1")


def test_a_live_handle_renderer_takes_every_frame() -> None:
    state = ViewState("id", "wf")
    state.add_key("progress")
    recorder = RecordingHandle()
    renderer = HandleRenderer(state.frame(0.0), [recorder])
    for done in (1, 2):
        state.feed("progress", {"done": done, "total": 2, "message": None})
        renderer.apply(state.frame(0.0))
    assert [s.frame.bar_value for s in recorder.shown] == [1.0, 2.0]


def test_fallback_display_handle_in_ipython(rt: nbflow.Runtime, shell: InteractiveShell) -> None:
    handle = nbflow.start(counting, 4)
    with capture_output() as captured:
        view = LiveView(handle.workflow_id)  # no kernel: a display handle
        try:
            view.display()
            assert view.wait(10)
        finally:
            view.close()
    first, *updates = captured.outputs
    assert "text/html" in first.data and "nbflow-liveview" in first.data["text/html"]
    assert updates and "succeeded" in updates[-1].data["text/plain"]
    assert "4/4 100%" in updates[-1].data["text/plain"]


# -- launch ------------------------------------------------------------------------------------


def test_launch_displays_first_then_starts(rt: nbflow.Runtime, shell: InteractiveShell) -> None:
    with capture_output() as captured:
        handle = launch(counting, 3, rows=2, watch=None)
        try:
            assert isinstance(handle, LaunchedHandle)
            assert handle.result(timeout=10) == 3
            assert handle.view.wait(10)
        finally:
            handle.view.close()
    first = captured.outputs[0].data["text/plain"]
    assert "starting" in first and "tests.liveview.counting" in first  # shown before the start
    final = captured.outputs[-1].data["text/plain"]
    assert "succeeded" in final and final.endswith("row 0\nrow 1")  # one output key: no prefix
    assert handle.view.frame.workflow_id == handle.workflow_id


def test_launch_of_something_else_shows_why_and_raises(
    rt: nbflow.Runtime, shell: InteractiveShell
) -> None:
    def plain() -> None: ...

    with capture_output() as captured, pytest.raises(TypeError, match=r"nbflow\.workflow"):
        launch(plain)
    shown = captured.outputs[-1].data["text/plain"]
    assert "not started" in shown and "TypeError" in shown


# -- the pure state ------------------------------------------------------------------------------


def test_formats_like_tqdm() -> None:
    assert format_interval(3.7) == "0:03" and format_interval(3723) == "1:02:03"
    assert format_rate(12.34) == "12.3 it/s" and format_rate(0.4) == "2.50 s/it"
    assert format_rate(50_000) == "50,000 it/s" and format_rate(None) == ""
    assert progress_label(23, 60, 12.3, 3.0) == "23/60 38% 12.3 it/s ETA 0:03"
    assert progress_label(7, None, None, None, "go") == "7 · go"


def test_rate_meter_starts_from_the_average_and_smooths() -> None:
    meter = RateMeter(smoothing=0.5)
    assert meter.update(100, now=110.0, started=100.0) == 10.0  # replayed: the average
    assert meter.update(100, now=111.0, started=100.0) == 10.0  # no new work: unchanged
    assert meter.update(130, now=112.0, started=100.0) == 12.5  # 15/s recently
    assert meter.update(5, now=113.0, started=100.0) == 5 / 13  # restarted: the average again


def test_throttle_and_progress_items() -> None:
    throttle = Throttle(20.0)
    assert throttle.ready(0.0)
    throttle.record(0.0)
    assert not throttle.ready(0.01) and throttle.remaining(0.01) == pytest.approx(0.04)
    assert throttle.ready(0.05)
    throttle.hold(1.0)  # an interval starts, no update counted
    assert not throttle.ready(1.01) and throttle.count == 1
    p = Progress()
    p.feed({"done": 2, "total": None, "message": "x"})
    p.feed(3)  # a bare number: done
    p.feed("?")  # another shape: only counted
    assert (p.done, p.total, p.message, p.items) == (3.0, None, None, 3)


def test_unknown_total_and_the_history_cap() -> None:
    state = ViewState("id", "wf", max_items=2, history=3)
    state.add_key("progress")
    state.add_key("out")
    state.feed("progress", {"done": 5, "total": None, "message": None})
    for i in range(5):
        state.feed("out", i)
    frame = state.frame(0.0)
    assert (frame.bar_value, frame.bar_max, frame.bar_style) == (1.0, 1.0, "info")
    assert frame.lines == ("3", "4") and "3 earlier items" in frame.note
    assert "Show all shows the last 3 of 5" in frame.note  # only 3 of 5 are kept
    every = state.frame(0.0, show_all=True)
    assert every.lines == ("2", "3", "4") and "2 earlier items not kept" in every.note


def test_one_earlier_item_is_one_item() -> None:
    state = ViewState("id", "wf", max_items=2, history=10)
    state.add_key("out")
    for i in range(3):
        state.feed("out", i)
    note = state.frame(0.0).note
    assert note == "… 1 earlier item (Show all shows all 3)", note


def test_the_state_module_does_not_import_jupyter() -> None:
    source = Path(nbflow.notebook._state.__file__).read_text()
    imported = {
        (alias.name if isinstance(node, ast.Import) else node.module or "").split(".")[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert not imported & {"IPython", "ipywidgets", "ipykernel"}


def test_ids_are_shown_whole() -> None:
    """Ids are never cut to 8 characters; the HTML cuts a long one by CSS, its title whole."""
    uuid = "0931dfec-1111-4222-8333-444455556666"
    frame = ViewState(uuid, "wf").frame(0.0)
    assert frame.short_id == uuid and uuid in repr(Snapshot(frame))
    assert f'<code title="{uuid}" style="' in header_html(frame)
    assert f">{uuid}</code>" in header_html(frame)
    long = "nightly-" + "x" * 60
    page = header_html(ViewState(long, "wf").frame(0.0))
    assert f'<code title="{long}" style="' in page and "text-overflow:ellipsis" in page


def test_a_view_shows_an_enqueued_workflow_until_a_worker_runs_it(
    database: str, views: Callable[..., LiveView]
) -> None:
    queue = nbflow.Queue("tests-liveview-queue")
    with nbflow.configure(database, queues=[]):  # serves no queue: it stays ENQUEUED
        handle = queue.enqueue(counting, 3)
        view = views(handle.workflow_id)
        view.start()
        wait_until(lambda: view.status == "ENQUEUED")
        assert not view.frame.final
    with nbflow.configure(database):  # serves it: the workflow runs, the view follows
        again = views(handle.workflow_id)
        assert finished(again).status == "SUCCESS"


@nbflow.workflow(name="tests.liveview.with_events")
def with_events() -> int:
    nbflow.set_event("stage", "loading")
    nbflow.progress(1, 2)
    nbflow.set_event("stage", "done")
    nbflow.set_event("rows", 42)
    return 42


def test_a_view_shows_the_workflow_s_events(
    rt: nbflow.Runtime, views: Callable[..., LiveView]
) -> None:
    handle = nbflow.start(with_events)
    handle.result(timeout=10)
    view = finished(views(handle.workflow_id, ["progress"]))
    assert view.frame.events == "stage: done, rows: 42"
    assert "stage: done, rows: 42" in header_html(view.frame)


# -- in a real kernel (nbclient) -------------------------------------------------------------

SAVED_VIEW = [
    "import nbflow\n"
    "from nbflow.notebook import LiveView\n"
    "nbflow.configure('views.duckdb')\n"
    "@nbflow.step()\n"
    "def parse_batch(i):\n"
    "    if i == 3:\n"
    "        raise ValueError(f'could not parse batch {i}')\n"
    "    return i\n"
    "@nbflow.workflow()\n"
    "def pipeline(n):\n"
    "    for i in range(n):\n"
    "        print('batch', i)\n"
    "        nbflow.write_stream('stdout', f'batch {i}')\n"
    "        nbflow.progress(i + 1, n)\n"
    "        parse_batch(i)\n",
    "with nbflow.set_workflow_id('saved-ok'):\n"
    "    ok = nbflow.start(pipeline, 3)\n"
    "LiveView.follow(ok.workflow_id)",
    "with nbflow.set_workflow_id('saved-bad'):\n"
    "    bad = nbflow.start(pipeline, 5)\n"
    "view = LiveView.follow(bad.workflow_id)",
    "ok.result(timeout=30)\n"
    "view.wait(30)\n"
    "for v in list(nbflow.notebook._view._views):\n"
    "    v.wait(30)",
]


@pytest.mark.kernel
def test_a_saved_notebook_keeps_a_static_rendering_of_each_view(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a run, each view's output holds HTML and text of its final state, and no widget
    (a reopened notebook, nbconvert and GitHub show it without a kernel)."""
    import nbformat
    from nbclient import NotebookClient

    from tests.support.kernels import venv_kernel

    kernel = venv_kernel(tmp_path, monkeypatch)
    monkeypatch.delenv("NBFLOW_DATABASE", raising=False)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in SAVED_VIEW])
    client = NotebookClient(
        nb, kernel_name=kernel, timeout=60, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    for index, status, bar in ((1, "succeeded", "3/3 100%"), (2, "failed", "4/5 80%")):
        data, saved = [o["data"] for o in nb.cells[index].outputs if "data" in o]
        assert "application/vnd.jupyter.widget-view+json" not in data, data
        assert "nbflow-saved-done" in saved["text/html"]  # the saved state, emptied at the end
        text, page = data["text/plain"], data["text/html"]
        assert text.startswith("nbflow view · pipeline · saved-")
        assert f" · {status} · " in text.splitlines()[0] and bar in text and bar in page
        assert 'class="nbflow-liveview"' in page and "Cancel" not in page
        assert "batch 0" in text  # the stream stdout is always followed
    bad, _ = [o["data"]["text/plain"] for o in nb.cells[2].outputs if "data" in o]
    assert "failed in step `parse_batch`: ValueError: could not parse batch 3" in bad


# -- status words, resumes, failures (issue 13) ------------------------------------------------


def test_a_resumed_workflow_s_rate_and_elapsed_leave_out_the_gap() -> None:
    state = ViewState("wf-1", "wf")
    state.add_key("progress")
    state.status = "PENDING"
    state.restarted(100.0, 400.0)  # created at 100, resumed at 400: idle for 300 s
    state.feed("progress", {"done": 32, "total": 100, "message": None})  # replayed at once
    first = state.frame(401.0)
    assert first.label == "32/100 32%"  # no rate yet: not 32 items over 301 s, nor a burst
    state.feed("progress", {"done": 40, "total": 100, "message": None})
    later = state.frame(403.0)
    assert later.label == "40/100 40% 4.00 it/s ETA 0:15"  # 8 items in the 2 s since
    assert later.elapsed == "0:03 since resumed" and later.word == "running"
    state.status, state.ended_at = "SUCCESS", 410.0
    state.feed("progress", {"done": 100, "total": 100, "message": None})
    end = state.frame(500.0)
    assert end.elapsed == "0:10 since resumed" and end.word == "succeeded"
    assert "4.00 it/s" in end.label  # the rate measured after the resume, not 100 / 310 s
    fresh = ViewState("wf-2", "wf")
    fresh.restarted(100.0, 100.0)  # a first start writes both times the same
    assert fresh.restarted_at is None and fresh.frame(103.0).elapsed == "0:03"
    queued = ViewState("wf-3", "wf")
    queued.restarted(100.0, 160.0, queued=True)  # a worker took it a minute later
    assert queued.frame(163.0).elapsed == "0:03 since started"


def test_status_words_titles_and_no_empty_bar() -> None:
    state = ViewState("crunch-1a2b3c4d", "nbflow.background")
    state.add_key("progress")
    state.add_key("stdout")
    frame = state.frame(0.0)
    assert frame.title == "crunch" and frame.word == "running"
    assert not frame.show_bar and not frame.show_output  # nothing fed them yet
    state.running = False
    assert state.frame(0.0).word == "interrupted"
    state.feed("stdout", "hello")
    assert state.frame(0.0).show_output and not state.frame(0.0).show_bar
    unnamed = ViewState("0931dfec-1111-4222-8333-444455556666", "nbflow.background")
    assert unnamed.frame(0.0).title == "background cell"
    named = ViewState("big-job-1a2b3c4d", "nbflow.background").frame(0.0)
    assert named.title == "big-job"
    assert ViewState("x", "__main__.etl").frame(0.0).title == "etl"
    for status, word in (("ENQUEUED", "enqueued"), ("ERROR", "failed"), ("CANCELLED", "cancelled")):
        state.status = status
        assert state.frame(0.0).word == word


def test_a_failure_names_its_step_and_map_item() -> None:
    error = "ValueError: could not parse batch 5\nraised in step 'parse_batch'"
    assert failure(error) == "failed in step `parse_batch`: ValueError: could not parse batch 5"
    mapped = (
        "ValueError: bad\nraised in step 'check' (attempt 3 of 3)\n"
        "nbflow.map: item 1 (b) of 3 failed in step 'check'"
    )
    assert failure(mapped) == "failed in step `check` (item 1 (b) of 3): ValueError: bad"
    assert failure("KeyError: 'x'", "__main__.load") == "failed in step `load`: KeyError: 'x'"
    assert failure("RuntimeError: in the body") == "RuntimeError: in the body"
    assert failure("ValueError: two\nlines") == "ValueError: two\nlines"


@nbflow.step(name="tests.liveview.check")
def check(item: str) -> str:
    if item == "b":
        raise ValueError(f"bad item {item}")
    return item


@nbflow.workflow(name="tests.liveview.mapped")
def mapped() -> list[str]:
    print("starting the map")
    nbflow.write_stream("stdout", "a line on stdout")
    return nbflow.map(check, ["a", "b", "c"], concurrency=1)


def test_a_view_follows_stdout_and_names_the_failed_map_item(
    rt: nbflow.Runtime, views: Callable[..., LiveView]
) -> None:
    handle = nbflow.start(mapped)
    with pytest.raises(ValueError):
        handle.result(timeout=10)
    view = finished(views(handle.workflow_id, ["progress"]))
    frame = view.frame
    assert "a line on stdout" in frame.lines  # stdout is followed though not asked for
    assert frame.error.startswith("failed in step `tests.liveview.check` (item 2 of 3): ")
    assert frame.error.endswith("ValueError: bad item b")
    assert frame.word == "failed"


@pytest.mark.contract
def test_an_interrupted_workflow_reads_interrupted_then_running_once_resumed(
    database: str, views: Callable[..., LiveView], gate: Callable[[], Gate]
) -> None:
    g, later = gate(), gate()
    blocked = gated_step(g, "tests.liveview.blocked_once")
    after = gated_step(later, "tests.liveview.after_the_resume")

    @nbflow.workflow(name="tests.liveview.resumable")
    def resumable() -> int:
        nbflow.progress(1, 3)
        blocked()
        nbflow.progress(2, 3)
        after()
        nbflow.progress(3, 3)
        return 3

    rt = nbflow.configure(database)
    with nbflow.set_workflow_id("resumable-1"):
        nbflow.start(resumable)
    g.reached()
    interrupt(rt, g)  # the process "stops": the workflow stays PENDING, nothing runs it
    try:
        again = nbflow.configure(database)
        view = views("resumable-1", ["progress"], runtime=again)
        view.start()
        wait_until(lambda: view.frame.word == "interrupted" and view.frame.show_bar)
        assert "ETA" not in view.frame.label and not view.frame.final
        assert "interrupted" in header_html(view.frame)
        handle = again.resume("resumable-1")
        later.reached()
        wait_until(lambda: view.frame.word == "running" and view.frame.bar_value == 2)
        assert view.frame.elapsed.endswith(" since resumed")  # not since it was created
        later.release.set()
        assert handle.result(timeout=10) == 3
        assert view.wait(10)
        assert view.frame.word == "succeeded" and view.frame.elapsed.endswith(" since resumed")
    finally:
        nbflow._api._close_default()


def test_a_newer_view_of_a_workflow_turns_the_older_one_static(
    rt: nbflow.Runtime, gate: Callable[[], Gate]
) -> None:
    g = gate()
    blocked = gated_step(g, "tests.liveview.blocked_twice")

    @nbflow.workflow(name="tests.liveview.watched_twice")
    def watched() -> None:
        nbflow.progress(1, 2)
        blocked()

    handle = nbflow.start(watched)
    g.reached()
    old = LiveView(handle.workflow_id, widgets=False)
    new = LiveView(handle.workflow_id, widgets=False)
    recorder = RecordingHandle()
    old.renderer.handles.append(recorder)
    try:
        old.display()
        wait_until(lambda: old.frame.show_bar)
        new.display()  # in the same kernel: the older view stops, static, and says so
        assert old.closed and not new.closed
        assert "continues below" in repr(recorder.shown[-1])
        assert "Cancel" not in recorder.shown[-1]._repr_html_()
    finally:
        g.release.set()
        old.close()
        new.close()


def test_a_newer_view_of_an_ended_workflow_leaves_the_older_one_to_finish(
    rt: nbflow.Runtime,
) -> None:
    """A view opened when the workflow has ended (a cell after ``handle.result()``) does not
    stop an older view still catching up: that one finishes by itself and shows the end, not a
    frozen "running" that "continues below"."""

    @nbflow.workflow(name="tests.liveview.ended_twice")
    def ended() -> int:
        nbflow.progress(2, 2)
        return 1

    handle = nbflow.start(ended)
    assert handle.result(timeout=10) == 1
    old = LiveView(handle.workflow_id, widgets=False)
    new = LiveView(handle.workflow_id, widgets=False)
    recorder = RecordingHandle()
    old.renderer.handles.append(recorder)
    try:
        old.display()
        new.display()  # at once: the older view has not read the end yet
        assert old.wait(10) and new.wait(10)
        assert old.frame.word == "succeeded" and new.frame.word == "succeeded"
        assert "continues below" not in repr(recorder.shown[-1])
    finally:
        old.close()
        new.close()


def test_a_workflow_running_in_another_live_executor_reads_running(
    pg_url: str, views: Callable[..., LiveView], gate: Callable[[], Gate]
) -> None:
    """On PostgreSQL a PENDING workflow that another open runtime runs is not "interrupted"."""
    g = gate()
    blocked = gated_step(g, "tests.liveview.blocked_elsewhere")

    @nbflow.workflow(name="tests.liveview.elsewhere")
    def elsewhere() -> None:
        nbflow.progress(1, 2)
        blocked()

    nbflow.configure(pg_url)
    try:
        handle = nbflow.start(elsewhere)
        g.reached()
        with nbflow.Runtime(pg_url) as other:  # another executor: it does not run the workflow
            view = views(handle.workflow_id, ["progress"], runtime=other)
            view.start()
            wait_until(lambda: view.frame.show_bar)
            assert other.execution(handle.workflow_id) is None
            assert view.frame.word == "running"
            g.release.set()
            assert view.wait(10) and view.frame.word == "succeeded"
    finally:
        g.release.set()
        nbflow._api._close_default()


def test_a_static_rendering_holds_every_kept_line_under_show_all() -> None:
    state = ViewState("wf-9", "wf", max_items=2)
    state.add_key("rows")
    for i in range(5):
        state.feed("rows", f"row {i}")
    state.status, state.complete = "SUCCESS", True
    frame = state.frame(0.0)
    page = Snapshot(frame)._repr_html_()
    assert frame.lines == ("row 3", "row 4") and frame.history == tuple(
        f"row {i}" for i in range(5)
    )
    assert "<details>" in page and "Show 3 earlier items</summary>" in page and "row 0" in page
    assert page.index("row 2") < page.index("</details>") < page.index("row 3")  # the last shown
    assert "<details>" not in Snapshot(ViewState("wf-10", "wf").frame(0.0))._repr_html_()
