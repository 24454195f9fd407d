"""Real-browser tests: the live view in JupyterLab, driven by Playwright in headless Chromium.

One JupyterLab server (on 127.0.0.1, a free port, a token) and one Chromium serve the tests of
this module. Everything lives in a temporary folder: the notebooks, a kernelspec that runs this
interpreter (so the kernels import this nbflow), and Jupyter's config, data, runtime, settings and
workspace folders. Each test opens its notebook in a new tab, runs cells with the notebook's own
toolbar button and reads the widgets' DOM; an in-page sampler records every change of a cell's
progress bar (``.widget-hprogress .progress-bar``: width, style) and output area every 10 ms.

What they check: the quick-start notebook's bar moves through intermediate values and ends green
while its output grows during the run; ``%nbflow watch`` on a finished workflow shows 100% at
once; the Cancel button cancels (status CANCELLED, amber bar); a workflow writing 50,000 items a
second leaves the page responsive and the server never drops output ("IOPub message rate
exceeded"). Screenshots go to ``browser-artifacts/`` in pytest's temporary folder; with
``NBFLOW_UPDATE_SCREENSHOTS=1`` the README's example mid-run is also copied to
``docs/liveview.png``.

Chromium is Debian's (``apt-get install chromium``; ``.ci/run`` installs it where it is missing);
Playwright's own browser download is never used. Without Chromium the tests are skipped, saying so.
Every process they start (JupyterLab, its kernels, Chromium) is stopped at the end, also when a
test fails; the teardown checks that none is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
from playwright.sync_api import BrowserContext, Locator, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.helpers import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "notebooks" / "01-quickstart.ipynb"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/lib/chromium/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
KERNEL = "nbflow-browser-test"
KERNELSPEC = {"name": KERNEL, "display_name": "Python (nbflow browser test)", "language": "python"}
RUN_BUTTON = '[data-command="notebook:run-cell-and-select-next"]'
IOPUB_DROPPED = (
    "IOPub message rate exceeded",
    "IOPub data rate exceeded",
    "iopub messages resumed",
)
MS = 1000  # Playwright timeouts are in milliseconds


def find_chromium() -> str | None:
    """Debian's Chromium, or None."""
    for path in CHROMIUM_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return None


# -- processes ---------------------------------------------------------------------------------


