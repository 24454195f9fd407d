"""The command's progress bar: one line redrawn in place on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from nbflow.text._format import ASCII_BAR, progress_label, progress_line

__all__ = ["ProgressBar"]


class ProgressBar:
    """A text progress bar in the manner of tqdm: ``[#####.....] 23/60 38% 12.3 it/s item 22``.

    On a terminal it redraws one line with ``\\r``, at most once per ``min_interval`` seconds (the
    last state is always drawn). Elsewhere (a pipe, a log file) it prints a plain line each time
    another tenth of the work is done. Its text is that of the notebook's text bar
    (:mod:`nbflow.text._format`), in :data:`~nbflow.text._format.ASCII_BAR` style.

    Args:
        file: Where to draw (default: ``sys.stderr`` at the time of the call).
        width: The bar's width in characters.
        tty: Whether to redraw in place (default: ``file.isatty()``).
        min_interval: The shortest time between two redraws on a terminal, in seconds.
    """

    def __init__(
        self,
        file: TextIO | None = None,
        *,
        width: int = 30,
        tty: bool | None = None,
        min_interval: float = 0.05,
    ) -> None:
        self.file = file if file is not None else sys.stderr
        self.tty = self.file.isatty() if tty is None else tty
        self.width = width
        self.min_interval = min_interval
        self._base: tuple[float, float] | None = None  # (done, time) of the first update
        self._last_draw, self._last_len, self._tenth = 0.0, 0, 0
        self._undrawn: str | None = None

    def render(self, done: float, total: float | None, message: str | None, now: float) -> str:
        """The bar's text for a state (``now`` is a ``time.monotonic()`` value, for the rate)."""
        rate = None
        if self._base is not None and now > self._base[1] and done > self._base[0]:
            rate = (done - self._base[0]) / (now - self._base[1])
        label = progress_label(done, total, rate, None, message, style=ASCII_BAR)
        fraction = done / total if total else None
        return progress_line(fraction, label, width=self.width, style=ASCII_BAR)

    def update(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Show a new state: ``done`` of ``total`` units, with an optional message."""
        now = time.monotonic()
        if self._base is None:
            self._base, self._last_draw = (done, now), now - 3600
        line = self.render(done, total, message, now)
        if self.tty:
            due = now - self._last_draw >= self.min_interval
        elif total:
            tenth = int(10 * done / total)
            due, self._tenth = tenth > self._tenth or not self._last_len, max(tenth, self._tenth)
        else:
            due = now - self._last_draw >= 1.0  # no total: a line per second at most
        if due or (bool(total) and done >= (total or 0)):
            self._draw(line, now)
        else:
            self._undrawn = line

    def _draw(self, line: str, now: float) -> None:
        if self.tty:
            self.file.write("\r" + line + " " * max(0, self._last_len - len(line)))
        else:
            self.file.write(line + "\n")
        self.file.flush()
        self._last_len, self._last_draw, self._undrawn = len(line), now, None

    def close(self) -> None:
        """Draw the last state if it was not drawn yet, and end the line."""
        if self._undrawn is not None:
            self._draw(self._undrawn, time.monotonic())
        if self.tty and self._last_len:
            self.file.write("\n")
        self.file.flush()
