"""Real-browser tests of issue 13: a notebook after a kernel restart, in JupyterLab and Notebook 7.

A person's steps, with the user interface's own menus and dialogs (:mod:`tests.support.browser`: one
Jupyter server and one Chromium per user interface, every process stopped and checked gone):

- (a) JupyterLab and Notebook 7: the README's one-cell pattern (definitions and ``launch``) and a
  later ``%nbflow recover``; Run All, Kernel > Restart Kernel… once the bar is past 30%, Run All
  again. Exactly one workflow of the pipeline is in the database, no step whose checkpoint was
  durable ran twice (the steps append to a side-effect file, with the kernel's pid), the second
  kernel went on from the first one's last checkpoint, and the launch cell's view ends at 100%,
  green, "succeeded".
- (b) JupyterLab: a launched workflow that prints, logs and runs tqdm (text and
  ``tqdm.notebook``) in its body and its steps while later cells print: every line is in the
  view's output area, none in another cell's.
- (c) JupyterLab and Notebook 7: a launched workflow runs to its end; Ctrl+S, Kernel > Shut Down
  Kernel, the tab closed and the notebook opened again: the cell shows the final status and
  counts (not "Error displaying widget: model not found", not ``<nbflow LiveView>``), and the
  saved file's output has text/html with the final counts.
- (d) JupyterLab: a launched workflow, the kernel restarted mid-run, then a cell with only the
  definitions and ``%nbflow recover``: that cell's view moves (sampled intermediate values) to
  100%, green.

Screenshots of each go to ``browser-artifacts/`` in pytest's temporary folder.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.support.browser import (
    BAR_AT_LEAST,
    BAR_STATE,
    MS,
    SAMPLER,
    STOP_SAMPLER,
    VIEW_ENDED,
    VIEW_HAS,
    VIEW_JS,
    Lab,
    bar_trace,
    brief,
    cell,
    errors_shown,
    expect,
    fmt,
    kernel_pids,
    open_notebook,
    outputs_text,
    reporting,
    restart_kernel,
    run_all,
    run_all_again,
    run_cells,
    save_notebook,
    serve,
    shoot,
    shut_kernel_down,
    shut_kernels_down,
    status_is,
    wait_executed,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BOTH = pytest.mark.parametrize("server", ["lab", "notebook"], indirect=True)
LAB = pytest.mark.parametrize("server", ["lab"], indirect=True)

SUCCEEDED = "succeeded"
STEPS = 40  # of 0.25 s each: 10 s, long enough to restart the kernel in the middle
BROKEN_VIEW = ("model not found", "Error displaying widget", "<nbflow LiveView>", "LiveView(")


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    """JupyterLab ("lab") or Notebook 7 ("notebook") and Chromium, for the tests that ask for it;
    pytest runs the tests of one before starting the other."""
    with serve(request.param, tmp_path_factory, request) as lab:
        yield lab


@pytest.fixture
def ui(server: Lab, capsys: pytest.CaptureFixture[str]) -> Iterator[Lab]:
    """The server for one test, its lines printed past pytest's capture, its kernels shut down."""
    with reporting(server, capsys) as lab:
        yield lab


# -- the pipeline and what it left -------------------------------------------------------------


def definitions(runs: Path, name: str) -> str:
    """A slow pipeline whose step appends ``<kernel pid> <item>`` to ``runs`` when it is done."""
    return f"""\
import os, time, nbflow
from nbflow.notebook import launch

@nbflow.step
def work(i):
    time.sleep(0.25)                              # a slow call
    with open({str(runs)!r}, "a") as side_effect:  # counted by the test
        side_effect.write(f"{{os.getpid()}} {{i}}\\n")
    return {{"item": i, "square": i * i}}

@nbflow.workflow(name={name!r})
def pipeline(n):
    for i in nbflow.track(range(n)):
        nbflow.write_stream("results", work(i))
    return n"""


def launch_line() -> str:
    return f'handle = launch(pipeline, {STEPS}, watch=("progress", "results"))'


def database(lab: Lab, notebook: str) -> Path:
    """The notebook's default database: ``.nbflow/<notebook>.duckdb`` beside it."""
    path = lab.notebooks / ".nbflow" / f"{Path(notebook).stem}.duckdb"
    assert path.exists(), f"no database at {path}: {sorted(lab.notebooks.rglob('*.duckdb'))}"
    return path


