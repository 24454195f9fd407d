"""Renderers of the live view: ipywidgets, a display handle updated in place, plain text.

A renderer draws :class:`~nbflow.notebook._state.Frame` objects: ``show`` once from the main
thread (in the cell), then ``apply`` from any thread, then ``finish`` once with the last frame.
:class:`WidgetRenderer` draws ipywidgets and after ``show`` only changes their traits (text
reaches its ``Output`` widget by assigning ``outputs``, never ``with out:``). It shows them under
a display id; ``finish`` replaces that output with a static :class:`Snapshot` of the last frame
(``update_display`` with HTML and text, without the widget mimetype), so a saved notebook shows
what happened without a kernel: reopened in JupyterLab, in nbconvert, on GitHub. Without a widget
frontend, :class:`HandleRenderer` shows a :class:`Snapshot` (HTML, or a plain-text bar for
terminals) in a display handle, updated with every frame in a kernel and only with the last frame
outside one, where an update prints anew. IPython and ipywidgets are imported only inside the
functions that need them.

A widget view whose kernel restarted is marked disconnected by the frontend (ipywidgets adds the
class ``jupyter-widgets-disconnected``); the view's CSS then hides its Cancel button and shows a
line saying it no longer updates, so it never looks alive.
"""

from __future__ import annotations

import functools
import html
import itertools
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol

from nbflow.notebook._saved import SavedState
from nbflow.notebook._state import Frame, earlier
from nbflow.notebook._theme import WRAP, fill, muted, text_colour, track
from nbflow.notebook._timetab import Source, TimelineTab
from nbflow.text._format import progress_line

__all__ = [
    "HandleRenderer",
    "Renderer",
    "Snapshot",
    "WidgetRenderer",
    "header_html",
]

_ID_CUT = 40  # characters of an id shown; a longer one is cut by CSS (whole in its title)
#: An id as the widget header shows it: monospace, not boxed (a static rendering's ``<code>``
#: would be boxed by JupyterLab's CSS).
_CODE_STYLE = "background:none;padding:0;font-size:inherit;color:inherit"
_ID_STYLE = (
    "display:inline-block;max-width:40ch;overflow:hidden;text-overflow:ellipsis;"
    "white-space:nowrap;vertical-align:bottom"
)
_BAR_WIDTH = "45%"  # of the view's width: the widget's bar
#: The static bar, as wide as the widget's: JupyterLab's HTML outputs are 20 px narrower (their
#: padding) than a widget's.
_STATIC_BAR_WIDTH = "calc(45% + 9px)"
_STATIC_LINES = 1000  # output lines a static rendering keeps under "show all"
#: What a widget view looks like once its kernel is gone (the frontend marks it disconnected).
_DISCONNECTED_CSS = (
    "<style>.nbflow-view .nbflow-stale,.nbflow-view .nbflow-stale-word{display:none}"
    ".nbflow-view.jupyter-widgets-disconnected .nbflow-stale{display:block;color:#757575}"
    ".nbflow-view.jupyter-widgets-disconnected .nbflow-stale-word{display:inline;color:#757575}"
    ".nbflow-view.jupyter-widgets-disconnected .nbflow-live-word{display:none}"
    ".nbflow-view.jupyter-widgets-disconnected .widget-hprogress,"
    ".nbflow-view.jupyter-widgets-disconnected .nbflow-label{opacity:0.4}"
    ".nbflow-view.jupyter-widgets-disconnected .nbflow-cancel{display:none}"
    ".nbflow-view.jupyter-widgets-disconnected .nbflow-eta{display:none}"
    ".nbflow-view .jupyter-widgets-disconnected::before{content:none}"
    # the output list follows new lines (scrolled to its end unless the reader scrolled up)
    ".nbflow-view .nbflow-output{display:flex;flex-direction:column-reverse}"
    ".nbflow-view .nbflow-output>*{flex-shrink:0}</style>"
)
_STALE = (
    '<div class="nbflow-stale">The kernel of this view stopped: it no longer updates. In a new '
    "kernel, once the workflow is defined, <code>nbflow.recover()</code> resumes interrupted "
    "workflows (the magic <code>%nbflow recover</code> needs <code>%load_ext nbflow</code> "
    "first).</div>"
)
_ETA = re.compile(r"ETA \S+")


class Renderer(Protocol):
    """Draws frames: ``show`` from the main thread once, ``apply`` from any thread, then
    ``finish`` once with the last frame."""

    def show(self) -> None: ...

    def apply(self, frame: Frame) -> None: ...

    def finish(self, frame: Frame, notice: str = "") -> None: ...


