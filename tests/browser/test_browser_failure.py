"""Real-browser tests of issue 22, items 1 and 3, in JupyterLab: after a failure, after a restart.

With the parts of :mod:`tests.support.browser` (one Jupyter server and one Chromium, every process
stopped and checked gone):

- (1) a launched workflow fails in its step (an input file is missing); ``handle.result()``
  shows the error in the step's code. After Kernel > Restart Kernel…, a launch with
  ``on_change="replay"`` shows the failed run with ``nbflow.resume(…)`` named before
  ``rerun=True``, and its recorded error, raised again, ends in the step's own code (its source
  line shown), not in nbflow's. Then the file is created, as a person fixes the cause outside the
  code, and the launch cell runs again: it says in one line that it resumes from the step that
  failed, its view ends green, the steps before the failed one did not run again, and
  ``handle.result()`` gives the result.
- (3) a launched workflow runs; Kernel > Restart Kernel…: its view says the kernel stopped, shows
  no ETA, and suggests code that works in the new kernel; the test types that code into a cell
  (after the definitions) and runs it: no error, and the workflow is resumed to its end.

Screenshots go to ``browser-artifacts/`` in pytest's temporary folder.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterator

import pytest

from tests.support.browser import (
    CELL_STATUS_IS,
    VIEW_ENDED,
    Lab,
    cell,
    errors_shown,
    expect,
    open_notebook,
    outputs_text,
    reporting,
    restart_kernel,
    run_cells,
    serve,
    shoot,
    wait_executed,
    write_notebook,
)
from tests.support.helpers import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAB = pytest.mark.parametrize("server", ["lab"], indirect=True)


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    with serve(request.param, tmp_path_factory, request) as lab:
        yield lab


@pytest.fixture
def ui(server: Lab, capsys: pytest.CaptureFixture[str]) -> Iterator[Lab]:
    with reporting(server, capsys) as lab:
        yield lab


def has_text(page: object, index: int, text: str, timeout: float = 60) -> None:
    """Wait until cell ``index``'s outputs contain ``text``."""
    script = """([i, text]) => {
      const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
      const out = c && c.querySelector('.jp-OutputArea');
      return !!out && out.innerText.includes(text);
    }"""
    expect(page, script, [index, text], f"cell {index} does not show {text!r}", timeout)  # type: ignore[arg-type]


#: The words of the lines nbflow said in cell ``i`` (``.nbflow-said``) and of its view's texts
#: (a failure's line, the output) that the page breaks across two lines (a path may break after
#: a ``/`` or a ``-``, as text does), and how many lines nbflow said there.
SPLIT_WORDS = """(i) => {
  const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
  const said = c.querySelectorAll('.nbflow-said'), split = [];
  for (const el of c.querySelectorAll('.nbflow-said, pre[style*="word-break:normal"]')) {
    const node = el.firstChild, text = node.textContent, words = /[^\\s/-]+/g;
    let m;
    while ((m = words.exec(text))) {
      const r = document.createRange();
      r.setStart(node, m.index);
      r.setEnd(node, m.index + m[0].length);
      const tops = new Set([...r.getClientRects()].map((x) => Math.round(x.top)));
      if (tops.size > 1) split.push(m[0]);
    }
  }
  return {lines: said.length, split};
}"""


# -- (1) a failed run: its hint, its replayed error, and the launch cell run again ------------

FAILING = """\
import os, time, nbflow
from nbflow.notebook import launch

SIDE, NEEDED = {side!r}, {needed!r}

@nbflow.step
def load(i):
    time.sleep(0.2)
    with open(SIDE, "a") as f:
        f.write(f"{{i}}\\n")
    if i == 5 and not os.path.exists(NEEDED):
        raise FileNotFoundError(f"no input file {{NEEDED}}")
    return i * i

@nbflow.workflow(name="loader")
def loader(n):
    return sum(load(i) for i in nbflow.track(range(n)))"""

LAUNCH = "handle = launch(loader, 10)"
RESULT = "print('result', handle.result())"
REPLAY = 'shown = launch(loader, 10, on_change="replay")\nshown.result()'


