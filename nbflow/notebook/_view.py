"""LiveView: a live display of one workflow, fed by one reader thread, throttled.

The rules it follows (see ``REFERENCE.md``): the display is created and shown from the main thread,
in the cell, before its reader thread starts; after that the thread only changes widget traits
(text reaches the ``Output`` widget by assigning ``outputs``, never ``with out:``), at most ``rate``
times per second however fast the streams run. Without a widget frontend (plain IPython, a script)
it shows a display handle instead, updated with text/HTML.
"""

from __future__ import annotations

import functools
import html
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import nbflow
from nbflow._errors import RuntimeClosedError, StreamTimeoutError, WorkflowNotFoundError
from nbflow._runtime import Runtime
from nbflow.notebook._state import Frame, Throttle, ViewState, text_bar

__all__ = [
    "HandleRenderer",
    "LiveView",
    "Snapshot",
    "WidgetRenderer",
    "close_all_views",
    "in_kernel",
    "widget_frontend",
]

logger = logging.getLogger("nbflow.notebook")

_WAIT = 0.1  # seconds the reader waits for new items before it looks around
_IDLE_WAIT = 0.25  # the same, after a second without new items (fewer queries when idle)
_SLICE = 0.25  # seconds spent on one stream before the others get their turn
_DISCOVER = 0.5  # seconds between looks for new streams (keys=None)
_HISTORY = 10_000  # output items kept for "show all"
_COLOURS = {"success": "#4caf50", "danger": "#e53935", "warning": "#fb8c00", "info": "#29b6f6"}

_views: weakref.WeakSet[LiveView] = weakref.WeakSet()


def in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel (where a display handle updates in place)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def widget_frontend() -> bool:
    """Whether this runs in a Jupyter kernel (whose frontend can show widgets) with ipywidgets."""
    if not in_kernel():
        return False
    from IPython import get_ipython

    if not any(cls.__name__ == "ZMQInteractiveShell" for cls in type(get_ipython()).__mro__):
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def close_all_views() -> None:
    """Stop the reader of every open view (their displays stay as they are)."""
    for view in list(_views):
        view.close()


# -- renderers -------------------------------------------------------------------------------


class Renderer(Protocol):
    """Draws frames: ``show`` from the main thread once, then ``apply`` from any thread."""

    def show(self) -> None: ...

    def apply(self, frame: Frame) -> None: ...


def header_html(f: Frame) -> str:
    """The header: name, short id, status (coloured at the end) and elapsed time."""
    colour = _COLOURS.get(f.bar_style if f.final else "", "inherit")
    parts = [f"<b>{html.escape(f.title)}</b>"]
    if f.workflow_id:
        parts.append(f'<code title="{html.escape(f.workflow_id)}">{html.escape(f.short_id)}</code>')
    parts.append(f'<span style="color:{colour};font-weight:bold">{html.escape(f.status)}</span>')
    if f.elapsed:
        parts.append(html.escape(f.elapsed))
    return " &middot; ".join(parts)


class Snapshot:
    """One frame as a displayable object: HTML in notebooks, a text bar elsewhere.

    Args:
        frame: What to show.
    """

    def __init__(self, frame: Frame) -> None:
        self.frame = frame

    def __repr__(self) -> str:
        f = self.frame
        lines = [" ".join(p for p in (f.title, f"[{f.short_id}]" if f.workflow_id else "", f.status, f.elapsed) if p)]  # fmt: skip
        if f.show_bar:
            lines.append(
                f"{text_bar(f.bar_value / f.bar_max if f.bar_max else 0.0)} {f.label}".rstrip()
            )
        if f.error:
            lines.append(f.error)
        if f.show_output and (f.lines or f.note):
            lines.append(f.text.rstrip("\n"))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        f = self.frame
        parts = [f"<div>{header_html(f)}</div>"]
        if f.show_bar:
            width = 100 * f.bar_value / f.bar_max if f.bar_max else 0.0
            colour = _COLOURS.get(f.bar_style, "#2196f3")
            parts.append(
                '<div><span style="display:inline-block;width:20em;height:0.9em;'
                'background:#e0e0e0;vertical-align:middle">'
                f'<span style="display:block;width:{width:.1f}%;height:100%;background:{colour}">'
                f"</span></span> {html.escape(f.label)}</div>"
            )
        if f.error:
            parts.append(f'<pre style="color:{_COLOURS["danger"]}">{html.escape(f.error)}</pre>')
        if f.show_output and (f.lines or f.note):
            parts.append(f"<pre>{html.escape(f.text)}</pre>")
        return f'<div class="nbflow-liveview">{"".join(parts)}</div>'


