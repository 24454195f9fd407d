"""Timeline: a Gantt chart of a workflow, live while it runs, a static SVG once it has ended.

Its HTML is one self-contained ``<svg>`` (no script, no external resource), so a saved notebook
shows it in nbconvert, on GitHub and after a kernel restart. The rows are described in
:mod:`nbflow.engine._timelayout`, the drawing in :mod:`nbflow.text._gantt`.

Shown in a kernel while the workflow runs, one reader thread (``nbflow-timeline-<id8>``) reads
the workflow again at most ``rate`` times a second (less often for a chart that takes long to
draw: it spends at most a quarter of its time drawing) and updates the display when the chart
changed; it stops by itself once everything drawn has ended (after drawing it) and at
:meth:`Timeline.close`. IPython is imported only inside the functions that need it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import nbflow
from nbflow._errors import WorkflowNotFoundError
from nbflow.engine._runtime import Runtime
from nbflow.engine._timelayout import timeline_chart
from nbflow.engine._timeline import TimelineData, gather_timeline
from nbflow.notebook._state import Throttle
from nbflow.text._gantt import render_svg

__all__ = ["Timeline"]

logger = logging.getLogger("nbflow.notebook")


class _Drawn:
    """One drawing, as a display shows it: the SVG (HTML) and a line of text."""

    def __init__(self, svg: str, text: str) -> None:
        self.svg, self.text = svg, text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return f'<div class="nbflow-timeline-view" style="overflow-x:auto">{self.svg}</div>'


class Timeline:
    """A Gantt chart of a workflow: its steps, stream writes, children and ``map`` items.

    Args:
        workflow_id: The workflow.
        runtime: The runtime (default: ``nbflow.runtime()``).
        rate: Redraws per second at most while it runs (shown live in a kernel).

    Raises:
        WorkflowNotFoundError: No workflow has this id.

    Example:
        >>> nbflow.notebook.Timeline(handle.workflow_id)   # the last expression of a cell
    """

    def __init__(
        self, workflow_id: str, *, runtime: Runtime | None = None, rate: float = 2.0
    ) -> None:
        self._runtime = runtime if runtime is not None else nbflow.runtime()
        if not self._runtime.exists(workflow_id):
            raise WorkflowNotFoundError(workflow_id, self._runtime.database)
        self.workflow_id = workflow_id
        self._throttle = Throttle(rate)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._thread: threading.Thread | None = None
        self._handles: list[Any] = []
        self._sinks: list[Callable[[str], None]] = []
        self._drawn: _Drawn | None = None
        self._final = False

    def __repr__(self) -> str:
        return repr(self._drawing())

    def _repr_html_(self) -> str:
        return self._drawing()._repr_html_()

    def _ipython_display_(self) -> None:
        self.display()

    # -- public ------------------------------------------------------------------------------

    def data(self) -> TimelineData:
        """Read the workflow and its children now (the runtime's writes so far included)."""
        self._runtime.flush()
        return gather_timeline(
            self._runtime.store, self.workflow_id, database=self._runtime.database
        )

    @property
    def svg(self) -> str:
        """The chart as drawn last (drawn now when it never was)."""
        return self._drawing().svg

    @property
    def final(self) -> bool:
        """Whether the chart drawn last can no longer change: everything in it has ended, or
        the workflow is interrupted (nothing runs it; a resume runs it again)."""
        return self._final

    @property
    def updates(self) -> int:
        """How many times the reader thread redrew the chart."""
        return self._throttle.count

    @property
    def closed(self) -> bool:
        """Whether the reader thread is done (or was never needed)."""
        return self._ended.is_set() or self._stop.is_set()

    def refresh(self) -> str:
        """Read and draw the chart now; its SVG."""
        alone = self._alone()  # (asked first: a workflow that ends meanwhile is read final)
        data = self.data()
        root = data.root.workflow
        interrupted = alone and root.status == "PENDING"
        text = f"nbflow timeline · {root.name} · {root.workflow_id} · {root.status}"
        text += f" · {sum(len(n.steps) for n in data.nodes()):,} steps"
        drawn = _Drawn(render_svg(timeline_chart(data, interrupted=interrupted)), text)
        with self._lock:  # an interrupted workflow changes no more, unless resumed
            self._drawn, self._final = drawn, data.final or interrupted
        return drawn.svg

    def _alone(self) -> bool:
        """Whether nothing runs the workflow: not this process, and on a database of one
        process, no other (on a shared one, another process may run it)."""
        store = self._runtime.store
        return store.single_process and self._runtime.execution(self.workflow_id) is None

    def on_update(self, sink: Callable[[str], None]) -> None:
        """Call ``sink(svg)`` (from the reader thread) after each redraw that changed the chart."""
        self._sinks.append(sink)

    def display(self) -> None:
        """Show the chart in the current cell; while the workflow runs (in a kernel), follow it."""
        from IPython import get_ipython
        from IPython.display import display

        drawing = _Drawn(self.refresh(), repr(self._drawing()))
        handle = display(drawing, display_id=True)  # type: ignore[no-untyped-call]
        if handle is not None:
            self._handles.append(handle)
        shell = get_ipython()  # (in a kernel, an update replaces the display; elsewhere it prints)
        if shell is not None and getattr(shell, "kernel", None) is not None:
            self.start()

    def start(self) -> None:
        """Start the reader thread, unless the chart is final or it runs already."""
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            if self._drawn is not None and self._final:
                self._ended.set()
                return
            self._thread = threading.Thread(
                target=self._run, name=f"nbflow-timeline-{self.workflow_id[:8]}", daemon=True
            )
            self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the reader thread has drawn the final chart (or was closed); False on
        timeout."""
        return self._ended.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the reader thread (the display keeps the last drawing). Safe from any thread."""
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if thread is None:
            self._ended.set()

    # -- the reader thread ---------------------------------------------------------------------

    def _drawing(self) -> _Drawn:
        with self._lock:
            drawn = self._drawn
        if drawn is None:
            self.refresh()
            with self._lock:
                drawn = self._drawn
        assert drawn is not None
        return drawn

    def _run(self) -> None:
        try:
            last = self.svg
            interval = max(self._throttle.interval, 0.05)
            while not self._stop.wait(interval):
                started = time.monotonic()
                svg = self.refresh()
                # a large chart redraws less often: never more than a quarter of the time
                interval = max(self._throttle.interval, 0.05, 3 * (time.monotonic() - started))
                if svg != last:
                    self._push(svg)
                    last = svg
                if self._final:
                    break
        except Exception:  # the runtime closed, or the frontend went away: keep what is shown
            logger.debug("Timeline of %s stopped", self.workflow_id, exc_info=True)
        finally:
            self._ended.set()

    def _push(self, svg: str) -> None:
        self._throttle.record(time.monotonic())
        drawing = self._drawing()
        for handle in self._handles:
            handle.update(drawing)
        for sink in self._sinks:
            sink(svg)