@LAB
def test_a_failed_run_resumes_from_the_failed_step_and_its_error_shows_its_code(
    ui: Lab,
) -> None:
    lab = ui
    name = "failure.ipynb"
    side, needed = lab.notebooks / "failure.side", lab.notebooks / "failure.input"
    write_notebook(
        lab, name, [FAILING.format(side=str(side), needed=str(needed)), LAUNCH, RESULT, REPLAY]
    )
    with open_notebook(lab, name, "failure") as page:
        run_cells(lab, page, 0, 3)
        wait_executed(page, [0, 1, 2], timeout=90)
        expect(page, VIEW_ENDED, 1, "the view did not end")
        fresh = outputs_text(page, 2)
        failed_shot, failed, _ = shoot(lab, page, 1, "1-1-failed.png")

        restart_kernel(lab, page, name)
        run_cells(lab, page, 0)
        run_cells(lab, page, 3)
        wait_executed(page, [3], timeout=90)
        has_text(page, 3, "FileNotFoundError")
        replayed = outputs_text(page, 3)
        wrapped = page.evaluate(SPLIT_WORDS, 3)
        replay_shot, _, _ = shoot(lab, page, 3, "1-2-replayed-error.png")

        needed.write_text("x\n")  # the person fixes the cause, outside the code
        ran_before = collections.Counter(int(i) for i in side.read_text().split())
        run_cells(lab, page, 1)  # and runs the launch cell again
        expect(page, CELL_STATUS_IS, [1, "success", "succeeded"], "the run did not succeed")
        run_cells(lab, page, 2)
        has_text(page, 2, "result 285")
        again = outputs_text(page, 1)
        resumed_shot, resumed, _ = shoot(lab, page, 1, "1-3-resumed.png")
        notebook_shot = lab.artifacts / "1-4-notebook.png"
        page.locator(".jp-Notebook").first.screenshot(path=notebook_shot)
        errors = errors_shown(page)
    ran = collections.Counter(int(i) for i in side.read_text().split())

    lab.say(f"(1) failed view: {failed and failed['header']!r}")
    lab.say(f"  fresh error: {fresh[-300:]!r}")
    lab.say(f"  after the restart, the replay cell shows: {replayed[-900:]!r}")
    lab.say(f"  the launch cell run again says: {again.splitlines()[:1]!r}")
    lab.say(f"  the replay's line: {wrapped}")
    lab.say(f"  steps run: before {dict(ran_before)}, after {dict(ran)}")
    lab.say(f"  screenshots: {failed_shot}, {replay_shot}, {resumed_shot}, {notebook_shot}")

    assert "in load" in fresh and "FileNotFoundError" in fresh, fresh
    # the failed run's line names nbflow.resume first, then rerun=True
    hint = next(line for line in replayed.splitlines() if "already failed at" in line)
    assert hint.index("nbflow.resume(") < hint.index("rerun=True"), hint
    assert "re-runs only what failed" in hint, hint
    # the line wraps between words (a cell's stdout breaks `nbflow.resum` / `e('…')`)
    assert wrapped == {"lines": 1, "split": []}, wrapped
    # the replayed error ends in the step's code, with its source line, not in nbflow's
    assert "_history.py" not in replayed, replayed
    last = replayed.rsplit("Cell In[", 1)[-1]
    assert re.match(r"\d+\], line \d+, in load", last), replayed
    assert 'raise FileNotFoundError(f"no input file {NEEDED}")' in last, replayed
    # the launch cell run again resumes from the failed step
    assert "resuming it from the step that failed" in again, again
    assert resumed is not None and resumed["style"] == "success", resumed
    assert ran_before == dict.fromkeys(range(6), 1), ran_before
    assert ran == {i: 2 if i == 5 else 1 for i in range(10)}, ran
    assert [e for e in errors if "FileNotFoundError" not in e] == [], errors


# -- (3) the view of a stopped kernel suggests what works in the new kernel -------------------

SLOW = """\
import time, nbflow
from nbflow.notebook import launch

@nbflow.step
def tick(i):
    time.sleep(0.15)
    return i

@nbflow.workflow(name="ticker")
def ticker(n):
    for i in nbflow.track(range(n)):
        tick(i)
    return n"""

ETA_SHOWN = """(i) => {
  const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
  const label = c && c.querySelector('.nbflow-label');
  return !!label && label.innerText.includes('ETA');
}"""


@LAB
def test_the_stopped_kernel_notice_suggests_what_works_in_a_new_kernel(ui: Lab) -> None:
    lab = ui
    name = "stopped.ipynb"
    write_notebook(lab, name, [SLOW, "handle = launch(ticker, 80)", SLOW, ""])
    with open_notebook(lab, name, "stopped") as page:
        run_cells(lab, page, 0, 2)
        expect(page, ETA_SHOWN, 1, "the view shows no ETA")
        restart_kernel(lab, page, name)
        view = cell(page, 1)
        stale = view.locator(".nbflow-stale")
        wait_until(stale.is_visible, timeout=30)
        notice = stale.inner_text()
        label = view.locator(".nbflow-label").inner_text()
        header = view.locator(".widget-html").first.inner_text()
        dead_shot = lab.artifacts / "3-1-stopped-kernel.png"
        view.screenshot(path=dead_shot)
        suggested = stale.locator("code").first.inner_text()

        run_cells(lab, page, 2)  # the definitions, in the new kernel
        wait_executed(page, [2])
        editor = cell(page, 3).locator(".cm-content")
        editor.click()
        page.keyboard.type(suggested)  # what the notice suggests
        run_cells(lab, page, 3)
        wait_executed(page, [3], timeout=60)
        expect(page, VIEW_ENDED, 3, "the suggested code shows no view that ends", timeout=90)
        recovered_shot, recovered, _ = shoot(lab, page, 3, "3-2-suggested-code-run.png")
        shown = outputs_text(page, 3)
        errors = errors_shown(page)

    lab.say(f"(3) header {header!r}; label {label!r}")
    lab.say(f"  notice: {notice!r}; suggested code: {suggested!r}")
    lab.say(f"  the cell running it shows: {shown[:300]!r}; errors {errors}")
    lab.say(f"  screenshots: {dead_shot}, {recovered_shot}")

    assert "kernel stopped" in header, header
    assert "no longer updates" in notice, notice
    assert "ETA" not in label, label
    assert not errors, errors  # (a UsageError, %nbflow not loaded, would be here)
    assert recovered is not None and recovered["style"] == "success", recovered
    assert "80/80" in shown, shown