def pids_with(marker: str) -> set[int]:
    """The processes whose command line contains ``marker`` (a path unique to this run)."""
    found = set()
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.add(int(entry.name))
    found.discard(os.getpid())
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop_pids(pids: set[int], what: str, grace: float = 10.0) -> list[str]:
    """Wait up to ``grace`` s for ``pids`` to end, then SIGKILL those left; say what was done."""
    notes = []
    with contextlib.suppress(AssertionError):  # those still alive after the grace are killed
        wait_until(lambda: not any(alive(p) for p in pids), timeout=grace, interval=0.05)
    for pid in sorted(p for p in pids if alive(p)):
        notes.append(f"{what} {pid} did not stop by itself: SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return notes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- JupyterLab --------------------------------------------------------------------------------


@dataclass
class Lab:
    """A running JupyterLab server and the Chromium that shows it."""

    base: Path
    url: str
    token: str
    log: Path
    artifacts: Path
    context: BrowserContext | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def notebooks(self) -> Path:
        return self.base / "notebooks"

    def api(self, method: str, path: str) -> Any:
        """Call the server's REST API; the decoded JSON answer (None when empty)."""
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def say(self, line: str) -> None:
        """Print ``line`` where CI shows it (pytest's capture is bypassed) and keep it."""
        self.lines.append(line)
        print(line)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def write_jupyter_dirs(base: Path, port: int, token: str) -> dict[str, str]:
    """Config, data (the kernelspec), runtime, settings and workspaces under ``base``; the
    environment that points Jupyter at them."""
    dirs = {
        name: base / name
        for name in ("config", "data", "runtime", "lab-settings", "lab-workspaces", "ipython")
    }
    for path in dirs.values():
        path.mkdir(parents=True)
    (base / "notebooks").mkdir()
    spec = dirs["data"] / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": KERNELSPEC["display_name"],
                "language": "python",
                "metadata": {"debugger": False},
            }
        )
    )
    config = {
        "ServerApp": {
            "ip": "127.0.0.1",
            "port": port,
            "port_retries": 0,
            "open_browser": False,
            "allow_root": True,
            "root_dir": str(base / "notebooks"),
        },
        "IdentityProvider": {"token": token},
        "KernelSpecManager": {"ensure_native_kernel": False, "allowed_kernelspecs": [KERNEL]},
    }
    (dirs["config"] / "jupyter_server_config.json").write_text(json.dumps(config))
    # No "Jupyter news" question, no update check; every cell in the DOM (no windowing).
    settings = dirs["lab-settings"] / "@jupyterlab"
    for plugin, values in {
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "notebook-extension/tracker": {"windowingMode": "none"},
    }.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JUPYTER", "NBFLOW_", "IPYTHON", "PYTEST_"))
    }
    env.update(
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_PATH=str(dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        JUPYTERLAB_SETTINGS_DIR=str(dirs["lab-settings"]),
        JUPYTERLAB_WORKSPACES_DIR=str(dirs["lab-workspaces"]),
        IPYTHONDIR=str(dirs["ipython"]),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """JupyterLab and Chromium for this module; both stopped (and checked gone) at the end."""
    chromium = find_chromium()
    if chromium is None:
        pytest.skip(
            f"Chromium is not installed (looked for {', '.join(CHROMIUM_CANDIDATES)}); "
            "install Debian's package with 'apt-get install chromium' (.ci/run does)"
        )
    base = tmp_path_factory.mktemp("jupyterlab")
    artifacts = tmp_path_factory.getbasetemp() / "browser-artifacts"
    artifacts.mkdir(exist_ok=True)
    port, token = free_port(), os.urandom(12).hex()
    env = write_jupyter_dirs(base, port, token)
    log = artifacts / "jupyterlab.log"
    lab = Lab(base, f"http://127.0.0.1:{port}", token, log, artifacts)
    notes: list[str] = []
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser"],
            cwd=base,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, to stop whatever it leaves
        )
    playwright = None
    profile = base / "chromium-profile"
    try:

        def up() -> bool:
            if server.poll() is not None:
                raise AssertionError(f"jupyter lab exited ({server.returncode}):\n{lab.log_text()}")
            try:
                return lab.api("GET", "/api/status") is not None
            except (OSError, urllib.error.URLError):
                return False

        started = time.monotonic()
        wait_until(up, timeout=60, interval=0.1)
        playwright = sync_playwright().start()
        lab.context = playwright.chromium.launch_persistent_context(
            str(profile),  # a fresh profile, only for this run
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            env={**os.environ, "HOME": str(base / "chromium-home")},  # its crash database too
            viewport={"width": 1400, "height": 1200},
        )
        lab.say(
            f"JupyterLab on {lab.url} ready in {time.monotonic() - started:.1f} s; "
            f"Chromium {lab.context.browser.version if lab.context.browser else '?'} ({chromium}); "
            f"artifacts in {artifacts}"
        )
        yield lab
    finally:
        chromium_pids = pids_with(str(base / "chromium-"))
        kernel_pids = pids_with(str(base / "runtime"))
        if lab.context is not None:
            with contextlib.suppress(Exception):
                lab.context.close()
        if playwright is not None:
            with contextlib.suppress(Exception):
                playwright.stop()
        notes += stop_pids(chromium_pids | pids_with(str(base / "chromium-")), "Chromium process")
        with contextlib.suppress(Exception):
            lab.api("POST", "/api/shutdown")  # shuts its kernels down, then stops
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            notes.append("jupyter lab did not stop after /api/shutdown: SIGTERM")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                notes.append("jupyter lab did not stop after SIGTERM: SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.pid, signal.SIGKILL)
                server.wait(10)
        notes += stop_pids(kernel_pids | pids_with(str(base / "runtime")), "kernel")
        left = {p for p in pids_with(str(base)) if alive(p)}
        line = (
            f"cleanup: JupyterLab (pid {server.pid}) exited with {server.returncode}; "
            f"{len(chromium_pids)} Chromium processes and kernels {sorted(kernel_pids)} "
            f"stopped; {'; '.join(notes) or 'none needed a signal'}; left: {sorted(left)}"
        )
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print(f"\n    {line}")
        assert not left, f"processes left running: {sorted(left)}"


@pytest.fixture
def lab_io(lab: Lab, capsys: pytest.CaptureFixture[str]) -> Iterator[Lab]:
    """The lab; what the test says with ``lab.say`` is also printed past pytest's capture, so
    that CI's log shows the sampled values. The test's kernels are shut down after it."""
    lab.lines.clear()
    try:
        yield lab
    finally:
        kernels = pids_with(str(lab.base / "runtime"))
        for session in lab.api("GET", "/api/sessions") or []:
            with contextlib.suppress(Exception):
                lab.api("DELETE", f"/api/sessions/{session['id']}")
        notes = stop_pids(kernels, "kernel", grace=20)
        lab.say(f"kernels shut down: {sorted(kernels)} {'; '.join(notes)}".rstrip())
        with capsys.disabled():
            print()
            for line in lab.lines:
                print(f"    {line}")


# -- notebooks in the browser ----------------------------------------------------------------

SAMPLER = """([cells, period]) => {
  const nb = () => document.querySelectorAll('.jp-Notebook .jp-Cell');
  const lines = (el) => {
    const text = el ? el.innerText.replace(/\\n+$/, '') : '';
    return text ? text.split('\\n').length : 0;
  };
  const state = (i) => {
    const cell = nb()[i];
    if (!cell) return null;
    const bar = cell.querySelector('.widget-hprogress .progress-bar');
    const box = bar && bar.closest('.widget-hprogress');
    const header = cell.querySelector('.widget-html');
    let stdout = 0;
    for (const o of cell.querySelectorAll('.jp-OutputArea-output')) {
      if (!o.closest('.widget-output') && !o.querySelector('.widget-output')) stdout += lines(o);
    }
    return {
      width: bar && box.offsetParent !== null ? parseFloat(bar.style.width) : null,
      style: bar ? [...bar.classList].filter((c) => c.startsWith('progress-bar-')).join(' ') : '',
      status: header ? header.innerText.split(' · ')[2] || '' : '',
      view: lines(cell.querySelector('.widget-output')),
      stdout,
    };
  };
  const rec = {t0: performance.now(), last: performance.now(), ticks: 0, maxGap: 0,
               samples: cells.map(() => [])};
  rec.timer = setInterval(() => {
    const now = performance.now();
    rec.maxGap = Math.max(rec.maxGap, now - rec.last);
    rec.last = now;
    rec.ticks++;
    cells.forEach((i, k) => {
      const s = state(i);
      if (!s) return;
      const list = rec.samples[k];
      const prev = list[list.length - 1];
      const key = JSON.stringify(s);
      if (!prev || prev.key !== key) list.push({...s, key, t: Math.round(now - rec.t0)});
    });
  }, period);
  window.__nbflowSampler = rec;
}"""

STOP_SAMPLER = """() => {
  const rec = window.__nbflowSampler;
  clearInterval(rec.timer);
  for (const list of rec.samples) for (const s of list) delete s.key;
  return {samples: rec.samples, ticks: rec.ticks, maxGap: rec.maxGap,
          span: performance.now() - rec.t0};
}"""

BAR_AT_LEAST = """([i, least]) => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
  const bar = cell && cell.querySelector('.widget-hprogress .progress-bar');
  return !!bar && bar.closest('.widget-hprogress').offsetParent !== null
    && parseFloat(bar.style.width) >= least;
}"""

BAR_STATE = """(i) => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
  const bar = cell && cell.querySelector('.widget-hprogress .progress-bar');
  const header = cell && cell.querySelector('.widget-html');
  if (!bar) return null;
  return {width: parseFloat(bar.style.width), classes: bar.className,
          colour: getComputedStyle(bar).backgroundColor,
          status: header ? header.innerText.split(' · ')[2] || '' : ''};
}"""

CELL_STATUS_IS = """([i, style, status]) => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
  const bar = cell && cell.querySelector('.widget-hprogress .progress-bar');
  const header = cell && cell.querySelector('.widget-html');
  return !!bar && bar.classList.contains('progress-bar-' + style)
    && !!header && header.innerText.includes(status);
}"""

STARTED = """(indices) => indices.some((i) => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
  const prompt = cell && cell.querySelector('.jp-InputPrompt');
  return !!prompt && /\\[(\\*|\\d+)\\]/.test(prompt.innerText);
})"""

EXECUTED = """(indices) => indices.every((i) => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
  const prompt = cell && cell.querySelector('.jp-InputPrompt');
  return !!prompt && /\\[\\d+\\]/.test(prompt.innerText);
})"""


def write_notebook(lab: Lab, name: str, cells: list[str]) -> Path:
    """A notebook of code cells, with this run's kernelspec."""
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in cells],
        metadata={"kernelspec": KERNELSPEC, "language_info": {"name": "python"}},
    )
    path = lab.notebooks / name
    nbformat.write(nb, path)
    return path


