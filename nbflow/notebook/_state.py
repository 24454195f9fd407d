"""What a live view shows, as plain data: progress math, rate and ETA, output lines, the throttle.

Nothing here imports IPython or ipywidgets; the text (the label beside the bar, the elapsed time)
comes from :mod:`nbflow.text._format`. A :class:`ViewState` accumulates what a reader thread
reads from a workflow's streams; :meth:`ViewState.frame` turns it into a :class:`Frame`, an
immutable description of the display that the widget and text/HTML renderers draw. Frames compare
equal when the display would not change, so a renderer skips redundant frontend updates.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import re
from typing import Any

from nbflow.text._format import format_interval, progress_label, status_word, truncate

__all__ = [
    "BAR_STYLES",
    "earlier",
    "Frame",
    "Progress",
    "RateMeter",
    "Throttle",
    "ViewState",
]

#: The bar style (ipywidgets' ``bar_style``) of each final status.
BAR_STYLES = {
    "SUCCESS": "success",
    "ERROR": "danger",
    "CANCELLED": "warning",
    "MAX_RECOVERY_ATTEMPTS_EXCEEDED": "danger",
}

_FINAL = frozenset(BAR_STYLES)
_LINE_LIMIT = 2000  # characters of one output line
_BACKGROUND = "nbflow.background"  # the workflow of %%nbflow background cells
_CELL_ID = re.compile(r"(.+)-[0-9a-f]{8}")  # a named background cell's id: NAME-1a2b3c4d


@dataclasses.dataclass
class Progress:
    """The last progress item seen: ``{"done", "total", "message"}`` (a bare number is ``done``).

    Attributes:
        done: Units done.
        total: Units in all, or None when unknown.
        message: The item's message, or None.
        items: How many progress items were read.
    """

    done: float = 0.0
    total: float | None = None
    message: str | None = None
    items: int = 0

    def feed(self, value: Any) -> None:
        """Take one progress item; values of another shape only count as items."""
        self.items += 1
        if isinstance(value, dict):
            done, total, message = value.get("done"), value.get("total"), value.get("message")
        else:
            done, total, message = value, self.total, None
        if isinstance(done, (int, float)) and not isinstance(done, bool):
            self.done = float(done)
        if total is None or (isinstance(total, (int, float)) and not isinstance(total, bool)):
            self.total = None if total is None else float(total)
        self.message = None if message is None else str(message)


class RateMeter:
    """Units per second, smoothed like tqdm's (an exponential moving average of recent rates).

    The first estimate is the average since the workflow started, so a view opened on a running
    workflow (which replays its stream at once) does not report a burst. With ``started`` None
    (a resumed workflow: the average would count the idle gap before the resume) the first sample
    only sets the baseline, and the rate is measured from the items that come after it.

    Args:
        smoothing: Weight of the newest rate, 0 (the overall average) to 1 (only the newest).
    """

    def __init__(self, smoothing: float = 0.3) -> None:
        self.smoothing = smoothing
        self.rate: float | None = None
        self._last: tuple[float, float] | None = None  # (done, time)

    def update(self, done: float, now: float, started: float | None) -> float | None:
        """Take the count ``done`` at time ``now``; return the current rate (None: unknown)."""
        last = self._last
        if last is None or done < last[0]:  # first sample, or progress restarted
            self._last = (done, now)
            elapsed = None if started is None else now - started
            self.rate = done / elapsed if elapsed and elapsed > 0 and done > 0 else None
            return self.rate
        if done == last[0] or now <= last[1]:
            return self.rate
        recent = (done - last[0]) / (now - last[1])
        s = self.smoothing
        self.rate = recent if self.rate is None else s * recent + (1 - s) * self.rate
        self._last = (done, now)
        return self.rate


class Throttle:
    """At most ``rate`` updates per second; counts the updates and when they happened.

    Args:
        rate: Updates per second at most (0 or less: no limit).
    """

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None

    def ready(self, now: float) -> bool:
        """Whether an update may happen at time ``now``."""
        return self.last is None or now - self.last >= self.interval

    def remaining(self, now: float) -> float:
        """Seconds until an update may happen (0: now)."""
        return 0.0 if self.last is None else max(0.0, self.last + self.interval - now)

    def hold(self, now: float) -> None:
        """Start an interval at ``now`` without counting an update (the next waits for it)."""
        if self.last is None or self.last < now:
            self.last = now

    def record(self, now: float) -> None:
        """Note an update at time ``now``."""
        self.count += 1
        if self.first is None:
            self.first = now
        self.last = now

    @property
    def span(self) -> float:
        """Seconds from the first update to the last."""
        return 0.0 if self.first is None or self.last is None else self.last - self.first


@dataclasses.dataclass(frozen=True)
class Frame:
    """One state of the display, drawn by a renderer.

    Attributes:
        name: The workflow's name.
        workflow_id: Its id ('' before one is attached).
        status: ``PENDING``, ``ENQUEUED``, ``SUCCESS``, ``ERROR``, ``CANCELLED``, ``starting``
            or ``not started``.
        elapsed: Wall time since it was created, frozen at its end (``0:03``); since its latest
            resume when the view knows of one (``0:12 since resumed``).
        show_bar: Whether the bar shows: progress is watched and some progress item was read.
        bar_value: The bar's value.
        bar_max: The bar's maximum.
        bar_style: ``''``, ``info`` (unknown total), ``success``, ``danger`` or ``warning``.
        label: The text beside the bar (``23/60 38% 12.3 it/s ETA 0:03``).
        show_output: Whether the output area shows: some output item was read.
        lines: The output lines shown.
        note: A line about items not shown, or ''.
        show_all: Whether every item kept is shown (not only the last few).
        error: ``"Type: message"`` of the workflow's error (or of the view's), or ''.
        cancellable: Whether the Cancel button is enabled (it is hidden once the view ends).
        final: Whether the workflow reached its final status.
        complete: Whether the view has shown all it will (its reader ended).
        events: The workflow's events (``set_event``) as ``key: value, …``, or ''.
        word: The status as a person reads it (``running``, ``interrupted``, ``succeeded``, …).
        history: Every output line kept (up to the history cap), for a static "show all".
        seen: How many output items were read.
        last: How many of the last output items a view shows (its ``max_items``).
    """

    name: str
    workflow_id: str
    status: str
    elapsed: str
    show_bar: bool
    bar_value: float
    bar_max: float
    bar_style: str
    label: str
    show_output: bool
    lines: tuple[str, ...]
    note: str
    show_all: bool
    error: str
    cancellable: bool
    final: bool
    complete: bool
    events: str = ""
    word: str = ""
    history: tuple[str, ...] = dataclasses.field(default=(), compare=False, repr=False)
    seen: int = 0
    last: int = 20

    @property
    def title(self) -> str:
        """The name to show: without ``__main__.`` (notebook workflows), or ``workflow``; a
        background cell's name (``NAME`` of its id ``NAME-1a2b3c4d``), or ``background cell``."""
        if self.name == _BACKGROUND:
            named = _CELL_ID.fullmatch(self.workflow_id)
            return named.group(1) if named else "background cell"
        name = self.name[len("__main__.") :] if self.name.startswith("__main__.") else self.name
        return name or "workflow"

    @property
    def short_id(self) -> str:
        """The id, whole (the HTML header cuts a long one with CSS, the whole id in its title)."""
        return self.workflow_id

    @property
    def text(self) -> str:
        """The output area's text."""
        body = "".join(line + "\n" for line in self.lines)
        return f"{self.note}\n{body}" if self.note else body


