"""What a widget view leaves in a notebook saved while it runs: its last state, as plain HTML.

A notebook saved while a view runs holds the view's widget output, which, reopened without its
kernel (and without saved widget state), JupyterLab and Notebook 7 draw as "Error displaying
widget: model not found": their widget renderer outranks the output's HTML. So a widget view
shows a second output right under its widget, with a display id of its own: a static rendering
of its latest frame, updated about once a second while it runs, saying for a workflow that has
not ended that it was interrupted and how to resume it. Its CSS (JupyterLab's output area
classes) hides it while the widget is drawn, and hides the widget's error when the widget cannot
be drawn. When the view ends (its widget output becomes a static rendering) it turns into an
empty output that hides itself. nbconvert and GitHub, which draw no widgets, show it as it is.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from nbflow.notebook._state import Frame

__all__ = ["SavedState"]

#: Shown when a frame of a workflow that has not ended is what a reopened notebook shows.
HINT = "interrupted (the notebook was saved while it ran): run `nbflow.recover()` to resume it"
_ETA = re.compile(r" ETA [^ ·]+")
_INTERVAL = 1.0  # seconds between updates of the saved state
_CSS = (
    "<style>"
    # the widget is drawn: the saved state hides
    ".jp-OutputArea-child:has(.nbflow-view)+.jp-OutputArea-child:has(.nbflow-saved),"
    # the view ended (a static rendering above): nothing to show
    ".jp-OutputArea-child:has(.nbflow-saved-done),"
    # the widget is not drawn (loading, or its model is gone): the saved state shows instead
    # (the widget renderer is a Lumino panel, whose node carries no mimetype)
    ".jp-OutputArea-child:not(:has(.nbflow-view)):has(>.jp-OutputArea-output.lm-Panel)"
    ":has(+.jp-OutputArea-child .nbflow-saved:not(.nbflow-saved-done)){display:none}"
    "</style>"
)
_DONE_TEXT = "nbflow view · (ended: its rendering is above)"


class _Bundle:
    """A display object of given HTML and text."""

    def __init__(self, html_: str, text: str) -> None:
        self.html, self.text = html_, text

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {"text/plain": self.text, "text/html": self.html}


class SavedState:
    """The output under a widget view that holds its latest state for a saved notebook.

    Args:
        display_id: The output's display id.
        render: Makes the static rendering of a frame with a notice (an object with
            ``_repr_html_`` and a text ``repr``).
        interval: Seconds between updates at most.
    """

    def __init__(
        self,
        display_id: str,
        render: Callable[[Frame, str], Any],
        interval: float = _INTERVAL,
    ) -> None:
        self.display_id = display_id
        self.render = render
        self.interval = interval
        self.sent = 0.0  # when it was last updated (monotonic)
        self.done = False
        self._lock = threading.Lock()

    def bundle(self, frame: Frame) -> _Bundle:
        """The saved state of ``frame``: interrupted, with how to resume, unless it ended."""
        notice = ""
        if not frame.final:
            label = _ETA.sub("", frame.label)  # nothing runs it any more: no ETA
            frame = dataclasses.replace(frame, word="interrupted", label=label, cancellable=False)
            notice = HINT
        snapshot = self.render(frame, notice)
        body = snapshot._repr_html_()
        return _Bundle(f'<div class="nbflow-saved">{_CSS}{body}</div>', repr(snapshot))

    def show(self, frame: Frame) -> None:
        """Display it (from the main thread, right after the widget)."""
        from IPython.display import display

        self.sent = time.monotonic()
        display(self.bundle(frame), display_id=self.display_id)  # type: ignore[no-untyped-call]

    def update(self, frame: Frame) -> None:
        """Send ``frame`` as the saved state, unless one was sent less than ``interval`` ago."""
        now = time.monotonic()
        with self._lock:
            if self.done or now - self.sent < self.interval:
                return
            self.sent = now
        from IPython.display import update_display

        update_display(self.bundle(frame), display_id=self.display_id)  # type: ignore[no-untyped-call]

    def finish(self) -> _Bundle:
        """Empty it (the view left its static rendering above); the object sent."""
        with self._lock:
            self.done = True
        from IPython.display import update_display

        done = _Bundle(f'<div class="nbflow-saved nbflow-saved-done">{_CSS}</div>', _DONE_TEXT)
        update_display(done, display_id=self.display_id)  # type: ignore[no-untyped-call]
        return done