@contextlib.contextmanager
def open_notebook(lab: Lab, name: str, shots: str) -> Iterator[Page]:
    """Open ``name`` in a new tab with its kernel idle; on failure, keep a screenshot."""
    assert lab.context is not None
    page = lab.context.new_page()
    try:
        page.goto(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}")
        # The toolbar's indicator says "idle" before any kernel exists (its initial state): wait
        # for the server to see this notebook's kernel idle with the page connected, too.
        wait_until(lambda: kernel_connected(lab, name), timeout=90, interval=0.1)
        page.wait_for_selector(
            ".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=30 * MS
        )
        page.wait_for_selector(RUN_BUTTON, timeout=30 * MS)
        dismiss_popups(lab, page)
        yield page
        dismiss_popups(lab, page)
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=lab.artifacts / f"{shots}-failure.png", full_page=True)
            lab.say(f"failure screenshot: {lab.artifacts / f'{shots}-failure.png'}")
        raise
    finally:
        with contextlib.suppress(Exception):
            page.close()


def kernel_connected(lab: Lab, name: str) -> bool:
    """Whether the notebook ``name`` has a kernel, idle, that a page is connected to."""
    for session in lab.api("GET", "/api/sessions") or []:
        kernel = session.get("kernel") or {}
        if session.get("path") == name and kernel.get("connections", 0) >= 1:
            return kernel.get("execution_state") == "idle"
    return False


