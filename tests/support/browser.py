"""The browser tests' parts: a Jupyter server (JupyterLab or Notebook 7), Chromium, notebook helpers.

:func:`serve` starts one Jupyter server (on 127.0.0.1, a free port, a token) and one Chromium
(Debian's, driven by Playwright) for a test module; everything lives in a temporary folder: the
notebooks, a kernelspec that runs this interpreter (so the kernels import this nbflow), and
Jupyter's config, data, runtime, settings and workspace folders. Every process it starts (the
server, its kernels, Chromium) is stopped at the end, also when a test fails, and the teardown
checks that none is left. A test module turns it into a fixture::

    @pytest.fixture(scope="module")
    def lab(tmp_path_factory, request):
        with browser.serve("lab", tmp_path_factory, request) as lab:
            yield lab

The helpers open a notebook in a new tab with its kernel idle, run cells with the notebook's own
toolbar button or the menus (Run All, Kernel > Restart / Shut Down, File > Save), and read the
widgets' DOM; an in-page sampler records every change of a cell's progress bar
(``.widget-hprogress .progress-bar``: width, style) and output area every 10 ms. Notebook 7 is
built from JupyterLab's parts: the same cells, widgets, menus and dialogs, at ``/notebooks/``.

Chromium is Debian's (``apt-get install chromium``; ``.ci/run`` installs it where it is missing);
Playwright's own browser download is never used. Without Chromium the tests are skipped, saying so.
Screenshots go to ``browser-artifacts/`` in pytest's temporary folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
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

from tests.support.helpers import wait_until
from tests.support.processes import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

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


# -- the Jupyter server -------------------------------------------------------------------------


@dataclass
class Lab:
    """A running Jupyter server (JupyterLab, or Notebook 7 when ``kind`` is "notebook") and the
    Chromium that shows it."""

    kind: str
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

    @property
    def title(self) -> str:
        """The user interface's name, for messages."""
        return "JupyterLab" if self.kind == "lab" else "Notebook 7"

    def page_url(self, name: str) -> str:
        """The address that opens the notebook ``name`` (a fresh workspace in JupyterLab)."""
        if self.kind == "lab":
            return f"{self.url}/lab/tree/{name}?reset&token={self.token}"
        return f"{self.url}/notebooks/{name}?token={self.token}"

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


SERVERS = {"lab": "jupyterlab", "notebook": "notebook"}


@contextlib.contextmanager
def serve(
    kind: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Lab]:
    """A Jupyter server and Chromium for a test module; both stopped (and checked gone) at the end.

    Args:
        kind: "lab" (JupyterLab) or "notebook" (Notebook 7).
        tmp_path_factory: pytest's, for the server's folder and the artifacts.
        request: The fixture's request (its report bypasses pytest's capture).
    """
    chromium = find_chromium()
    if chromium is None:
        pytest.skip(
            f"Chromium is not installed (looked for {', '.join(CHROMIUM_CANDIDATES)}); "
            "install Debian's package with 'apt-get install chromium' (.ci/run does)"
        )
    base = tmp_path_factory.mktemp(SERVERS[kind])
    artifacts = tmp_path_factory.getbasetemp() / "browser-artifacts"
    artifacts.mkdir(exist_ok=True)
    port, token = free_port(), os.urandom(12).hex()
    env = write_jupyter_dirs(base, port, token)
    log = artifacts / f"{SERVERS[kind]}.log"
    lab = Lab(kind, base, f"http://127.0.0.1:{port}", token, log, artifacts)
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", SERVERS[kind], "--no-browser"],
            cwd=base,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, to stop whatever it leaves
        )
    playwright = None
    try:
        started = time.monotonic()
        wait_until(lambda: server_up(lab, server), timeout=60, interval=0.1)
        playwright = sync_playwright().start()
        lab.context = playwright.chromium.launch_persistent_context(
            str(base / "chromium-profile"),  # a fresh profile, only for this run
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            env={**os.environ, "HOME": str(base / "chromium-home")},  # its crash database too
            viewport={"width": 1400, "height": 1200},
        )
        lab.say(
            f"{lab.title} on {lab.url} ready in {time.monotonic() - started:.1f} s; "
            f"Chromium {lab.context.browser.version if lab.context.browser else '?'} ({chromium}); "
            f"artifacts in {artifacts}"
        )
        yield lab
    finally:
        chromium_pids = pids_with(str(base / "chromium-"))
        kernels = pids_with(str(base / "runtime"))
        if lab.context is not None:
            with contextlib.suppress(Exception):
                lab.context.close()
        if playwright is not None:
            with contextlib.suppress(Exception):
                playwright.stop()
        notes = stop_pids(chromium_pids | pids_with(str(base / "chromium-")), "Chromium process")
        notes += stop_server(lab, server)
        notes += stop_pids(kernels | pids_with(str(base / "runtime")), "kernel")
        left = {p for p in pids_with(str(base)) if alive(p)}
        line = (
            f"cleanup: {lab.title} (pid {server.pid}) exited with {server.returncode}; "
            f"{len(chromium_pids)} Chromium processes and kernels {sorted(kernels)} "
            f"stopped; {'; '.join(notes) or 'none needed a signal'}; left: {sorted(left)}"
        )
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print(f"\n    {line}")
        assert not left, f"processes left running: {sorted(left)}"