def workflows_named(db: Path, name: str) -> list[tuple[str, str]]:
    """``(workflow_id, status)`` of every workflow called ``name`` (read once its kernel ended)."""
    with contextlib.closing(duckdb.connect(str(db), read_only=True)) as con:
        rows = con.execute(
            "select workflow_id, status from workflows where name = ? order by created_at", [name]
        ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def runs_by_kernel(runs: Path, first: int, second: int) -> tuple[list[int], list[int]]:
    """The items whose step ran in the first kernel and in the second, in order."""
    by: dict[int, list[int]] = {first: [], second: []}
    for line in runs.read_text().splitlines():
        pid, item = map(int, line.split())
        assert pid in by, f"a step ran in an unknown process {pid}: {line!r}"
        by[pid].append(item)
    return by[first], by[second]


def check_side_effects(lab: Lab, before: list[int], after: list[int]) -> None:
    """Each item ran once, except at most the one in flight at the restart; the second kernel
    went on from the first one's last step, not from 0."""
    lab.say(
        f"  steps run by the first kernel: {fmt_items(before)}; by the second: {fmt_items(after)}"
    )
    assert before, "no step ran before the restart"
    assert after, "no step ran after the restart"
    assert len(set(before)) == len(before), f"a step ran twice in the first kernel: {before}"
    assert len(set(after)) == len(after), f"a step ran twice in the second kernel: {after}"
    assert sorted(set(before) | set(after)) == list(range(STEPS)), (before, after)
    again = set(before) & set(after)
    assert again <= {max(before)}, (
        f"steps whose checkpoint was durable before the restart ran again: {sorted(again)}"
    )
    assert max(before) < STEPS - 1, f"the restart came after the last step: {before}"
    assert min(after) >= max(before), (
        f"the second kernel did not go on from the last checkpoint ({max(before)}): {after}"
    )


def fmt_items(items: list[int]) -> str:
    return f"{items[0]}..{items[-1]} ({len(items)})" if items else "none"


def wait_ended(page: Page, index: int, timeout: float = 90) -> None:
    """Wait until cell ``index``'s view shows an end state (green, red or amber)."""
    expect(page, VIEW_ENDED, index, "the view did not reach an end state", timeout)


def moved(widths: list[float]) -> list[float]:
    """The bar's values between its first one shown and 100% (a replayed view starts at the
    interrupted run's checkpoint)."""
    shown = [w for w in widths if 0 < w < 100]
    return sorted({w for w in shown if w > shown[0]}) if shown else []


def check_green(final: dict[str, Any] | None) -> None:
    assert final is not None, "no progress bar"
    assert final["width"] == 100, final
    assert "progress-bar-success" in final["classes"] and status_is(final, SUCCEEDED), final


# -- (a) Run All, restart, Run All ------------------------------------------------------------


@BOTH
def test_run_all_after_a_restart_resumes_the_one_run(ui: Lab) -> None:
    lab = ui
    name = f"restart-{lab.kind}.ipynb"
    runs = lab.notebooks / f"restart-{lab.kind}.runs"
    write_notebook(
        lab,
        name,
        [
            definitions(runs, "restart-pipeline") + "\n\n" + launch_line(),
            "%load_ext nbflow\n%nbflow recover",
            "import os\nprint('kernel', os.getpid())",
        ],
    )
    with open_notebook(lab, name, f"restart-{lab.kind}") as page:
        [first] = kernel_pids(lab)
        run_all(lab, page, [0, 1, 2])
        expect(page, BAR_AT_LEAST, [0, 30], "the bar did not pass 30%")
        mid, _, at_restart = shoot(lab, page, 0, f"a-{lab.kind}-1-before-restart.png")
        second = restart_kernel(lab, page, name)
        old, _, _ = shoot(lab, page, 0, f"a-{lab.kind}-2-after-restart.png")
        old_state = page.evaluate(BAR_STATE, 0)
        page.evaluate(SAMPLER, [[0], 10])
        run_all_again(lab, page, 2, f"kernel {second}")
        wait_ended(page, 0)
        end, final, _ = shoot(lab, page, 0, f"a-{lab.kind}-3-end.png")
        record = page.evaluate(STOP_SAMPLER)
        recovered = outputs_text(page, 1)
        errors = errors_shown(page)
    shut_kernels_down(lab)  # the database file is free once the kernel has exited
    found = workflows_named(database(lab, name), "restart-pipeline")
    before, after = runs_by_kernel(runs, first, second)

    [view] = record["samples"]
    lab.say(
        f"(a) {lab.title}: restarted at bar {at_restart['width']:g}% (kernel {first} -> {second})"
    )
    lab.say(f"  the old view after the restart: {brief(old_state)}")
    lab.say(f"  the launch cell's bar after Run All again: {fmt(bar_trace(view))}")
    lab.say(f"  %nbflow recover said: {recovered.strip()!r}")
    lab.say(f"  workflows named restart-pipeline: {found}")
    lab.say(f"  screenshots: {mid}, {old}, {end}")

    assert len(found) == 1, f"{len(found)} runs of the pipeline, not one: {found}"
    assert found[0][1] == "SUCCESS", found
    check_side_effects(lab, before, after)
    check_green(final)
    widths = bar_trace(view)
    assert len(moved(widths)) >= 3, f"the launch cell's view did not move to 100%: {widths}"
    assert "not declared" not in recovered, recovered
    assert not errors, errors


# -- (b) output stays in its view -------------------------------------------------------------

NOISY = """\
import logging, time, nbflow
import tqdm, tqdm.notebook
from nbflow.notebook import launch

logging.basicConfig(level=logging.INFO)
log = logging.getLogger("noisy")

@nbflow.step
def chunk(i):
    print(f"step-print-{i}")
    log.info(f"step-info-{i}")
    for _ in tqdm.tqdm(range(3), desc=f"step-tqdm-{i}"):
        time.sleep(0.05)
    return i

@nbflow.workflow(name="noisy")
def noisy(n):
    print("body-print-start")
    logging.warning("body-warning-start")
    for i in tqdm.notebook.tqdm(range(n), desc="body-nbtqdm"):
        chunk(i)
        time.sleep(0.4)
    print("body-print-end")
    return n

handle = launch(noisy, 4, watch=("progress", "stdout"))"""

NOISY_LINES = [
    "body-print-start",
    "body-warning-start",
    "body-nbtqdm",
    *(f"step-{what}-{i}" for i in range(4) for what in ("print", "info", "tqdm")),
    "body-print-end",
]

LATER_CELLS = [
    "for k in range(8):\n    print(f'cell-one-{k}')\n    time.sleep(0.25)",
    "print('cell-two-before')\nprint('cell-two-result', handle.result(timeout=60))",
    "print('cell-three')",
]


@LAB
def test_prints_logs_and_tqdm_stay_in_the_view(ui: Lab) -> None:
    lab = ui
    write_notebook(lab, "noisy.ipynb", [NOISY, *LATER_CELLS])
    with open_notebook(lab, "noisy.ipynb", "noisy") as page:
        run_cells(lab, page, 0, 4)
        wait_executed(page, [0, 1, 2, 3], timeout=90)
        wait_ended(page, 0)
        with contextlib.suppress(PlaywrightTimeoutError):  # its reader drains the stream at the end
            page.wait_for_function(VIEW_HAS, arg=[0, "body-print-end"], timeout=15 * MS)
        state = page.evaluate(BAR_STATE, 0)
        if state["kind"] == "widget":  # no static rendering at the end: "Show all" in the widget
            show_all = cell(page, 0).locator(".widget-toggle-button", has_text="Show all")
            if show_all.count() and show_all.is_visible():
                show_all.click()
                with contextlib.suppress(PlaywrightTimeoutError):  # checked below
                    page.wait_for_function(VIEW_HAS, arg=[0, NOISY_LINES[0]], timeout=15 * MS)
            state = page.evaluate(BAR_STATE, 0)
        view, outside = state["text"], state["outside"]
        others = {i: outputs_text(page, i) for i in (1, 2, 3)}
        path = lab.artifacts / "b-noisy.png"
        page.locator(".jp-Notebook").first.screenshot(path=path)
        errors = errors_shown(page)

    missing = [line for line in NOISY_LINES if line not in view]
    strays = {i: [line for line in NOISY_LINES if line in text] for i, text in others.items()}
    lab.say(f"(b) view output ({len(view.splitlines())} lines), missing: {missing}")
    lab.say(
        f"  lines in other cells: {strays}; outputs of the launch cell outside its view: {outside}"
    )
    escaped = [line for line in view.splitlines() if "\x1b" in line]  # reported, not checked
    lab.say(f"  view lines with terminal escapes (tqdm's cursor moves): {escaped}")
    lab.say(f"  screenshot {path}")

    assert not any(strays.values()), f"workflow lines in other cells: {strays}\n{others}"
    assert not missing, f"lines missing from the view: {missing}\n{view}"
    beside = [line for line in NOISY_LINES if line in outside]
    assert not beside, f"workflow lines under the launch cell, outside its view: {outside}"
    assert "cell-one-7" in others[1] and "cell-two-result 4" in others[2], others
    assert "cell-three" in others[3], others
    assert not errors, errors


# -- (c) a saved notebook shows what happened -------------------------------------------------

COUNTED = """\
import time, nbflow
from nbflow.notebook import launch

@nbflow.workflow(name="saved-view")
def count(n):
    for i in nbflow.track(range(n)):
        nbflow.write_stream("rows", f"row {i}")
        time.sleep(0.05)
    return n

handle = launch(count, 25, watch=("progress", "rows"))"""


def html_outputs(saved: dict[str, Any], index: int) -> list[str]:
    """The text/html of cell ``index``'s outputs in a saved notebook."""
    found = []
    for output in saved["cells"][index].get("outputs", []):
        html = output.get("data", {}).get("text/html")
        if html:
            found.append("".join(html) if isinstance(html, list) else html)
    return found


@BOTH
def test_a_saved_notebook_shows_the_final_state_without_a_kernel(ui: Lab) -> None:
    lab = ui
    name = f"saved-{lab.kind}.ipynb"
    write_notebook(lab, name, [COUNTED, "print('after')"])
    with open_notebook(lab, name, f"saved-{lab.kind}") as page:
        run_cells(lab, page, 0, 2)
        wait_executed(page, [0, 1])
        wait_ended(page, 0)
        with contextlib.suppress(PlaywrightTimeoutError):  # the static rendering, if it comes
            page.wait_for_function(
                f"(i) => {{{VIEW_JS} return viewOf(i).kind === 'static'; }}", arg=0, timeout=10 * MS
            )
        ended, _, _ = shoot(lab, page, 0, f"c-{lab.kind}-1-ended.png")
        saved = save_notebook(lab, page, name)
        shut_kernel_down(lab, page)
    with open_notebook(lab, name, f"saved-{lab.kind}-reopened") as page:
        page.wait_for_selector(".jp-Notebook .jp-Cell .jp-OutputArea-output", timeout=30 * MS)
        reopened, _, _ = shoot(lab, page, 0, f"c-{lab.kind}-2-reopened.png")
        shown = outputs_text(page, 0)
        errors = errors_shown(page)
    html = html_outputs(saved, 0)
    plain = [
        "".join(o.get("data", {}).get("text/plain", ""))
        for o in saved["cells"][0].get("outputs", [])
    ]

    lab.say(f"(c) {lab.title}: the reopened cell shows {shown.strip()!r}")
    lab.say(f"  saved outputs: text/plain {plain}; text/html {[h[:200] for h in html]}")
    lab.say(f"  screenshots: {ended}, {reopened}")

    assert not errors, errors
    for text in BROKEN_VIEW:
        assert text not in shown, f"the reopened notebook shows {text!r}: {shown!r}"
        assert not any(text in p for p in plain), f"the saved text/plain is {plain}"
    assert re.search(SUCCEEDED, shown, re.I) and "25/25" in shown, shown
    assert any("25/25" in h and re.search(SUCCEEDED, h, re.I) for h in html), html


# -- (d) %nbflow recover shows a moving view --------------------------------------------------


@LAB
def test_recover_after_a_restart_shows_a_moving_view(ui: Lab) -> None:
    lab = ui
    name = "recover.ipynb"
    runs = lab.notebooks / "recover.runs"
    defs = definitions(runs, "recover-pipeline")
    write_notebook(lab, name, [defs, launch_line(), f"{defs}\n\n%load_ext nbflow\n%nbflow recover"])
    with open_notebook(lab, name, "recover") as page:
        [first] = kernel_pids(lab)
        run_cells(lab, page, 0, 2)
        expect(page, BAR_AT_LEAST, [1, 30], "the bar did not pass 30%")
        before_shot, _, at_restart = shoot(lab, page, 1, "d-1-before-restart.png")
        second = restart_kernel(lab, page, name)
        page.evaluate(SAMPLER, [[2], 10])
        t0 = time.monotonic()
        run_cells(lab, page, 2)
        expect(page, BAR_AT_LEAST, [2, 70], "the recover cell shows no view whose bar passes 70%")
        mid, mid_state, _ = shoot(lab, page, 2, "d-2-recovering.png")
        wait_ended(page, 2)
        took = time.monotonic() - t0
        end, final, _ = shoot(lab, page, 2, "d-3-end.png")
        record = page.evaluate(STOP_SAMPLER)
        errors = errors_shown(page)
    shut_kernels_down(lab)
    found = workflows_named(database(lab, name), "recover-pipeline")
    before, after = runs_by_kernel(runs, first, second)

    [view] = record["samples"]
    widths = bar_trace(view)
    moving = moved(widths)
    lab.say(
        f"(d) restarted at bar {at_restart['width']:g}%; recover's view in {took:.1f} s: {fmt(widths)}"
    )
    lab.say(f"  mid: {brief(mid_state)}; end: {brief(final)}; workflows: {found}")
    lab.say(f"  screenshots: {before_shot}, {mid}, {end}")

    assert len(moving) >= 3, f"recover's view did not move through intermediate values: {widths}"
    check_green(final)
    assert len(found) == 1 and found[0][1] == "SUCCESS", found
    check_side_effects(lab, before, after)
    assert not errors, errors