def dismiss_popups(lab: Lab, page: Page) -> None:
    """Answer "No" to a toast (e.g. "Jupyter news"); a dialog is a failure (wrong kernel?)."""
    for button in page.locator(".jp-toast-button", has_text="No").all():
        with contextlib.suppress(Exception):
            button.click(timeout=2 * MS)
            lab.say("dismissed a JupyterLab toast")
    dialogs = page.locator(".jp-Dialog")
    if dialogs.count():
        text = dialogs.first.inner_text()
        raise AssertionError(f"JupyterLab shows a dialog: {text!r}")


def cell(page: Page, index: int) -> Locator:
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def run_cells(lab: Lab, page: Page, start: int, count: int = 1) -> None:
    """Select cell ``start`` and press the toolbar's run button ``count`` times (each runs the
    selected cell and selects the next): the cells queue in the kernel as with Shift+Enter."""

    def press() -> None:
        cell(page, start).locator(".jp-InputPrompt").click()
        for _ in range(count):
            page.click(RUN_BUTTON)

    started(lab, page, list(range(start, start + count)), press)


def run_all(lab: Lab, page: Page, code: list[int]) -> None:
    """Run > Run All Cells, from the menu."""

    def press() -> None:
        page.click(".lm-MenuBar-itemLabel:text-is('Run')")
        page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")

    started(lab, page, code, press)


def started(lab: Lab, page: Page, indices: list[int], press: Callable[[], None]) -> None:
    """``press()``, then wait until one of the cells ``indices`` is queued or has run. If none
    is after 10 s, press again once (saying so): JupyterLab drops a run that it was asked for
    while its session was not ready, clearing the cells' prompts without a word."""
    for attempt in (1, 2):
        press()
        try:
            page.wait_for_function(STARTED, arg=indices, timeout=10 * MS)
            return
        except PlaywrightTimeoutError:
            if attempt == 2:
                raise
            lab.say(f"cells {indices} did not start within 10 s: pressing again")


def wait_executed(page: Page, indices: list[int], timeout: float = 60) -> None:
    page.wait_for_function(EXECUTED, arg=indices, timeout=timeout * MS)


def outputs_text(page: Page, index: int) -> str:
    return cell(page, index).locator(".jp-OutputArea").inner_text()


def errors_shown(page: Page) -> list[str]:
    """The tracebacks and stderr outputs on the page."""
    found = page.locator(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"],'
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
    )
    return [found.nth(i).inner_text() for i in range(found.count())]


def bar_trace(samples: list[dict[str, Any]]) -> list[float]:
    """The visible widths, in order, each change once."""
    trace: list[float] = []
    for s in samples:
        if s["width"] is not None and (not trace or trace[-1] != s["width"]):
            trace.append(s["width"])
    return trace