def server_up(lab: Lab, server: subprocess.Popen[bytes]) -> bool:
    """Whether the server answers; an AssertionError with its log if it has exited."""
    if server.poll() is not None:
        raise AssertionError(f"{lab.title} exited ({server.returncode}):\n{lab.log_text()}")
    try:
        return lab.api("GET", "/api/status") is not None
    except (OSError, urllib.error.URLError):
        return False


def stop_server(lab: Lab, server: subprocess.Popen[bytes]) -> list[str]:
    """Ask the server to shut down (its kernels first); SIGTERM, then SIGKILL its process group
    if it does not stop. What had to be done, for the report."""
    notes = []
    with contextlib.suppress(Exception):
        lab.api("POST", "/api/shutdown")
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        notes.append(f"{lab.title} did not stop after /api/shutdown: SIGTERM")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            notes.append(f"{lab.title} did not stop after SIGTERM: SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
    return notes


@contextlib.contextmanager
def reporting(lab: Lab, capsys: pytest.CaptureFixture[str]) -> Iterator[Lab]:
    """One test's use of ``lab`` (a function-scoped fixture wraps it): what the test says with
    ``lab.say`` is also printed past pytest's capture, so that CI's log shows the sampled values.
    The test's kernels are shut down after it."""
    lab.lines.clear()
    try:
        yield lab
    finally:
        shut_kernels_down(lab)
        with capsys.disabled():
            print()
            for line in lab.lines:
                print(f"    {line}")


def shut_kernels_down(lab: Lab) -> None:
    """Delete every session of the server and wait until their kernels have exited (so that
    their database files are free)."""
    kernels = pids_with(str(lab.base / "runtime"))
    for session in lab.api("GET", "/api/sessions") or []:
        with contextlib.suppress(Exception):
            lab.api("DELETE", f"/api/sessions/{session['id']}")
    notes = stop_pids(kernels, "kernel", grace=20)
    lab.say(f"kernels shut down: {sorted(kernels)} {'; '.join(notes)}".rstrip())


# -- notebooks in the browser ----------------------------------------------------------------

# A view in a cell is the widget while the workflow runs (``.widget-hprogress .progress-bar``,
# header ``.widget-html``, output ``.widget-output``) and, since issue 13, a static rendering at its
# end (``.nbflow-liveview``: a header div, a bar of two spans coloured by the end state, a <pre>).
# VIEW_JS reads either into the same fields: width (null when no bar shows), style ("success",
# "danger", "warning" or ""), classes (as the widget's), colour, header, status (the header's third
# part, e.g. "succeeded"), view (output lines shown), text (every output line, "show all" too),
# kind ("widget", "static"), stdout and outside (the lines and text the cell shows outside its
# view).
VIEW_JS = r"""
  const nbCells = () => document.querySelectorAll('.jp-Notebook .jp-Cell');
  const lineCount = (text) => {
    text = (text || '').replace(/\n+$/, '');
    return text ? text.split('\n').length : 0;
  };
  const STYLES = {'rgb(76, 175, 80)': 'success', 'rgb(229, 57, 53)': 'danger',
                  'rgb(251, 140, 0)': 'warning',  // the fallbacks; JupyterLab's light, dark:
                  'rgb(56, 142, 60)': 'success', 'rgb(211, 47, 47)': 'danger',
                  'rgb(245, 124, 0)': 'warning', 'rgb(244, 67, 54)': 'danger',
                  'rgb(255, 152, 0)': 'warning'};
  const viewOf = (i) => {
    const cell = nbCells()[i];
    if (!cell) return null;
    let stdout = 0, outside = '';
    for (const o of cell.querySelectorAll('.jp-OutputArea-output')) {
      if (!o.closest('.widget-output') && !o.querySelector('.widget-output, .nbflow-liveview')) {
        stdout += lineCount(o.innerText);
        outside += o.innerText;
      }
    }
    const bar = cell.querySelector('.widget-hprogress .progress-bar');
    if (bar) {
      const box = bar.closest('.widget-hprogress');
      const header = cell.querySelector('.widget-html');
      const out = cell.querySelector('.widget-output');
      const style = [...bar.classList].filter((c) => c.startsWith('progress-bar-'))
        .map((c) => c.slice('progress-bar-'.length)).join(' ');
      const head = header ? header.innerText : '';
      return {kind: 'widget', width: box.offsetParent !== null ? parseFloat(bar.style.width) : null,
              style, classes: bar.className, colour: getComputedStyle(bar).backgroundColor,
              header: head, status: head.split(' · ')[2] || '',
              view: lineCount(out && out.innerText), text: out ? out.innerText : '', stdout,
              outside};
    }
    const snap = cell.querySelector('.nbflow-liveview');
    if (!snap) return {kind: '', width: null, style: '', classes: '', colour: '', header: '',
                       status: '', view: 0, text: '', stdout, outside};
    const fill = snap.querySelector('span > span[style*="width"]');
    const header = snap.firstElementChild;
    const word = header && header.querySelector('span[style*="color"]');  // coloured at the end
    const colour = fill ? getComputedStyle(fill).backgroundColor
      : word ? getComputedStyle(word).color : '';
    // without a bar, the end word's colour is the theme's (mixed): the word says which
    const WORDS = {succeeded: 'success', failed: 'danger', cancelled: 'warning'};
    const style = STYLES[colour] || (!fill && word ? WORDS[word.innerText.trim()] || '' : '');
    const head = header ? header.innerText : '';
    const pre = [...snap.children].find((c) => c.tagName === 'PRE' && !c.style.color);
    return {kind: 'static', width: fill ? parseFloat(fill.style.width) : null, style,
            classes: 'progress-bar' + (style ? ' progress-bar-' + style : ''), colour,
            header: head, status: head.split(' · ')[2] || '',
            view: lineCount(pre && pre.innerText), text: snap.textContent, stdout, outside};
  };
"""

SAMPLER = (
    """([cells, period]) => {"""
    + VIEW_JS
    + """
  const state = (i) => {
    const v = viewOf(i);
    if (!v) return null;
    return {width: v.width, style: v.style, status: v.status, view: v.view, stdout: v.stdout,
            kind: v.kind};
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
)

STOP_SAMPLER = """() => {
  const rec = window.__nbflowSampler;
  clearInterval(rec.timer);
  for (const list of rec.samples) for (const s of list) delete s.key;
  return {samples: rec.samples, ticks: rec.ticks, maxGap: rec.maxGap,
          span: performance.now() - rec.t0};
}"""

BAR_AT_LEAST = (
    """([i, least]) => {"""
    + VIEW_JS
    + """
  const v = viewOf(i);
  return !!v && v.width !== null && v.width >= least;
}"""
)

# The view of cell ``i`` (VIEW_JS's fields), or null.
BAR_STATE = (
    """(i) => {"""
    + VIEW_JS
    + """
  const v = viewOf(i);
  return v && v.kind ? v : null;
}"""
)

# Whether the view of cell ``i`` has ``text`` among its output lines ("show all" included).
VIEW_HAS = (
    """([i, text]) => {"""
    + VIEW_JS
    + """
  const v = viewOf(i);
  return !!v && v.text.includes(text);
}"""
)

# Whether the view of cell ``i`` shows an end state (green, red or amber).
VIEW_ENDED = (
    """(i) => {"""
    + VIEW_JS
    + """
  const v = viewOf(i);
  return !!v && ['success', 'danger', 'warning'].includes(v.style);
}"""
)

# ``status`` is a regular expression, matched without regard to case: the header's words (e.g.
# ``succeeded|SUCCESS``: the view says "succeeded" since issue 13, "SUCCESS" before).
CELL_STATUS_IS = (
    """([i, style, status]) => {"""
    + VIEW_JS
    + """
  const v = viewOf(i);
  return !!v && v.style === style && new RegExp(status, 'i').test(v.header);
}"""
)

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
        page.goto(lab.page_url(name))
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
        raise AssertionError(f"{lab.title} shows a dialog: {text!r}")


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
        menu(page, "Run", "Run All Cells")

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


def status_is(state: dict[str, Any] | None, words: str) -> bool:
    """Whether a ``BAR_STATE`` says one of ``words`` (a regular expression, any case)."""
    return state is not None and re.fullmatch(words, state["status"], re.I) is not None


# -- menus, dialogs and kernels -----------------------------------------------------------------


def menu(page: Page, top: str, item: str) -> None:
    """Click ``top`` in the menu bar, then ``item`` in its menu (JupyterLab and Notebook 7 share
    Lumino's menus)."""
    page.click(f".lm-MenuBar-itemLabel:text-is('{top}')")
    page.click(f".lm-Menu-itemLabel:text-is('{item}')")


def accept_dialog(page: Page, button: str, timeout: float = 30) -> str:
    """Wait for a dialog, press its button ``button``, wait until it is gone; the dialog's text."""
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=timeout * MS)
    text = dialog.inner_text()
    dialog.locator(".jp-Dialog-button", has_text=button).click()
    dialog.wait_for(state="detached", timeout=timeout * MS)
    return text


def kernel_pids(lab: Lab) -> set[int]:
    """The kernels of the server that run now (their command line names its runtime folder)."""
    return {p for p in pids_with(str(lab.base / "runtime")) if alive(p)}


def restart_kernel(lab: Lab, page: Page, name: str) -> int:
    """Kernel > Restart Kernel…, "Restart" in the dialog; wait until the old kernel process has
    exited, a new one runs and the page is connected to it, idle. The new kernel's pid."""
    [old] = kernel_pids(lab)
    menu(page, "Kernel", "Restart Kernel…")
    accept_dialog(page, "Restart")
    wait_until(lambda: not alive(old) and len(kernel_pids(lab)) == 1, timeout=60, interval=0.1)
    wait_until(lambda: kernel_connected(lab, name), timeout=60, interval=0.1)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=30 * MS)
    [new] = kernel_pids(lab)
    return new


def shut_kernel_down(lab: Lab, page: Page) -> None:
    """Kernel > Shut Down Kernel (confirming if asked); wait until no kernel runs."""
    menu(page, "Kernel", "Shut Down Kernel")
    with contextlib.suppress(PlaywrightTimeoutError):  # JupyterLab 4 asks nothing; be ready
        accept_dialog(page, "Shut Down", timeout=3)
    wait_until(lambda: not kernel_pids(lab), timeout=60, interval=0.1)


def save_notebook(lab: Lab, page: Page, name: str) -> dict[str, Any]:
    """Press Ctrl+S in the notebook and wait until the file on disk changed; its JSON."""
    path = lab.notebooks / name
    before = path.stat().st_mtime_ns
    page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})  # command mode, focused
    page.keyboard.press("Control+s")
    wait_until(lambda: path.stat().st_mtime_ns != before, timeout=30, interval=0.1)
    # the server writes the file whole; read it once it parses
    wait_until(lambda: _parses(path), timeout=10, interval=0.1)
    return dict(json.loads(path.read_text()))