def header_html(f: Frame, *, live: bool = True) -> str:
    """The header: name, id, status word (coloured at the end) and elapsed time.

    Args:
        f: The frame.
        live: For the widget: a word that a view whose kernel stopped replaces (CSS); False
            for a static rendering (the word as it is).
    """
    colour = text_colour(f.bar_style if f.final else "")
    parts = [f"<b>{html.escape(f.title)}</b>"]
    if f.workflow_id:
        wid = html.escape(f.workflow_id)
        cut = f";{_ID_STYLE}" if len(f.workflow_id) > _ID_CUT else ""
        parts.append(f'<code title="{wid}" style="{_CODE_STYLE}{cut}">{wid}</code>')
    word = html.escape(f.word or f.status)
    if live and not f.final:  # a live word, which a view whose kernel stopped replaces (CSS)
        word = (
            f'<span class="nbflow-live-word">{word}</span>'
            '<span class="nbflow-stale-word">kernel stopped</span>'
        )
    parts.append(f'<span style="{colour};font-weight:bold">{word}</span>')
    if f.elapsed:
        parts.append(html.escape(f.elapsed))
    if f.events:
        parts.append(f'<span title="events (set_event)">{html.escape(f.events)}</span>')
    return " &middot; ".join(parts)


def _bar_html(f: Frame) -> str:
    width = 100 * f.bar_value / f.bar_max if f.bar_max else 0.0
    return (
        f'<div style="display:flex;align-items:center;gap:0.5em"><span style="flex:0 0 '
        f'{_STATIC_BAR_WIDTH};height:0.9em;background:{track()};margin:2px 0;box-sizing:border-box">'
        f'<span style="display:block;width:{width:.1f}%;height:100%;background:{fill(f.bar_style)}">'
        f"</span></span><span>{html.escape(f.label)}</span></div>"
    )


def _code(text: str) -> str:
    """``text`` escaped, its ```code``` spans as (unboxed) ``<code>``."""
    return re.sub(r"`([^`]+)`", rf'<code style="{_CODE_STYLE}">\1</code>', html.escape(text))


class Output(NamedTuple):
    """The output lines a static rendering shows.

    Attributes:
        folded: The earlier lines kept, under a folded ``<details>``.
        summary: The ``<details>``' summary, saying exactly what it holds and what is not kept.
        note: A line above the lines shown (items neither shown nor folded), or ''.
        lines: The last lines, shown.
    """

    folded: tuple[str, ...]
    summary: str
    note: str
    lines: tuple[str, ...]


def static_output(f: Frame) -> Output:
    """The output of ``f`` as a static rendering shows it: its last lines (``f.last``), the
    earlier lines kept (up to 1,000) folded above them, the numbers said exactly."""
    lines = f.lines[-f.last :] if f.last > 0 else ()
    if not f.history:  # the view has not ended: no history, the last lines
        hidden = f.seen - len(lines)
        return Output((), "", f"… {earlier(hidden)}" if hidden > 0 else "", lines)
    kept = f.history[-_STATIC_LINES:]
    lines = kept[len(kept) - min(len(kept), max(f.last, 0)) :]
    folded = kept[: len(kept) - len(lines)]
    dropped = f.seen - len(kept)
    if not folded:
        return Output((), "", f"… {earlier(dropped)} not kept" if dropped > 0 else "", lines)
    summary = f"Show {earlier(len(folded))}"
    if dropped > 0:
        summary += f" ({earlier(dropped)} before them not kept)"
    return Output(folded, summary, "", lines)


def _output_html(f: Frame) -> str:
    """The output of a static rendering: the folded earlier lines, then the last ones."""
    out = static_output(f)
    parts = []
    if out.folded:
        body = html.escape("".join(line + "\n" for line in out.folded))
        parts.append(
            '<details><summary style="cursor:pointer;font-size:0.85em">'
            f'{html.escape(out.summary)}</summary><pre style="{WRAP}">{body}</pre></details>'
        )
    text = "".join(line + "\n" for line in ((out.note,) if out.note else ()) + out.lines)
    parts.append(f'<pre style="{WRAP}">{html.escape(text)}</pre>')
    return "".join(parts)