def before_full(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The samples before the bar first showed 100%."""
    out = []
    for s in samples:
        if s["width"] is not None and s["width"] >= 100:
            break
        out.append(s)
    return out


def shoot(lab: Lab, page: Page, index: int, name: str) -> tuple[Path, Any, Any]:
    """Screenshot cell ``index``; with the bar's state just before and just after."""
    path = lab.artifacts / name
    before = page.evaluate(BAR_STATE, index)
    cell(page, index).screenshot(path=path)
    after = page.evaluate(BAR_STATE, index)
    return path, before, after


def fmt(widths: list[float]) -> str:
    return " ".join(f"{w:g}%" for w in widths)


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
        page.wait_for_function(CELL_STATUS_IS, arg=[launch, "success", "SUCCESS"], timeout=60 * MS)
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
    lab.say(f"  end: {final}")
    lab.say(f"  mid-run screenshot {mid} (bar {mid_before['width']}% -> {mid_after['width']}%)")
    lab.say(f"  end screenshot {end}")

    assert not errors, errors
    assert mid_after["width"] < 100, f"the mid-run screenshot may show the end: {mid_after}"
    assert len(intermediate) >= 3, f"fewer than 3 values between 0 and 100%: {widths}"
    assert widths[-1] == 100, widths
    assert "progress-bar-success" in final["classes"] and final["status"] == "SUCCESS", final
    growing = sorted({n for n in view_lines if n})
    assert len(growing) >= 3 and growing[0] < 20, (
        f"the view's output did not grow while the bar moved (lines seen below 100%: {view_lines})"
    )
    assert view[-1]["view"] == 20, view[-1]
    partial = [s for s in reading if 0 < s["stdout"] < 20 and s["t"] < t_full]
    assert partial, f"the reader cell printed nothing before the bar reached 100%: {reading}"
    assert "pipeline: SUCCESS, bar at 20/20" in summary, summary


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
        page.wait_for_function(CELL_STATUS_IS, arg=[0, "warning", "CANCELLED"], timeout=30 * MS)
        took = time.monotonic() - clicked
        run_cells(lab, page, 1)
        wait_executed(page, [1])
        status = outputs_text(page, 1)
        end, final, _ = shoot(lab, page, 0, "cancelled-end.png")
        disabled = button.is_disabled()
        record = page.evaluate(STOP_SAMPLER)
        errors = errors_shown(page)
    if os.environ.get("NBFLOW_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(mid, ROOT / "docs" / "liveview.png")
        lab.say(f"copied {mid} to docs/liveview.png")

    [view] = record["samples"]
    widths = bar_trace(view)
    statuses = [s["status"] for s in view]
    lab.say(f"cancel: bar widths seen: {fmt(widths)}")
    lab.say(f"  statuses: {list(dict.fromkeys(statuses))}; CANCELLED {took:.2f} s after the click")
    lab.say(f"  end: {final}; Cancel disabled: {disabled}; cell 2 printed {status.strip()!r}")
    lab.say(f"  README screenshot {mid} (bar {before['width']}% -> {after['width']}%)")
    lab.say(f"  end screenshot {end}")

    assert not errors, errors
    assert 0 < before["width"] <= after["width"] < 100, (before, after)
    assert "CANCELLED" in status, status
    assert final["status"] == "CANCELLED" and "progress-bar-warning" in final["classes"], final
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
        page.wait_for_function(CELL_STATUS_IS, arg=[2, "success", "SUCCESS"], timeout=30 * MS)
        took = time.monotonic() - started
        wait_executed(page, [2])
        path, final, _ = shoot(lab, page, 2, "watch-end.png")
        record = page.evaluate(STOP_SAMPLER)
        errors = errors_shown(page)

    [view] = record["samples"]
    widths = bar_trace(view)
    lab.say(f"watch: first cell printed {first.strip()!r}")
    lab.say(f"  bar widths seen: {fmt(widths)} (SUCCESS {took:.2f} s after the run button)")
    lab.say(f"  end: {final}; output lines: {view[-1]['view']}; screenshot {path}")

    assert not errors, errors
    assert "result: 40 SUCCESS" in first, first
    assert widths == [100], f"the bar showed other values than 100%: {widths}"
    assert "progress-bar-success" in final["classes"] and final["status"] == "SUCCESS", final


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


def test_stress_50k_items_a_second_keeps_the_page_responsive(lab_io: Lab) -> None:
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
        while not page.evaluate(CELL_STATUS_IS, [0, "success", "SUCCESS"]):
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
    lab.say(f"  end: {final}; view: {result.strip().splitlines()[-1]!r}; screenshot {path}")

    assert not errors, errors
    for text in IOPUB_DROPPED:
        assert text not in log, f"the server log says {text!r}:\n{log}"
        assert text not in shown, f"the page says {text!r}"
    assert items == 150_000 and items / seconds > 30_000, (items, seconds)
    assert record["maxGap"] < 1000, record["maxGap"]
    assert max(latencies) < 1.0, latencies
    assert answered < 5, answered
    assert "progress-bar-success" in final["classes"] and final["width"] == 100, final
