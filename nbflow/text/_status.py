"""The words a person types for a workflow's status, and what each means.

One status has two vocabularies: the views' and tables' words (``running``, ``enqueued``,
``delayed``, ``succeeded``, ``failed``, ``cancelled``, ``gave up``:
:data:`~nbflow.text._format.STATUS_WORDS`) and the statuses' own names (``PENDING``, ``ENQUEUED``,
``DELAYED``, ``SUCCESS``, ``ERROR``, ``CANCELLED``, ``MAX_RECOVERY_ATTEMPTS_EXCEEDED``). Wherever a
status is typed, both are taken, in any case, with the usual variants (``queued``, ``canceled``,
``gave-up``).
"""

from __future__ import annotations

from collections.abc import Sequence

from nbflow.text._format import STATUS_WORDS

__all__ = ["STATUS_NAMES", "status_choices", "status_value", "unknown_status"]

#: Every word a person may type for a status, in lower case, and the status it means.
STATUS_NAMES = {
    **{value.lower(): value for value in STATUS_WORDS},
    **{word: value for value, word in STATUS_WORDS.items()},
    "queued": "ENQUEUED",
    "canceled": "CANCELLED",
    "gave-up": "MAX_RECOVERY_ATTEMPTS_EXCEEDED",
    "given up": "MAX_RECOVERY_ATTEMPTS_EXCEEDED",
}


def status_value(text: str) -> str | None:
    """The status a typed word means (:data:`STATUS_NAMES`, in any case), or None.

    Args:
        text: What was typed: ``failed``, ``ERROR``, ``Running``, …

    Returns:
        The status's value (``ERROR``), or None for a word that names none.
    """
    return STATUS_NAMES.get(text.strip().lower())


def status_choices(values: Sequence[str] | None = None) -> str:
    """The words for the statuses ``values`` (None: all), each with its name, for a message.

    Args:
        values: The statuses' values (``["SUCCESS", "ERROR"]``), or None for all.

    Returns:
        ``running (PENDING), enqueued or queued (ENQUEUED), …``
    """
    shown = []
    for value in values or list(STATUS_WORDS):
        word = STATUS_WORDS[value]
        more = [w for w, v in STATUS_NAMES.items() if v == value and w not in (word, value.lower())]
        shown.append(f"{' or '.join([word, *more])} ({value})")
    return ", ".join(shown)


def unknown_status(text: object, values: Sequence[str] | None = None) -> str:
    """The message for a word that names no status (or none of ``values``).

    Args:
        text: What was typed.
        values: The statuses that may be named there (None: all).

    Returns:
        ``Unknown workflow status 'x'; use one of failed (ERROR), …``; for ``interrupted``, where
        PENDING may be named, also that ``running`` lists the interrupted workflows.
    """
    message = f"Unknown workflow status {text!r}; use one of {status_choices(values)}"
    if str(text).strip().lower() == "interrupted" and (values is None or "PENDING" in values):
        message += " (interrupted workflows are PENDING: 'running' lists them)"
    return message + "."