class Snapshot:
    """One frame as a displayable object: HTML in notebooks, a text bar elsewhere.

    Its text starts with ``nbflow view ·`` and its HTML is one ``<div class="nbflow-liveview">``, so
    a notebook test can sanitize a whole view (``notebooks/sanitize.cfg``).

    Args:
        frame: What to show.
        notice: A line under the header (e.g. that the view continues below), or ''.
        appendix: HTML shown last (the timeline chart the view showed), or ''.
    """

    def __init__(self, frame: Frame, notice: str = "", appendix: str = "") -> None:
        self.frame = frame
        self.notice = notice
        self.appendix = appendix

    def __repr__(self) -> str:
        f = self.frame
        word = f.word or f.status
        head = " · ".join(p for p in (f.title, f.workflow_id, word, f.elapsed, f.events) if p)
        lines = [f"nbflow view · {head}"]
        if self.notice:
            lines.append(self.notice)
        if f.show_bar:
            lines.append(progress_line(f.bar_value / f.bar_max if f.bar_max else 0.0, f.label))
        if f.error:
            lines.append(f.error)
        if f.show_output and (f.lines or f.note):
            out = static_output(f)
            shown = ((out.summary.replace("Show", "…", 1),) if out.folded else ()) + (
                (out.note,) if out.note else ()
            )
            lines.extend(shown + out.lines)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        f = self.frame
        parts = [f"<div>{header_html(f, live=False)}</div>"]
        if self.notice:
            parts.append(f'<div style="{muted()}">{_code(self.notice)}</div>')
        if f.show_bar:
            parts.append(_bar_html(f))
        if f.error:
            parts.append(
                f'<pre style="{text_colour("danger")};{WRAP}">{html.escape(f.error)}</pre>'
            )
        if f.show_output and (f.lines or f.note):
            parts.append(_output_html(f))
        parts.append(self.appendix)
        return f'<div class="nbflow-liveview">{"".join(parts)}</div>'


