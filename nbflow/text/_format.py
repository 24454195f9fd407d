"""Text for people: durations, times, rates, status words, progress bars and command messages.

The ``nbflow`` command, the ``%nbflow`` magics, the live views and the durable cells all print
through these functions, so the same thing reads the same everywhere. Two ways of telling time:
:func:`format_duration` for how long something took (``1.20 s``, ``2 min 05 s``), and
:func:`format_interval` for a clock that ticks in a live view (elapsed time, ETA: ``0:03``).

A text progress bar has two looks, :data:`ASCII_BAR` for terminals and logs
(``[######....] 23/60 38% 12.3 it/s item 22``) and :data:`BLOCK_BAR` for notebooks
(``|██████░░░░| 23/60 38% 12.3 it/s ETA 0:03 · item 22``), drawn by the same functions.

Nothing here imports the rest of nbflow.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Iterable
from typing import Any

__all__ = [
    "ASCII_BAR",
    "BLOCK_BAR",
    "BarStyle",
    "STATUS_WORDS",
    "format_cancel",
    "format_count",
    "format_duration",
    "format_error",
    "format_interval",
    "format_ranges",
    "format_rate",
    "format_recover",
    "format_resume",
    "format_sent",
    "format_time",
    "parse_age",
    "parse_message",
    "progress_label",
    "progress_line",
    "shorten",
    "status_word",
    "text_bar",
    "truncate",
]


# -- numbers and times -----------------------------------------------------------------------


_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", re.IGNORECASE)
#: What :func:`parse_age` takes, for messages.
AGES = "a number > 0 with a unit, e.g. 30d, 12h, 45m, 90s (w: weeks), or plain seconds"


def parse_age(text: str) -> float | None:
    """An age such as ``30d``, ``12h``, ``45m``, ``90s``, ``2w`` or plain seconds, in seconds;
    None for text that is not an age > 0."""
    match = _AGE.fullmatch(text)
    if match is None:
        return None
    seconds = float(match.group(1)) * _AGE_UNITS[match.group(2).lower() or "s"]
    return seconds if seconds > 0 else None


def format_duration(seconds: float | None) -> str:
    """How long something took: ``1.20 s``, ``2 min 05 s``; ``''`` for None (not ended).

    Args:
        seconds: The duration in seconds, or None.

    Returns:
        The duration's text.
    """
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def format_interval(seconds: float) -> str:
    """A ticking clock, like tqdm's: ``m:ss`` or ``h:mm:ss`` (``format_interval(3.7) == "0:03"``).

    Args:
        seconds: The time in seconds (below 0 counts as 0).

    Returns:
        The clock's text.
    """
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_time(value: dt.datetime | float | None) -> str:
    """A moment in local time, ``2026-11-25 14:03:07``; ``''`` for None.

    Args:
        value: An aware datetime, or seconds since the epoch.

    Returns:
        The moment's text.
    """
    if value is None:
        return ""
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromtimestamp(value, tz=dt.timezone.utc)
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def format_count(value: float) -> str:
    """A count without a useless ``.0``: ``23``, ``2.5``.

    Args:
        value: The count.

    Returns:
        The count's text.
    """
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.4g}"


def format_rate(rate: float | None, unit: str = "it") -> str:
    """A rate: ``12.3 it/s``, ``2.50 s/it`` below one per second, ``''`` when unknown.

    Args:
        rate: Units per second, or None.
        unit: The unit's name.

    Returns:
        The rate's text.
    """
    if rate is None or rate <= 0:
        return ""
    if rate < 1:
        return f"{1 / rate:.2f} s/{unit}"
    if rate >= 100:
        return f"{rate:,.0f} {unit}/s"
    return f"{rate:.1f} {unit}/s" if rate >= 10 else f"{rate:.2f} {unit}/s"


def format_ranges(items: Iterable[int]) -> str:
    """Numbers as ranges: ``[0, 1, 2, 5, 7, 8]`` -> ``"0-2, 5, 7-8"`` (``"none"`` when empty).

    Args:
        items: The numbers, in any order.

    Returns:
        The ranges' text.
    """
    spans: list[list[int]] = []
    for i in sorted(items):
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans) or "none"


# -- text ------------------------------------------------------------------------------------


def truncate(text: str, width: int) -> str:
    """``text``, cut to ``width`` characters (the last one ``…``) when it is longer.

    Args:
        text: The text.
        width: The most characters kept.

    Returns:
        The text, whole or cut.
    """
    return text if len(text) <= width else text[: width - 1] + "…"


def shorten(text: str | None, width: int = 60) -> str:
    """One line of at most ``width`` characters: runs of whitespace become one space.

    Args:
        text: The text (None: ``''``).
        width: The most characters kept.

    Returns:
        The line.
    """
    return truncate(" ".join((text or "").split()), width)


#: The word a person reads for each workflow status (the ``Status`` values stay as they are).
STATUS_WORDS = {
    "PENDING": "running",
    "ENQUEUED": "enqueued",
    "DELAYED": "delayed",
    "SUCCESS": "succeeded",
    "ERROR": "failed",
    "CANCELLED": "cancelled",
    "MAX_RECOVERY_ATTEMPTS_EXCEEDED": "gave up",
}


def status_word(status: str, *, running_here: bool = True) -> str:
    """The word for a status: ``running``, ``interrupted``, ``enqueued``, ``delayed``,
    ``succeeded``, ``failed``, ``cancelled`` or ``gave up``; any other text (``starting``) as it is.

    Args:
        status: A ``Status`` or its value.
        running_here: For ``PENDING``: whether it runs (False: nothing runs it, ``interrupted``).

    Returns:
        The word.
    """
    value = str(getattr(status, "value", status))
    if value == "PENDING" and not running_here:
        return "interrupted"
    return STATUS_WORDS.get(value, value)


def format_error(exc: BaseException) -> str:
    """An exception as one text: ``"Type: message"``.

    Args:
        exc: The exception.

    Returns:
        Its type's qualified name and its message.
    """
    return f"{type(exc).__qualname__}: {exc}"


# -- progress --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BarStyle:
    """How a text progress bar and its label look.

    Attributes:
        fill: The character of the part done.
        empty: The character of the part to do.
        ends: The characters on either side of the bar.
        unit: What follows a count without a total (``" it"``: ``7 it``).
        separator: What stands between the numbers and the message.
    """

    fill: str = "█"
    empty: str = "░"
    ends: tuple[str, str] = ("|", "|")
    unit: str = ""
    separator: str = " · "


#: Notebooks: ``|██████░░░░| 23/60 38% 12.3 it/s ETA 0:03 · item 22``.
BLOCK_BAR = BarStyle()

#: Terminals and logs: ``[######....] 23/60 38% 12.3 it/s item 22``.
ASCII_BAR = BarStyle(fill="#", empty=".", ends=("[", "]"), unit=" it", separator=" ")


def text_bar(fraction: float, width: int = 24, style: BarStyle = BLOCK_BAR) -> str:
    """A text progress bar, ``|██████░░░░░░|``, filled to ``fraction`` (kept within 0 and 1).

    Args:
        fraction: How much is done, 0 to 1.
        width: The bar's width in characters, without its ends.
        style: How it looks.

    Returns:
        The bar.
    """
    filled = int(max(0.0, min(1.0, fraction)) * width)
    left, right = style.ends
    return left + style.fill * filled + style.empty * (width - filled) + right


def progress_label(
    done: float,
    total: float | None,
    rate: float | None = None,
    eta: float | None = None,
    message: str | None = None,
    *,
    style: BarStyle = BLOCK_BAR,
) -> str:
    """The text beside a bar: ``23/60 38% 12.3 it/s ETA 0:03 · message``.

    Args:
        done: Units done.
        total: Units in all; None or 0 when unknown (then the count shows alone).
        rate: Units per second, or None when unknown.
        eta: Seconds left, or None when unknown.
        message: The last progress item's message, or None.
        style: How it looks.

    Returns:
        The label.
    """
    if total:
        parts = [f"{format_count(done)}/{format_count(total)}", f"{done / total:.0%}"]
    else:
        parts = [format_count(done) + style.unit]
    if rate_text := format_rate(rate):
        parts.append(rate_text)
    if eta is not None:
        parts.append(f"ETA {format_interval(eta)}")
    text = " ".join(parts)
    return f"{text}{style.separator}{message}" if message else text


def progress_line(
    fraction: float | None, label: str, *, width: int = 24, style: BarStyle = BLOCK_BAR
) -> str:
    """A bar and its label, ``|████░░░░| 23/60 38%``; the label alone when ``fraction`` is None.

    Args:
        fraction: How much is done, 0 to 1; None when the total is unknown (no bar).
        label: The text beside the bar (:func:`progress_label`).
        width: The bar's width in characters.
        style: How the bar looks.

    Returns:
        The line, without trailing spaces.
    """
    if fraction is None:
        return label
    return f"{text_bar(fraction, width, style)} {label}".rstrip()


# -- what commands and magics print ----------------------------------------------------------


def format_cancel(workflow_id: str, status: str, *, cancelled: bool) -> str:
    """What a cancel says: ``cancelled workflow ID``, or that it had ended (``succeeded``…).

    Args:
        workflow_id: The workflow.
        status: Its status after the cancel (before it, when it had ended already).
        cancelled: Whether it was cancelled (False: it had ended already).

    Returns:
        The line.
    """
    word = status_word(status)
    if cancelled:
        done = "" if word == "cancelled" else f" (it {_had(word)} first)"
        return f"cancelled workflow {workflow_id}{done}"
    return f"workflow {workflow_id} already ended ({word}); nothing to cancel"


def format_resume(workflow_id: str, before: str) -> str:
    """What a resume says: ``resumed: workflow ID (was interrupted)``, or ``already finished: …``.

    Args:
        workflow_id: The workflow.
        before: Its status before the resume (PENDING: it was interrupted).

    Returns:
        The line.
    """
    verb = "already finished" if before == "SUCCESS" else "resumed"
    return f"{verb}: workflow {workflow_id} ({_had(status_word(before, running_here=False))})"


def _had(word: str) -> str:
    """``had failed``, ``had succeeded``, ``had given up``; ``was cancelled``, ``was interrupted``…"""
    if word == "gave up":
        return "had given up"
    return f"had {word}" if word in ("failed", "succeeded") else f"was {word}"


def format_recover(recovered: Any, *, here: str = "this process") -> list[str]:
    """What a recover says: the workflows it resumed, those already running, then those it could
    not resume, each with the reason.

    Args:
        recovered: What :meth:`Runtime.recover` returned (a list of handles with ``names``,
            ``running`` and ``skipped``).
        here: What runs them, for "already running in …" (``this kernel`` in a notebook).

    Returns:
        One line per workflow, or one line saying none was interrupted.
    """
    lines = [
        f"resumed: {h.workflow_id} ({recovered.names.get(h.workflow_id, '')})" for h in recovered
    ]
    lines += [f"already running in {here}: {wid} ({name})" for wid, name in recovered.running]
    lines += [f"not resumed: {s.workflow_id} ({s.name}): {s.reason}" for s in recovered.skipped]
    return lines or ["no interrupted workflows"]


def parse_message(text: str) -> Any:
    """A message typed on a command line: its JSON value, else the text itself.

    Args:
        text: What was typed: ``'{"go": true}'`` is a dict, ``hello`` the string ``"hello"``.

    Returns:
        The message to send.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def format_sent(workflow_id: str, message: Any, topic: str | None) -> str:
    """What a send says: ``sent to ID on topic 'go': {"go": true}``.

    Args:
        workflow_id: The workflow it was sent to.
        message: The message (JSON-native: :func:`parse_message` made it).
        topic: The topic it was sent on, or None.

    Returns:
        The line.
    """
    on_topic = f" on topic {topic!r}" if topic else ""
    return f"sent to {workflow_id}{on_topic}: {json.dumps(message)}"