def _parses(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except ValueError:
        return False
    return True


def run_all_again(lab: Lab, page: Page, last: int, marker: str, timeout: float = 60) -> None:
    """Run > Run All Cells in a notebook whose cells have run before (their prompts already show
    numbers), then wait until the output of cell ``last`` contains ``marker`` (e.g. the new
    kernel's pid, printed by that cell). Pressed again once if nothing queued within 10 s."""
    queued = """([last, marker]) => {
      const cells = document.querySelectorAll('.jp-Notebook .jp-Cell');
      const busy = [...cells].some((c) => /\\[\\*\\]/.test(
        (c.querySelector('.jp-InputPrompt') || {}).innerText || ''));
      const out = cells[last] && cells[last].querySelector('.jp-OutputArea');
      return busy || (!!out && out.innerText.includes(marker));
    }"""
    for attempt in (1, 2):
        menu(page, "Run", "Run All Cells")
        try:
            page.wait_for_function(queued, arg=[last, marker], timeout=10 * MS)
            break
        except PlaywrightTimeoutError:
            if attempt == 2:
                raise
            lab.say("Run All did not queue a cell within 10 s: pressing again")
    page.wait_for_function(
        """([last, marker]) => {
          const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[last];
          const out = cell && cell.querySelector('.jp-OutputArea');
          return !!out && out.innerText.includes(marker);
        }""",
        arg=[last, marker],
        timeout=timeout * MS,
    )


def brief(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """A view's state for a report line: without its text."""
    keep = ("kind", "width", "style", "status", "view", "stdout")
    return None if state is None else {k: state[k] for k in keep if k in state}


def expect(page: Page, script: str, arg: Any, what: str, timeout: float = 60) -> None:
    """``page.wait_for_function(script, arg)``; on time out, an AssertionError that says ``what``
    did not happen and what the cell (``arg``, or its first item) shows instead."""
    try:
        page.wait_for_function(script, arg=arg, timeout=timeout * MS, polling=20)
    except PlaywrightTimeoutError:
        index = arg[0] if isinstance(arg, list) else arg
        state = brief(page.evaluate(BAR_STATE, index))
        shown = cell(page, index).locator(".jp-OutputArea").inner_text()
        raise AssertionError(
            f"{what}: not within {timeout:g} s; cell {index}'s view: {state}; "
            f"its outputs end with {shown[-800:]!r}"
        ) from None
