"""Renderers of the live view: ipywidgets, a display handle updated in place, plain text.

A renderer draws :class:`~nbflow.notebook._state.Frame` objects: ``show`` once from the main
thread (in the cell), then ``apply`` from any thread. :class:`WidgetRenderer` draws ipywidgets and
after ``show`` only changes their traits (text reaches its ``Output`` widget by assigning
``outputs``, never ``with out:``). Without a widget frontend, :class:`HandleRenderer` shows a
:class:`Snapshot` (HTML, or a plain-text bar for terminals) in a display handle, updated with every
frame in a kernel and only with the last frame outside one, where an update prints anew. IPython
and ipywidgets are imported only inside the functions that need them.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from nbflow._format import progress_line
from nbflow.notebook._state import Frame

__all__ = [
    "HandleRenderer",
    "Renderer",
    "Snapshot",
    "WidgetRenderer",
    "header_html",
]

_COLOURS = {"success": "#4caf50", "danger": "#e53935", "warning": "#fb8c00", "info": "#29b6f6"}


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
    if f.events:
        parts.append(f'<span title="events (set_event)">{html.escape(f.events)}</span>')
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
        short_id = f"[{f.short_id}]" if f.workflow_id else ""
        lines = [" ".join(p for p in (f.title, short_id, f.status, f.elapsed, f.events) if p)]
        if f.show_bar:
            lines.append(progress_line(f.bar_value / f.bar_max if f.bar_max else 0.0, f.label))
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
            description="Cancel",
            icon="stop",
            tooltip="Cancel the workflow",
            layout=w.Layout(width="auto"),
        )
        self.error = w.HTML()
        self.output = w.Output(layout=w.Layout(max_height="30em", overflow="auto"))
        self.show_all = w.ToggleButton(
            value=False,
            description="Show all",
            tooltip="Show every item read so far",
            layout=w.Layout(width="auto"),
        )
        bar_line = w.HBox([self.bar, self.label, self.cancel_button])
        self.box = _box_class()([self.header, bar_line, self.error, self.output, self.show_all])
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