class HandleRenderer:
    """Draws frames into display handles: ``display(..., display_id=True)``, then ``update``.

    Args:
        frame: The first frame (shown by :meth:`show`).
        handles: Handles to update (anything with an ``update(obj)`` method).
        live: Update with every frame. False (outside a kernel, where an update prints anew,
            e.g. terminal IPython): only with the last frame, at :meth:`finish`.
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
        self.frame = frame
        if self.live:
            for handle in self.handles:
                handle.update(Snapshot(frame))

    def finish(self, frame: Frame, notice: str = "") -> None:
        """Leave ``frame`` (its "show all" included) as the last display, with ``notice``; the
        one update outside a kernel."""
        self.frame = frame
        for handle in self.handles:
            handle.update(Snapshot(frame, notice))


_display_ids = itertools.count(1)
_late: list[tuple[str, Any]] = []  # static renderings to send again at the next cell
_late_lock = threading.Lock()


def _send_late() -> None:
    """Send the static renderings made since the last cell once more, now in a cell's context.

    A view's reader thread sends its static rendering under the last cell's parent header; one
    that ends between two cells reaches JupyterLab (which follows display ids) but a client that
    only takes messages of the cell it runs (nbclient) drops it. Sent again from the next cell, it
    reaches every client that runs one more cell. (An IPython ``pre_execute`` callback.)
    """
    from IPython.display import update_display

    with _late_lock:
        late = list(_late)
        _late.clear()
    for display_id, snapshot in late:
        update_display(snapshot, display_id=display_id)  # type: ignore[no-untyped-call]


def _resend_at_next_cell(display_id: str, snapshot: Any) -> None:
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return
    with _late_lock:
        if _send_late not in shell.events.callbacks["pre_execute"]:
            shell.events.register("pre_execute", _send_late)
        _late.append((display_id, snapshot))


@functools.cache
def _box_class() -> type:
    import ipywidgets as widgets

    class LiveViewBox(widgets.VBox):  # type: ignore[misc]
        """A VBox whose bundle also holds a static rendering of its frame (HTML and text), which
        frontends without widgets show (nbconvert, GitHub)."""

        frame: Frame | None = None

        def __repr__(self) -> str:
            return repr(Snapshot(self.frame)) if self.frame is not None else "<nbflow LiveView>"

        def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
            bundle: dict[str, Any] = super()._repr_mimebundle_(**kwargs)
            if self.frame is not None:
                bundle["text/html"] = Snapshot(self.frame)._repr_html_()
            return bundle

    return LiveViewBox


class WidgetRenderer:
    """Draws frames into ipywidgets: a header, a bar with its label and a Cancel button, an error
    line, an output area, a "Show all" toggle and a "Timeline" toggle with its chart
    (:class:`~nbflow.notebook._timetab.TimelineTab`), in one box (:attr:`box`).

    Args:
        frame: The first frame.
        on_cancel: Called (in the kernel's main thread) when Cancel is clicked.
        on_show_all: Called with the toggle's new value.
        source: Which runtime and workflow the Timeline toggle charts (None: no toggle).

    Attributes:
        display_id: The id of the output that shows the box (``nbflow-view-…``), once shown.
    """

    def __init__(
        self,
        frame: Frame,
        on_cancel: Callable[[], None],
        on_show_all: Callable[[bool], None],
        source: Source | None = None,
    ) -> None:
        import ipywidgets as w

        self.header = w.HTML()
        self.bar = w.FloatProgress(
            value=0.0, min=0.0, max=1.0, layout=w.Layout(width=_BAR_WIDTH, flex="0 0 auto")
        )
        self.label = w.HTML()
        self.label.add_class("nbflow-label")
        self.cancel_button = w.Button(
            description="Cancel",
            icon="stop",
            tooltip="Cancel the workflow",
            layout=w.Layout(width="auto"),
        )
        self.cancel_button.add_class("nbflow-cancel")
        self.error = w.HTML()
        self.output = w.Output(layout=w.Layout(max_height="30em", overflow="auto"))
        self.output.add_class("nbflow-output")
        self.show_all = w.ToggleButton(  # compact, at the left: not a full-width bar
            value=False,
            description="Show all",
            tooltip="Show every item read so far",
            layout=w.Layout(width="auto", align_self="flex-start"),
            style={"font_size": "0.85em"},
        )
        bar_line = w.HBox([self.bar, self.label, self.cancel_button])
        self.timeline = None if source is None else TimelineTab(source)
        last: list[Any] = [self.show_all]
        if self.timeline is not None:
            last = [w.HBox([self.show_all, self.timeline.button]), self.timeline.chart]
        self.box = _box_class()([self.header, bar_line, self.error, self.output, *last])
        self.box.add_class("nbflow-view")
        self.display_id: str | None = None
        self.saved: SavedState | None = None  # the output under it, for a saved notebook
        self.frame: Frame | None = None
        self.apply(frame)
        self.cancel_button.on_click(lambda _button: on_cancel())
        self.show_all.observe(lambda change: on_show_all(bool(change["new"])), names="value")

    def show(self) -> None:
        from IPython.display import display

        self.display_id = f"nbflow-view-{uuid.uuid4().hex[:12]}-{next(_display_ids)}"
        display(self.box, display_id=self.display_id)  # type: ignore[no-untyped-call]
        saved = SavedState(f"{self.display_id}-saved", Snapshot)
        assert self.frame is not None
        saved.show(self.frame)
        self.saved = saved

    def finish(self, frame: Frame, notice: str = "") -> None:
        """Replace the shown box by a static rendering of ``frame`` (HTML and text, no widget),
        with the timeline chart when it is shown."""
        self.apply(frame)
        chart = "" if self.timeline is None else self.timeline.close()
        if self.display_id is None:
            return
        from IPython.display import update_display

        if self.saved is not None:  # emptied first: the view's rendering is the last update
            _resend_at_next_cell(self.saved.display_id, self.saved.finish())
        snapshot = Snapshot(frame, notice, chart)
        update_display(snapshot, display_id=self.display_id)  # type: ignore[no-untyped-call]
        _resend_at_next_cell(self.display_id, snapshot)

    def apply(self, frame: Frame) -> None:
        old = self.frame
        self.frame = self.box.frame = frame
        self.header.value = _DISCONNECTED_CSS + header_html(frame) + _STALE
        bar = self.bar
        with bar.hold_sync():  # one message for the three traits
            bar.max = frame.bar_max  # first: the value must fit
            bar.value = frame.bar_value
            bar.bar_style = frame.bar_style
        shown = "" if frame.show_bar else "none"
        bar.layout.display = self.label.layout.display = shown
        label = html.escape(frame.label)  # its ETA hidden once the kernel stopped (CSS)
        self.label.value = _ETA.sub(r'<span class="nbflow-eta">\g<0></span>', label, count=1)
        self.error.value = (
            f'<pre style="{text_colour("danger")};margin:0;{WRAP}">{html.escape(frame.error)}</pre>'
            if frame.error
            else ""
        )
        self.cancel_button.disabled = not frame.cancellable
        ended = frame.final or frame.complete  # no Cancel at the end, not merely disabled
        self.cancel_button.layout.display = "none" if ended else ""
        if old is None or (old.lines, old.note) != (frame.lines, frame.note):
            text = frame.text
            out = {"output_type": "stream", "name": "stdout", "text": text}
            self.output.outputs = (out,) if text else ()  # never `with out:` from a thread
        self.output.layout.display = "" if frame.show_output else "none"
        self.show_all.layout.display = (
            "" if frame.show_output and (frame.note or frame.show_all) else "none"
        )
        self.show_all.description = "Show last items" if frame.show_all else "Show all"
        if self.saved is not None:
            self.saved.update(frame)
