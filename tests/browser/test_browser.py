"""Real-browser tests: the live view in JupyterLab, driven by Playwright in headless Chromium.

One JupyterLab server and one Chromium serve the tests of this module (:func:`tests.support.browser.serve`:
a temporary folder, a free port, a token, Debian's Chromium; every process stopped and checked gone
at the end). Each test opens its notebook in a new tab, runs cells with the notebook's own toolbar
button and reads the widgets' DOM; an in-page sampler records every change of a cell's progress bar
(``.widget-hprogress .progress-bar``: width, style) and output area every 10 ms.

What they check: the quick-start notebook's bar moves through intermediate values and ends green
while its output grows during the run; ``%nbflow watch`` on a finished workflow shows 100% at
once; the Cancel button cancels (amber bar, "cancelled"); a workflow writing 50,000 items a
second leaves the page responsive and the server never drops output ("IOPub message rate
exceeded"). Screenshots go to ``browser-artifacts/`` in pytest's temporary folder; with
``NBFLOW_UPDATE_SCREENSHOTS=1`` the README's example mid-run is also copied to
``docs/liveview.png``. Restarts, saved notebooks and Notebook 7 are in ``test_browser_restart.py``.

Without Chromium the tests are skipped, saying so.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator

import nbformat
import pytest

from tests.support.browser import (
    BAR_AT_LEAST,
    CELL_STATUS_IS,
    IOPUB_DROPPED,
    KERNELSPEC,
    MS,
    QUICKSTART,
    ROOT,
    SAMPLER,
    STOP_SAMPLER,
    Lab,
    bar_trace,
    before_full,
    brief,
    cell,
    errors_shown,
    fmt,
    open_notebook,
    outputs_text,
    reporting,
    run_all,
    run_cells,
    serve,
    shoot,
    status_is,
    wait_executed,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SUCCEEDED = "succeeded|SUCCESS"  # the view's word since issue 13, and before
CANCELLED = "cancelled"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """JupyterLab and Chromium for this module; both stopped (and checked gone) at the end."""
    with serve("lab", tmp_path_factory, request) as lab:
        yield lab


@pytest.fixture
def lab_io(lab: Lab, capsys: pytest.CaptureFixture[str]) -> Iterator[Lab]:
    """The lab for one test, its lines printed past pytest's capture, its kernels shut down."""
    with reporting(lab, capsys) as lab:
        yield lab


# -- the tests ---------------------------------------------------------------------------------


def quickstart_copy(lab: Lab) -> tuple[str, list[str], list[int]]:
    """``01-quickstart.ipynb`` as it is, minus its saved outputs and widget state (so that what
    the page shows comes from this run), with this run's kernelspec; its cells' sources and the
    indices of its code cells."""
    nb = nbformat.read(QUICKSTART, as_version=4)
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = KERNELSPEC
    nbformat.write(nb, lab.notebooks / QUICKSTART.name)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    return QUICKSTART.name, [c.source for c in nb.cells], code


def test_quickstart_progress_moves_while_the_workflow_runs(lab_io: Lab) -> None:
    lab = lab_io
    name, sources, code = quickstart_copy(lab)
    launch = next(i for i, s in enumerate(sources) if "launch(pipeline" in s)
    reader = next(i for i, s in enumerate(sources) if "read_stream(handle.workflow_id" in s)
    with open_notebook(lab, name, "quickstart") as page:
        page.evaluate(SAMPLER, [[launch, reader], 10])
        started = time.monotonic()
        run_all(lab, page, code)
        page.wait_for_function(BAR_AT_LEAST, arg=[launch, 20], timeout=60 * MS, polling=10)
        mid, mid_before, mid_after = shoot(lab, page, launch, "quickstart-mid.png")
        page.wait_for_function(CELL_STATUS_IS, arg=[launch, "success", SUCCEEDED], timeout=60 * MS)
        wait_executed(page, code)
        elapsed = time.monotonic() - started
        end, final, _ = shoot(lab, page, launch, "quickstart-end.png")
        record = page.evaluate(STOP_SAMPLER)
        summary = outputs_text(page, len(sources) - 1)
        errors = errors_shown(page)

    view, reading = record["samples"]
    widths = bar_trace(view)
    during = before_full(view)
    intermediate = sorted({s["width"] for s in during if s["width"] and 0 < s["width"] < 100})
    view_lines = [s["view"] for s in during if s["width"] is not None]
    read_lines = [s["stdout"] for s in reading if s["stdout"]]
    t_full = next(s["t"] for s in view if s["width"] == 100)
    lab.say(f"quickstart: cells ran in {elapsed:.1f} s; bar widths seen: {fmt(widths)}")
    lab.say(f"  intermediate values before 100% ({len(intermediate)}): {fmt(intermediate)}")
    lab.say(
        f"  live view's output lines while below 100%: {sorted(set(view_lines))}; "
        f"the reader cell's printed lines over time: {sorted(set(read_lines))}"
    )
    lab.say(f"  end: {brief(final)}")
    lab.say(f"  mid-run screenshot {mid} (bar {mid_before['width']}% -> {mid_after['width']}%)")
    lab.say(f"  end screenshot {end}")

    assert not errors, errors
    assert mid_after["width"] < 100, f"the mid-run screenshot may show the end: {mid_after}"
    assert len(intermediate) >= 3, f"fewer than 3 values between 0 and 100%: {widths}"
    assert widths[-1] == 100, widths
    assert "progress-bar-success" in final["classes"] and status_is(final, SUCCEEDED), final
    growing = sorted({n for n in view_lines if n})
    assert len(growing) >= 3 and growing[0] < 20, (
        f"the view's output did not grow while the bar moved (lines seen below 100%: {view_lines})"
    )
    assert view[-1]["view"] == 20, view[-1]
    partial = [s for s in reading if 0 < s["stdout"] < 20 and s["t"] < t_full]
    assert partial, f"the reader cell printed nothing before the bar reached 100%: {reading}"
    assert re.search(r"pipeline: (SUCCESS|succeeded), bar at 20/20", summary), summary