class HandleRenderer:
    """Draws frames into display handles: ``display(..., display_id=True)``, then ``update``.

    Args:
        frame: The first frame (shown by :meth:`show`).
        handles: Handles to update (anything with an ``update(obj)`` method).
        live: Update with every frame. False (outside a kernel, where an update prints anew,
            e.g. terminal IPython): only with the last frame, when the view is complete.
    """

    def __init__(self, frame: Frame, handles: Iterable[Any] = (), *, live: bool = True) -> None:
        self.frame = frame
        self.handles = list(handles)
        self.live = live

    def show(self) -> None:
        from IPython.display import display

        handle = display(Snapshot(self.frame), display_id=True)  # type: ignore[no-untyped-call]
        if handle is not None:  # None outside IPython, where display() just prints
            self.handles.append(handle)

    def apply(self, frame: Frame) -> None:
        last, self.frame = self.frame, frame
        if self.live or (frame.complete and not last.complete):
            for handle in self.handles:
                handle.update(Snapshot(frame))


@functools.cache
def _box_class() -> type:
    import ipywidgets as widgets

    class LiveViewBox(widgets.VBox):  # type: ignore[misc]
        """A VBox whose text/plain is stable (nbval compares it)."""

        def __repr__(self) -> str:
            return "<nbflow LiveView>"

    return LiveViewBox


class WidgetRenderer:
    """Draws frames into ipywidgets: a header, a bar with its label and a Cancel button, an error
    line, an output area and a "Show all" toggle, in one box (:attr:`box`).

    Args:
        frame: The first frame.
        on_cancel: Called (in the kernel's main thread) when Cancel is clicked.
        on_show_all: Called with the toggle's new value.
    """

    def __init__(
        self, frame: Frame, on_cancel: Callable[[], None], on_show_all: Callable[[bool], None]
    ) -> None:
        import ipywidgets as w

        self.header = w.HTML()
        self.bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout=w.Layout(width="45%"))
        self.label = w.HTML()
        self.cancel_button = w.Button(
            description="Cancel", icon="stop", tooltip="Cancel the workflow", layout=w.Layout(width="auto")
        )  # fmt: skip
        self.error = w.HTML()
        self.output = w.Output(layout=w.Layout(max_height="30em", overflow="auto"))
        self.show_all = w.ToggleButton(
            value=False, description="Show all", tooltip="Show every item read so far",
            layout=w.Layout(width="auto"),
        )  # fmt: skip
        self.box = _box_class()(
            [self.header, w.HBox([self.bar, self.label, self.cancel_button]), self.error,
             self.output, self.show_all]
        )  # fmt: skip
        self.frame: Frame | None = None
        self.apply(frame)
        self.cancel_button.on_click(lambda _button: on_cancel())
        self.show_all.observe(lambda change: on_show_all(bool(change["new"])), names="value")

    def show(self) -> None:
        from IPython.display import display

        display(self.box)  # type: ignore[no-untyped-call]

    def apply(self, frame: Frame) -> None:
        old = self.frame
        self.frame = frame
        self.header.value = header_html(frame)
        bar = self.bar
        with bar.hold_sync():  # one message for the three traits
            bar.max = frame.bar_max  # first: the value must fit
            bar.value = frame.bar_value
            bar.bar_style = frame.bar_style
        shown = "" if frame.show_bar else "none"
        bar.layout.display = self.label.layout.display = shown
        self.label.value = html.escape(frame.label)
        self.error.value = (
            f'<pre style="color:{_COLOURS["danger"]};margin:0">{html.escape(frame.error)}</pre>'
            if frame.error
            else ""
        )
        self.cancel_button.disabled = not frame.cancellable
        if old is None or (old.lines, old.note) != (frame.lines, frame.note):
            text = frame.text
            out = {"output_type": "stream", "name": "stdout", "text": text}
            self.output.outputs = (out,) if text else ()  # never `with out:` from a thread
        self.output.layout.display = self.show_all.layout.display = (
            "" if frame.show_output else "none"
        )
        self.show_all.description = "Show last items" if frame.show_all else "Show all"


# -- the view --------------------------------------------------------------------------------