def earlier(count: int) -> str:
    """``1 earlier item``, ``1,980 earlier items``."""
    return f"{count:,} earlier item{'' if count == 1 else 's'}"


def _line(value: Any) -> str:
    return truncate(value.rstrip("\n") if isinstance(value, str) else repr(value), _LINE_LIMIT)


class ViewState:
    """What a view has read about one workflow; not thread-safe (its owner locks).

    Args:
        workflow_id: The workflow (None until attached).
        name: Its name, if known before its record is read.
        max_items: How many output items are shown (the last ones).
        history: How many output items are kept for "show all".
        progress_key: The stream whose items feed the bar.
    """

    def __init__(
        self,
        workflow_id: str | None,
        name: str | None = None,
        *,
        max_items: int = 20,
        history: int = 10_000,
        progress_key: str = "progress",
    ) -> None:
        self.workflow_id = workflow_id
        self.name = name or ""
        self.status = "starting" if workflow_id is None else "PENDING"
        self.created_at: float | None = None
        self.restarted_at: float | None = None  # its latest resume, if the view knows of one
        self.restart_word = "resumed"
        self.ended_at: float | None = None
        self.running = True  # for PENDING: whether something runs it (False: interrupted)
        self.error = ""
        self.progress_key = progress_key
        self.progress = Progress()
        self.meter = RateMeter()
        self.max_items = max_items
        self.keys: list[str] = []  # watched keys, in order
        self.items: collections.deque[tuple[str, str]] = collections.deque(maxlen=history)
        self.seen = 0  # output items read
        self.fed: set[str] = set()  # the output keys that had items
        self.cancel_requested = False
        self.complete = False  # the reader ended: nothing more will be read
        self.events: dict[str, Any] = {}  # the workflow's events, last value of each

    @property
    def final(self) -> bool:
        """Whether the workflow reached its final status."""
        return self.status in _FINAL

    def add_key(self, key: str) -> None:
        """Watch ``key`` too."""
        if key not in self.keys:
            self.keys.append(key)

    @property
    def output_keys(self) -> list[str]:
        """The watched keys other than the progress key."""
        return [k for k in self.keys if k != self.progress_key]

    def feed(self, key: str, value: Any) -> None:
        """Take one item read from stream ``key``."""
        if key == self.progress_key:
            self.progress.feed(value)
        else:
            self.seen += 1
            self.fed.add(key)
            self.items.append((key, _line(value)))

    def restarted(self, created_at: float, updated_at: float, *, queued: bool = False) -> None:
        """Take a PENDING workflow's record times. A first start writes both the same; a later
        ``updated_at`` is its latest resume (or, ``queued``, when a worker took it), so the rate
        and the elapsed time leave out the idle gap before it.

        Args:
            created_at: When it was created.
            updated_at: When it was last started, resumed or taken by a worker.
            queued: Whether it came through a queue (the elapsed time says "since started").
        """
        self.created_at = created_at
        if updated_at > created_at and updated_at != self.restarted_at:
            self.restarted_at = updated_at
            self.restart_word = "started" if queued else "resumed"
            self.meter = RateMeter(self.meter.smoothing)  # measured anew from here

    @property
    def word(self) -> str:
        """The status as a person reads it."""
        return status_word(self.status, running_here=self.running)

    def _bar(self, now: float) -> tuple[float, float, str, str]:
        p, final = self.progress, self.final
        style = BAR_STYLES.get(self.status, "")
        if not p.items:
            return (1.0, 1.0, style, "") if final else (0.0, 1.0, style, "")
        started = self.created_at
        if final and self.restarted_at is not None:  # the items before the resume are unknown
            rate = self.meter.rate
        elif final:  # the overall average, so a finished view reads the same every time
            end = self.ended_at if self.ended_at is not None else now
            span = None if started is None else end - started
            rate = p.done / span if span and span > 0 and p.done > 0 else None
        elif self.restarted_at is not None:  # from the items read since the resume
            rate = self.meter.update(p.done, now, None)
        else:
            rate = self.meter.update(p.done, now, started)
        if p.total is None or p.total <= 0:
            value = 1.0 if final or p.done else 0.0
            return value, 1.0, style or "info", progress_label(p.done, None, rate, None, p.message)
        eta = None
        if not final and rate and self.running:
            eta = max(0.0, p.total - p.done) / rate
        label = progress_label(p.done, p.total, rate, eta, p.message)
        return max(0.0, min(p.done, p.total)), p.total, style, label

    def _output(self, show_all: bool) -> tuple[tuple[str, ...], str]:
        prefix = len(self.fed) > 1
        if show_all:
            items = list(self.items)
        else:  # the last few, without copying the whole history
            items = list(itertools.islice(reversed(self.items), self.max_items))[::-1]
        lines = tuple(f"[{k}] {t}" if prefix else t for k, t in items)
        hidden = self.seen - len(lines)
        if not hidden:
            return lines, ""
        kept = len(self.items)
        if show_all:
            note = f"… {earlier(hidden)} not kept (the last {len(lines):,} are shown)"
        elif kept < self.seen:  # more than "show all" keeps
            note = f"… {earlier(hidden)} (Show all shows the last {kept:,} of {self.seen:,})"
        else:
            note = f"… {earlier(hidden)} (Show all shows all {self.seen:,})"
        return lines, note

    def frame(self, now: float, *, show_all: bool = False) -> Frame:
        """The display at wall time ``now`` (seconds since the epoch)."""
        value, maximum, style, label = self._bar(now)
        lines, note = self._output(show_all)
        return Frame(
            name=self.name,
            workflow_id=self.workflow_id or "",
            status=self.status,
            elapsed=self._elapsed(now),
            show_bar=self.progress_key in self.keys and self.progress.items > 0,
            bar_value=value,
            bar_max=maximum,
            bar_style=style,
            label=label,
            show_output=self.seen > 0,
            lines=lines,
            note=note,
            show_all=show_all,
            error=self.error,
            cancellable=self.workflow_id is not None
            and not self.final
            and not self.cancel_requested,
            final=self.final,
            complete=self.complete,
            events=", ".join(f"{key}: {_line(value)}" for key, value in self.events.items()),
            word=self.word,
            history=self._history() if self.complete else (),
            seen=self.seen,
            last=self.max_items,
        )

    def _elapsed(self, now: float) -> str:
        """Time since created, or since the latest resume (said so); frozen at the end."""
        end = self.ended_at if self.final and self.ended_at is not None else now
        if self.restarted_at is not None:
            return f"{format_interval(end - self.restarted_at)} since {self.restart_word}"
        return "" if self.created_at is None else format_interval(end - self.created_at)

    def _history(self) -> tuple[str, ...]:
        """Every output line kept, prefixed by its key when more than one key had items."""
        prefix = len(self.fed) > 1
        return tuple(f"[{k}] {t}" if prefix else t for k, t in self.items)