def readme_example() -> str:
    """The README's quick-start cell (the one that calls ``launch``), as written there."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return next(b for b in blocks if "launch(batch_scoring" in b).strip()


def test_cancel_button_and_the_readme_screenshot(lab_io: Lab) -> None:
    lab = lab_io
    write_notebook(
        lab,
        "readme-example.ipynb",
        [readme_example(), "assert handle.view.wait(30)\nprint('status:', handle.status())", ""],
    )
    with open_notebook(lab, "readme-example.ipynb", "cancel") as page:
        page.evaluate(SAMPLER, [[0], 10])
        run_cells(lab, page, 0)
        cell(page, 2).locator(".jp-InputPrompt").click()  # the cell under the view: not selected
        page.mouse.move(1, 1)  # nor hovered
        page.wait_for_function(BAR_AT_LEAST, arg=[0, 40], timeout=60 * MS, polling=10)
        mid, before, after = shoot(lab, page, 0, "liveview-mid.png")
        button = cell(page, 0).locator("button.widget-button", has_text="Cancel")
        clicked = time.monotonic()
        button.click()
        page.wait_for_function(CELL_STATUS_IS, arg=[0, "warning", CANCELLED], timeout=30 * MS)
        took = time.monotonic() - clicked
        run_cells(lab, page, 1)
        wait_executed(page, [1])
        status = outputs_text(page, 1)
        end, final, _ = shoot(lab, page, 0, "cancelled-end.png")
        # disabled, or hidden (since issue 13 the view hides it at the end)
        disabled = not button.count() or not button.is_visible() or button.is_disabled()
        record = page.evaluate(STOP_SAMPLER)
        errors = errors_shown(page)
    if os.environ.get("NBFLOW_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(mid, ROOT / "docs" / "liveview.png")
        lab.say(f"copied {mid} to docs/liveview.png")

    [view] = record["samples"]
    widths = bar_trace(view)
    statuses = [s["status"] for s in view]
    lab.say(f"cancel: bar widths seen: {fmt(widths)}")
    lab.say(f"  statuses: {list(dict.fromkeys(statuses))}; cancelled {took:.2f} s after the click")
    lab.say(
        f"  end: {brief(final)}; Cancel disabled or hidden: {disabled}; cell 2 printed {status.strip()!r}"
    )
    lab.say(f"  README screenshot {mid} (bar {before['width']}% -> {after['width']}%)")
    lab.say(f"  end screenshot {end}")

    assert not errors, errors
    assert 0 < before["width"] <= after["width"] < 100, (before, after)
    assert re.search(CANCELLED, status, re.I), status
    assert status_is(final, CANCELLED) and "progress-bar-warning" in final["classes"], final
    assert final["width"] < 100 and 100 not in widths, widths
    assert disabled


def test_watch_shows_a_finished_workflow_at_once(lab_io: Lab) -> None:
    lab = lab_io
    setup = """\
import time
import nbflow

nbflow.configure(".nbflow/watch.duckdb")


@nbflow.workflow(name="finished-earlier")
def count(n):
    for i in nbflow.track(range(n)):
        nbflow.write_stream("rows", f"row {i}")
        time.sleep(0.005)
    return n