class LiveView:
    """A live view of a workflow: header, progress bar, output of its other streams, Cancel.

    Opened on a running or finished workflow, it replays the streams from offset 0. One reader
    thread (``nbflow-view-<id8>``) reads them; it starts after the view is displayed and ends by
    itself when the workflow is final and its streams are drained (or at :meth:`close`).

    Args:
        workflow_id: The workflow to show; None for a view attached later (:meth:`attach`).
        keys: The streams to show (a key or several); None: every stream of the workflow,
            including those it creates later. ``"progress"`` feeds the bar, the others the output.
        runtime: The runtime (default: ``nbflow.runtime()``).
        max_items: How many output items are shown (the last ones; "Show all" shows all, up to
            10,000).
        rate: Frontend updates per second at most.
        widgets: Draw ipywidgets (True), or a display handle updated with text/HTML (False);
            None: widgets when running in a Jupyter kernel.
        name: The workflow's name, shown until its record is read.

    Raises:
        WorkflowNotFoundError: No workflow has this id.

    Example:
        >>> LiveView(handle.workflow_id).display()
    """

    def __init__(
        self,
        workflow_id: str | None,
        keys: Iterable[str] | str | None = None,
        *,
        runtime: Runtime | None = None,
        max_items: int = 20,
        rate: float = 20.0,
        widgets: bool | None = None,
        name: str | None = None,
    ) -> None:
        self._runtime = runtime if runtime is not None else nbflow.runtime()
        if workflow_id is not None and not self._runtime.exists(workflow_id):
            raise WorkflowNotFoundError(workflow_id, self._runtime.database)
        self.workflow_id = workflow_id
        self._state = ViewState(workflow_id, name, max_items=max_items, history=_HISTORY)
        self._auto_keys = keys is None
        for key in [keys] if isinstance(keys, str) else keys or ():
            if not isinstance(key, str):
                raise TypeError(f"LiveView keys are stream keys (str), not {key!r}.")
            self._state.add_key(key)
        self._throttle = Throttle(rate)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._show_all = False
        self._offsets: dict[str, int] = {}
        self._drained: set[str] = set()
        self._read_at = 0.0  # when items last arrived (monotonic)
        self._frame = self._state.frame(time.time())
        self.widgets = widget_frontend() if widgets is None else widgets
        self.renderer: Renderer = (
            WidgetRenderer(self._frame, self._on_cancel, self._on_show_all)
            if self.widgets
            else HandleRenderer(self._frame, live=in_kernel())
        )
        _views.add(self)

    def __repr__(self) -> str:
        f = self._frame
        return f"<LiveView {f.name!r} {f.short_id or '-'} {f.status}>"

    def _ipython_display_(self) -> None:
        self.display()

    # -- public ------------------------------------------------------------------------------

    @property
    def frame(self) -> Frame:
        """What the display shows now (the last frame applied)."""
        return self._frame

    @property
    def status(self) -> str:
        """The workflow's status as the view knows it (``starting`` before it is attached)."""
        return self._state.status

    @property
    def widget(self) -> Any:
        """The ipywidgets box (None without widgets)."""
        return self.renderer.box if isinstance(self.renderer, WidgetRenderer) else None

    @property
    def closed(self) -> bool:
        """Whether the reader is done: it showed everything, or :meth:`close` stopped it."""
        return self._stop.is_set() or self._ended.is_set()

    @property
    def updates(self) -> int:
        """How many times the view updated the frontend."""
        return self._throttle.count

    @property
    def update_span(self) -> float:
        """Seconds from the first frontend update to the last."""
        return self._throttle.span

    def display(self) -> None:
        """Show the view in the current cell, then start its reader. Call from the main thread."""
        self.renderer.show()
        self.start()

    def start(self) -> None:
        """Start the reader thread (once; :meth:`display` calls it)."""
        if self.workflow_id is None or self._thread is not None or self._stop.is_set():
            return
        self._thread = threading.Thread(
            target=self._run, name=f"nbflow-view-{self.workflow_id[:8]}", daemon=True
        )
        self._thread.start()

    def attach(self, workflow_id: str) -> None:
        """Show the workflow ``workflow_id`` in a view made with ``workflow_id=None``; starts
        its reader."""
        if self.workflow_id is not None:
            raise RuntimeError(f"This LiveView already shows workflow {self.workflow_id!r}.")
        if not self._runtime.exists(workflow_id):
            raise WorkflowNotFoundError(workflow_id, self._runtime.database)
        with self._lock:
            self.workflow_id = self._state.workflow_id = workflow_id
            self._state.status = "PENDING"
        self._apply(force=True)
        self.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the reader has shown everything (or was closed); False on timeout."""
        if self._thread is None:
            raise RuntimeError("This LiveView has not started: call .display() or .start().")
        return self._ended.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the reader thread (the display stays as it is)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # -- frontend updates ---------------------------------------------------------------------

    def _apply(self, force: bool = False) -> None:
        """Draw the current state, unless the throttle says wait (``force``: draw anyway)."""
        now = time.monotonic()
        if not force and not self._throttle.ready(now):
            return
        with self._lock:
            frame = self._state.frame(time.time(), show_all=self._show_all)
            if frame == self._frame:
                return
            self.renderer.apply(frame)
            self._frame = frame
            self._throttle.record(now)

    def _on_show_all(self, value: bool) -> None:
        self._show_all = value
        self._apply(force=True)

    def _on_cancel(self) -> None:
        if self.workflow_id is None or self._state.final:
            return
        with self._lock:
            self._state.cancel_requested = True
        self._cancel.set()  # the reader cancels: the button's callback returns at once
        self._apply(force=True)
        if self._thread is None or self._ended.is_set():
            self._cancel_now()
            self._apply(force=True)

    def _fail(self, exc: BaseException) -> None:
        """Show that the workflow could not start."""
        with self._lock:
            self._state.status = "not started"
            self._state.complete = True
            self._state.error = f"{type(exc).__qualname__}: {exc}"
        self._apply(force=True)

    # -- the reader thread ---------------------------------------------------------------------

    def _run(self) -> None:
        # The display already shows the first frame: a replay that takes less than one interval
        # then shows up as one update, not as a partial frame and the full one.
        self._throttle.hold(time.monotonic())
        try:
            self._load()
            self._loop()
        except RuntimeClosedError:
            pass  # the runtime closed under the view: it keeps what it read
        except Exception as exc:
            if self._runtime.closed:
                return  # the same, found by a query on the closed database
            logger.debug("LiveView of %s stopped", self.workflow_id, exc_info=True)
            with self._lock:
                self._state.error = f"The live view stopped: {type(exc).__qualname__}: {exc}"
        finally:
            if self._cancel.is_set() and not self._state.final:
                self._cancel_now()
            with self._lock:
                self._state.complete = True
            self._apply(force=True)  # the final update always happens
            self._ended.set()

    def _load(self) -> None:
        assert self.workflow_id is not None
        try:
            row = self._runtime.workflow_row(self.workflow_id)
        except WorkflowNotFoundError:  # started a moment ago: its record waits for the committer
            self._runtime.flush(10.0)
            row = self._runtime.workflow_row(self.workflow_id)
        with self._lock:
            self._state.name = row.name
            self._state.created_at = row.created_at
        if row.status != "PENDING":
            self._finish()

    def _finish(self) -> None:
        """Take the workflow's final status, end time and error from its record."""
        assert self.workflow_id is not None
        row = self._runtime.workflow_row(self.workflow_id)
        with self._lock:
            self._state.status = row.status
            self._state.ended_at = row.ended_at
            if row.error:
                self._state.error = row.error

    def _discover(self) -> None:
        assert self.workflow_id is not None
        found = [info.key for info in self._runtime.list_streams(self.workflow_id)]
        with self._lock:
            for key in sorted(found, key=lambda k: k != self._state.progress_key):
                self._state.add_key(key)

    def _going(self) -> bool:
        """Whether to go on; checked before each query (none once the runtime is closing)."""
        return not self._stop.is_set() and not self._runtime.closed

    def _loop(self) -> None:
        state = self._state
        next_look = 0.0
        looked_at_end = not self._auto_keys  # whether the streams were listed after the end
        while self._going():
            if self._cancel.is_set():
                self._cancel.clear()
                self._cancel_now()
            if self._auto_keys and (time.monotonic() >= next_look or (state.final and not looked_at_end)):  # fmt: skip
                looked_at_end = state.final
                self._discover()
                next_look = time.monotonic() + _DISCOVER
            todo = [key for key in state.keys if key not in self._drained]
            wait = _WAIT if time.monotonic() - self._read_at < 1.0 else _IDLE_WAIT
            for key in todo:
                if not self._going():
                    return
                self._read(key, max(0.02, wait / len(todo)), _SLICE / len(todo))
            if not self._going():
                return
            if not state.final and self._runtime.status(self.workflow_id or "").is_final:
                self._finish()
            if state.final and looked_at_end and all(k in self._drained for k in state.keys):
                return
            if not todo:
                self._stop.wait(wait)
            self._apply()

    def _read(self, key: str, wait: float, slice_: float) -> None:
        """Read ``key``'s new items for up to ``slice_`` s, waiting ``wait`` s for each."""
        assert self.workflow_id is not None
        offset = self._offsets.get(key, 0)
        items = self._runtime.read_stream(self.workflow_id, key, start=offset, timeout=wait)
        deadline = time.monotonic() + slice_
        try:
            for value in items:
                offset += 1
                with self._lock:
                    self._state.feed(key, value)
                self._apply()
                if self._stop.is_set() or self._cancel.is_set() or time.monotonic() > deadline:
                    return
            self._drained.add(key)  # closed, and every item read
        except StreamTimeoutError:
            pass  # nothing new for now
        finally:
            if offset > self._offsets.get(key, 0):
                self._read_at = time.monotonic()
            self._offsets[key] = offset
            close = getattr(items, "close", None)
            if close is not None:
                close()  # unsubscribes

    def _cancel_now(self) -> None:
        assert self.workflow_id is not None
        try:
            self._runtime.cancel(self.workflow_id)
        except Exception as exc:
            with self._lock:
                self._state.cancel_requested = False
                self._state.error = f"Cancel failed: {type(exc).__qualname__}: {exc}"
