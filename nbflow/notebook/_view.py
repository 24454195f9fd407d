"""LiveView: a live display of one workflow, fed by one reader thread, throttled.

The rules it follows (ipywidgets' and ipykernel's for threads): the display is created and shown from the main thread,
in the cell, before its reader thread starts; after that the thread only changes widget traits
(text reaches the ``Output`` widget by assigning ``outputs``, never ``with out:``), at most ``rate``
times per second however fast the streams run. Without a widget frontend (plain IPython, a script)
it shows a display handle instead, updated with text/HTML. The renderers that draw it are in
:mod:`nbflow.notebook._render`; its reader thread reads through a
:class:`~nbflow.notebook._follow.Follower`.

A view always follows the stream ``stdout`` (what the workflow printed or logged) besides the keys
asked for. Its header reads the status as a person would: ``running``, ``enqueued``, or
``interrupted`` for a PENDING workflow that nothing runs (no execution in this process and, on a
shared database, no live executor elsewhere). When its reader ends, the view leaves a static
rendering of its last frame in the notebook (:meth:`Renderer.finish`). Opening a view of a workflow
that another view of this kernel follows turns the older one into such a static rendering that
says the view continues below.

Views may be opened and closed from several threads at once (two threads launching the same
call): which view follows a workflow is decided under one lock, so of two views attached at once
the later stops the earlier, and a reader thread is published only once it has started, so a
:meth:`LiveView.close` from another thread never joins a thread that has not started.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import nbflow
from nbflow._errors import RuntimeClosedError, WorkflowNotFoundError
from nbflow.engine._runtime import Runtime
from nbflow.notebook._follow import Follower
from nbflow.notebook._render import HandleRenderer, Renderer, WidgetRenderer
from nbflow.notebook._state import Frame, Throttle, ViewState
from nbflow.text._format import format_error

__all__ = ["LiveView", "close_all_views", "in_kernel", "widget_frontend"]

logger = logging.getLogger("nbflow.notebook")

_HISTORY = 10_000  # output items kept for "show all"
_STDOUT = "stdout"  # the stream of what a workflow printed or logged: always followed

_views: weakref.WeakSet[LiveView] = weakref.WeakSet()
#: Guards ``_views`` and which view follows a workflow: of two views of one workflow attached at
#: once (two threads launching the same call), the later stops the earlier, never each the other.
_views_lock = threading.Lock()


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
    with _views_lock:
        views = list(_views)
    for view in views:
        view.close()


# -- the view --------------------------------------------------------------------------------


class LiveView:
    """A live view of a workflow: header, progress bar, output of its other streams, Cancel.

    Opened on a running, interrupted, resumed or finished workflow, it replays the streams from
    offset 0. One reader thread (``nbflow-view-<id8>``) reads them; it starts after the view is
    displayed and ends by itself when the workflow is final and its streams are drained (or at
    :meth:`close`); then the view leaves a static rendering of its last frame.

    Args:
        workflow_id: The workflow to show; None for a view attached later (:meth:`attach`).
        keys: The streams to show (a key or several; ``stdout`` is always followed too); None:
            every stream of the workflow, including those it creates later. ``"progress"`` feeds
            the bar, the others the output.
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
        if not self._auto_keys:
            self._state.add_key(_STDOUT)
        self._throttle = Throttle(rate)
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()  # the reader is started, or found, under it
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._show_all = False
        self._notice = ""  # a line the static rendering shows under the header
        #: Says, once the workflow has ended, a line the static rendering shows (e.g. what a
        #: re-run reused); None: nothing.
        self.ending_note: Callable[[], str | None] | None = None
        self._shown = False
        self._frame = self._state.frame(time.time())
        self.widgets = widget_frontend() if widgets is None else widgets
        self.renderer: Renderer = (
            WidgetRenderer(self._frame, self._on_cancel, self._on_show_all, self._source)
            if self.widgets
            else HandleRenderer(self._frame, live=in_kernel())
        )
        with _views_lock:
            _views.add(self)

    def __repr__(self) -> str:
        f = self._frame
        return f"<LiveView {f.name!r} {f.short_id or '-'} {f.status}>"

    def _ipython_display_(self) -> None:
        self.display()

    @classmethod
    def follow(
        cls,
        workflow_id: str,
        keys: Iterable[str] | str | None = ("progress",),
        *,
        runtime: Runtime | None = None,
        **options: Any,
    ) -> LiveView:
        """Show a view of ``workflow_id`` in the current cell and follow it live: for a workflow
        that runs, was just resumed (``resume``, ``recover``, a launch that found its run), is
        interrupted, or has ended. An older view of it in this kernel turns static, saying the
        view continues here. Call from the main thread (a cell).

        Args:
            workflow_id: The workflow.
            keys: The streams to show (``stdout`` is always followed too); None: all of them.
            runtime: The runtime (default: ``nbflow.runtime()``).
            **options: The other :class:`LiveView` arguments (``max_items``, ``rate``, …).

        Returns:
            The view, displayed, its reader started.
        """
        view = cls(workflow_id, keys, runtime=runtime, **options)
        view.display()
        return view

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
        """Show the view in the current cell, then start its reader. Call from the main thread.

        Another view of the same workflow that this kernel still shows live stops and turns
        static ("continues below"), unless the workflow has ended (it then finishes, showing the
        end). A view already shown is not shown again (``follow``'s result shows once).
        """
        with _views_lock:
            if self._shown:
                return
            self._shown = True
            older = self._others()
        if older and not self._workflow_ended():
            self._supersede(older)
        self.renderer.show()
        self.start()

    def _others(self) -> list[LiveView]:
        """The other live views of this view's workflow (the caller holds ``_views_lock``)."""
        if self.workflow_id is None:
            return []
        return [
            view
            for view in _views
            if view is not self
            and view._shown
            and not view._ended.is_set()
            and view.workflow_id == self.workflow_id
        ]

    def _workflow_ended(self) -> bool:
        """Whether this view's workflow has a final status (False when that cannot be read)."""
        try:
            return self._runtime.status(self.workflow_id or "").is_final
        except nbflow.NbflowError:
            return False

    @staticmethod
    def _supersede(older: list[LiveView]) -> None:
        """Stop the views ``older``; each leaves a static "continues below"."""
        for view in older:
            view._notice = "This view continues below (a newer view of this workflow)."
            view.close()

    def start(self) -> None:
        """Start the reader thread (once; :meth:`display` and :meth:`attach` call it).

        The thread is published (and :meth:`close` can join it) only once it has started. A
        view closed before its reader started (a newer view of its workflow superseded it)
        ends at once: it leaves its static rendering, and :meth:`wait` returns.
        """
        with self._start_lock:
            if self.workflow_id is None or self._thread is not None or self._ended.is_set():
                return
            if self._stop.is_set():
                self._end()
                return
            thread = threading.Thread(
                target=self._run, name=f"nbflow-view-{self.workflow_id[:8]}", daemon=True
            )
            thread.start()
            self._thread = thread

    def attach(self, workflow_id: str) -> None:
        """Show the workflow ``workflow_id`` in a view made with ``workflow_id=None``; starts
        its reader."""
        if self.workflow_id is not None:
            raise RuntimeError(f"This LiveView already shows workflow {self.workflow_id!r}.")
        if not self._runtime.exists(workflow_id):
            raise WorkflowNotFoundError(workflow_id, self._runtime.database)
        with _views_lock:
            with self._lock:
                self.workflow_id = self._state.workflow_id = workflow_id
                self._state.status = "PENDING"
            older = self._others()
        self._supersede(older)
        self._apply(force=True)
        self.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the reader has shown everything (or was closed); False on timeout."""
        with self._start_lock:
            started = self._thread is not None or self._ended.is_set()
        if not started:
            raise RuntimeError("This LiveView has not started: call .display() or .start().")
        return self._ended.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the reader thread; the display becomes a static rendering of the last frame.

        Safe from any thread at any time: a reader being started is joined once it runs, one
        not started yet never starts (:meth:`start` ends the view instead).
        """
        self._stop.set()
        with self._start_lock:
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

    def _source(self) -> tuple[Runtime, str | None]:
        return self._runtime, self.workflow_id  # what the Timeline toggle charts

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

    def not_started(self, exc: BaseException) -> None:
        """Show that the workflow could not start, because of ``exc``; the view ends (a
        static rendering that says why). For a view made with ``workflow_id=None`` whose
        workflow's start raised."""
        with self._lock:
            self._state.status = "not started"
            self._state.error = format_error(exc)
        self._stop.set()  # no reader will start
        self._end()

    # -- the reader thread ---------------------------------------------------------------------

    def _run(self) -> None:
        # The display already shows the first frame: a replay that takes less than one interval
        # then shows up as one update, not as a partial frame and the full one.
        self._throttle.hold(time.monotonic())
        assert self.workflow_id is not None
        follower = Follower(
            self._runtime,
            self.workflow_id,
            self._state,
            self._lock,
            self._apply,
            self._stop,
            self._cancel,
            self._cancel_now,
            auto_keys=self._auto_keys,
        )
        try:
            follower.load()
            follower.loop()
        except RuntimeClosedError:
            self._closed_under()  # the runtime closed under the view: it keeps what it read
        except Exception as exc:
            if self._runtime.closed:
                self._closed_under()  # the same, found by a query on the closed database
            else:
                logger.debug("LiveView of %s stopped", self.workflow_id, exc_info=True)
                with self._lock:
                    self._state.error = f"The live view stopped: {format_error(exc)}"
        finally:
            self._end()

    def _closed_under(self) -> None:
        """The runtime closed: nothing in this process runs the workflow any more."""
        with self._lock:
            if not self._state.final:
                self._state.running = False
                self._notice = self._notice or "The runtime of this view closed."

    def _end(self) -> None:
        """The last update: the final frame, then the static rendering that stays."""
        if self._cancel.is_set() and not self._state.final and not self._runtime.closed:
            self._cancel_now()
        with self._lock:
            self._state.complete = True
        self._apply(force=True)  # the final update always happens
        with self._lock:
            frame = self._state.frame(time.time(), show_all=self._show_all)
            notice = self._notice or self._closing_note(frame.final) or ""
            if not frame.final and not notice and self._stop.is_set() and frame.workflow_id:
                notice = (
                    f"This view stopped following: %nbflow watch {frame.workflow_id} follows it."
                )
            try:
                self.renderer.finish(frame, notice)
            except Exception:  # the frontend is gone (kernel shutting down): nothing to update
                logger.debug("LiveView of %s: no static rendering", self.workflow_id, exc_info=True)
        self._ended.set()

    def _closing_note(self, final: bool) -> str | None:
        """What :attr:`ending_note` says once the workflow has ended (None: nothing)."""
        if not final or self.ending_note is None:
            return None
        try:
            return self.ending_note()
        except Exception:  # a note is never worth a broken view
            logger.debug("LiveView of %s: no ending note", self.workflow_id, exc_info=True)
            return None

    def _cancel_now(self) -> None:
        assert self.workflow_id is not None
        try:
            self._runtime.cancel(self.workflow_id)
        except Exception as exc:
            with self._lock:
                self._state.cancel_requested = False
                self._state.error = f"Cancel failed: {format_error(exc)}"