with nbflow.set_workflow_id("finished-1"):
    print("result:", count(40), nbflow.get_workflow("finished-1").status())"""
    write_notebook(lab, "watch.ipynb", [setup, "%load_ext nbflow", "%nbflow watch finished-1"])
    with open_notebook(lab, "watch.ipynb", "watch") as page:
        run_cells(lab, page, 0, 2)
        wait_executed(page, [0, 1])
        first = outputs_text(page, 0)
        page.evaluate(SAMPLER, [[2], 10])
        started = time.monotonic()
        run_cells(lab, page, 2)
        page.wait_for_function(CELL_STATUS_IS, arg=[2, "success", SUCCEEDED], timeout=30 * MS)
        took = time.monotonic() - started
        wait_executed(page, [2])
        path, final, _ = shoot(lab, page, 2, "watch-end.png")
        record = page.evaluate(STOP_SAMPLER)
        errors = errors_shown(page)

    [view] = record["samples"]
    widths = bar_trace(view)
    lab.say(f"watch: first cell printed {first.strip()!r}")
    lab.say(f"  bar widths seen: {fmt(widths)} (succeeded {took:.2f} s after the run button)")
    lab.say(f"  end: {brief(final)}; output lines: {view[-1]['view']}; screenshot {path}")

    assert not errors, errors
    assert "result: 40" in first, first
    assert widths == [100], f"the bar showed other values than 100%: {widths}"
    assert "progress-bar-success" in final["classes"] and status_is(final, SUCCEEDED), final


FIREHOSE = """\
import time
import nbflow
from nbflow.notebook import launch

nbflow.configure(".nbflow/stress.duckdb")


@nbflow.workflow(name="firehose")
def firehose(seconds, rate):
    # `rate` items a second on the stream "items", for `seconds`, in ticks of 10 ms.
    per_tick, ticks, n = rate // 100, round(seconds * 100), 0
    t0 = time.perf_counter()
    for k in nbflow.track(range(ticks)):
        for _ in range(per_tick):
            nbflow.write_stream("items", n)
            n += 1
        late = t0 + (k + 1) / 100 - time.perf_counter()
        if late > 0:
            time.sleep(late)
    return {"items": n, "seconds": round(time.perf_counter() - t0, 2)}


handle = launch(firehose, 3, 50_000, watch=("progress", "items"))"""


def test_a_stream_of_150k_items_keeps_the_page_responsive(lab_io: Lab) -> None:
    lab = lab_io
    write_notebook(
        lab,
        "stress.ipynb",
        [
            FIREHOSE,
            "print('the kernel answers')",
            "print(handle.result())\nassert handle.view.wait(60)\nprint(handle.view.frame.label)",
        ],
    )
    log_at = len(lab.log_text())
    with open_notebook(lab, "stress.ipynb", "stress") as page:
        page.evaluate(SAMPLER, [[0], 10])
        run_cells(lab, page, 0)
        page.wait_for_function(BAR_AT_LEAST, arg=[0, 10], timeout=60 * MS)
        answered = time.monotonic()
        run_cells(lab, page, 1)
        wait_executed(page, [1], timeout=30)
        answered = time.monotonic() - answered
        assert "the kernel answers" in outputs_text(page, 1)
        latencies = []
        while not page.evaluate(CELL_STATUS_IS, [0, "success", SUCCEEDED]):
            t = time.monotonic()
            page.evaluate("() => document.querySelectorAll('.jp-Cell').length")
            latencies.append(time.monotonic() - t)
            page.wait_for_timeout(100)  # one probe of the page every 100 ms
            assert len(latencies) < 600, "the stress workflow did not end within a minute"
        run_cells(lab, page, 2)
        wait_executed(page, [2], timeout=90)
        result = outputs_text(page, 2)
        path, final, _ = shoot(lab, page, 0, "stress-end.png")
        record = page.evaluate(STOP_SAMPLER)
        shown = page.locator(".jp-Notebook").inner_text()
        errors = errors_shown(page)
    log = lab.log_text()[log_at:]

    [view] = record["samples"]
    found = re.search(r"'items': (\d+), 'seconds': ([\d.]+)", result)
    assert found, result
    items, seconds = int(found[1]), float(found[2])
    widths = bar_trace(view)
    shown_at = [s["t"] for s in view if s["width"] is not None]
    full_at = next(s["t"] for s in view if s["width"] == 100)
    lab.say(
        f"stress: {items} items in {seconds} s ({items / seconds:,.0f} items/s); "
        f"bar updates seen: {len(widths)}, from 0 to 100% in {(full_at - shown_at[0]) / 1000:.1f} s"
    )
    lab.say(
        f"  page: longest gap between two 10 ms sampler ticks {record['maxGap']:.0f} ms; "
        f"round trips to the page: max {max(latencies) * 1000:.0f} ms over {len(latencies)}; "
        f"a cell run meanwhile answered in {answered:.2f} s"
    )
    lab.say(f"  end: {brief(final)}; view: {result.strip().splitlines()[-1]!r}; screenshot {path}")

    assert not errors, errors
    for text in IOPUB_DROPPED:
        assert text not in log, f"the server log says {text!r}:\n{log}"
        assert text not in shown, f"the page says {text!r}"
    # The figures above are reported, not asserted (speed is the benchmarks'): the page stayed
    # responsive in that every probe came back and a cell run meanwhile answered, within the
    # waits' own bounds.
    assert items == 150_000, (items, seconds)
    assert "progress-bar-success" in final["classes"] and final["width"] == 100, final
