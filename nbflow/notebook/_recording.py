"""The output recorder of durable cells: what a cell shows is kept while it runs, and shown again.

:class:`Recording` tees the cell's stdout, stderr and ``display()`` calls; :func:`flush_figures`
shows matplotlib's inline figures before the recording ends; :meth:`Recording.replay` shows the
kept outputs again when the cell is restored; :func:`format_result` keeps the cell's last value as
the display hook would show it; :func:`json_outputs` makes what was kept JSON, as a notebook file
keeps it (so a record's JSON holds it, and only the variables are pickled).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Recording", "flush_figures", "format_result", "json_outputs"]

_WIDGET = "application/vnd.jupyter.widget-view+json"
_MISSING: Any = object()


class Recording:
    """Tee a cell's output while it runs: it shows as usual, and is kept in order to show again.

    Only what the cell's own thread writes is kept (other threads may print meanwhile). Widgets
    are not kept: their models do not outlive the kernel. ``display(..., display_id=...)`` updates
    replace the output they update, and ``clear_output()`` forgets what was kept before it.

    Attributes:
        outputs: ``["stream", name, text]`` and ``["display", data, metadata]`` items.
    """

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.outputs: list[list[Any]] = []
        self._thread = threading.get_ident()
        self._active = False
        self._publishing = False
        self._display_ids: dict[str, list[Any]] = {}
        self._undo: list[Callable[[], None]] = []

    def __enter__(self) -> Recording:
        self._active = True
        for name in ("stdout", "stderr"):
            self._patch(sys, name, getattr(sys, name), "write", self._stream_writer(name))
        pub = self.shell.display_pub
        self._patch(None, "", pub, "publish", self._publisher(pub.publish))
        self._patch(None, "", pub, "clear_output", self._clearer(pub.clear_output))
        return self

    def __exit__(self, *exc: object) -> None:
        self._active = False
        while self._undo:
            self._undo.pop()()

    def _patch(self, holder: Any, attr: str, obj: Any, name: str, new: Any) -> None:
        """Set ``obj.name = new`` (undone on exit); a stream that refuses is wrapped instead."""
        had = vars(obj).get(name, _MISSING) if hasattr(obj, "__dict__") else _MISSING
        try:
            setattr(obj, name, new)
        except (AttributeError, TypeError):  # e.g. a C io object: replace the stream itself
            if holder is not None:
                setattr(holder, attr, _Wrapped(obj, new))

                def unwrap() -> None:
                    if isinstance(getattr(holder, attr), _Wrapped):
                        setattr(holder, attr, obj)

                self._undo.append(unwrap)
            return

        def undo() -> None:
            if vars(obj).get(name) is new:
                if had is _MISSING:
                    delattr(obj, name)
                else:
                    setattr(obj, name, had)

        self._undo.append(undo)

    def _keep(self, name: str, text: str) -> None:
        if not self._active or self._publishing or not text:
            return
        if threading.get_ident() != self._thread:
            return
        last = self.outputs[-1] if self.outputs else None
        if last is not None and last[0] == "stream" and last[1] == name:
            last[2] += text
        else:
            self.outputs.append(["stream", name, text])

    def _stream_writer(self, name: str) -> Callable[..., Any]:
        original = getattr(sys, name).write

        def write(text: str, *args: Any, **kwargs: Any) -> Any:
            self._keep(name, text)
            return original(text, *args, **kwargs)

        return write

    def _publisher(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def publish(data: dict[str, Any], metadata: Any = None, *args: Any, **kwargs: Any) -> Any:
            if self._active and threading.get_ident() == self._thread and _WIDGET not in data:
                display_id = (kwargs.get("transient") or {}).get("display_id")
                if kwargs.get("update"):
                    if display_id in self._display_ids:
                        self._display_ids[display_id][1:] = [data, metadata or {}]
                else:
                    self.outputs.append(["display", data, metadata or {}])
                    if display_id:
                        self._display_ids[display_id] = self.outputs[-1]
            self._publishing = True  # a plain shell prints text/plain: do not keep it twice
            try:
                return original(data, metadata, *args, **kwargs)
            finally:
                self._publishing = False

        return publish

    def _clearer(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def clear_output(*args: Any, **kwargs: Any) -> Any:
            if self._active and threading.get_ident() == self._thread:
                self.outputs.clear()
                self._display_ids.clear()
            return original(*args, **kwargs)

        return clear_output

    @staticmethod
    def replay(shell: Any, outputs: list[list[Any]]) -> None:
        """Show recorded outputs again, in order."""
        for item in outputs:
            if item[0] == "stream":
                stream = sys.stdout if item[1] == "stdout" else sys.stderr
                stream.write(item[2])
                stream.flush()
            else:
                shell.display_pub.publish(item[1], item[2])


class _Wrapped:
    """A stream whose ``write`` is replaced (for streams that refuse a patched attribute)."""

    def __init__(self, stream: Any, write: Callable[..., Any]) -> None:
        self._stream, self.write = stream, write

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def format_result(shell: Any, value: Any) -> list[Any] | None:
    """``[data, metadata]`` of a value as the display hook would show it (None: nothing)."""
    try:
        data, metadata = shell.display_formatter.format(value)
    except Exception:
        return None
    data = {k: v for k, v in data.items() if k != _WIDGET}
    return [data, metadata] if data else None


def json_outputs(items: list[list[Any]]) -> list[list[Any]]:
    """Recorded outputs (or ``[data, metadata]`` results) as JSON brings them back.

    As a notebook file keeps them: bytes become base64 text, tuples lists, dates ISO text, other
    objects their ``str``. An output that still is not JSON (a NaN in its data) keeps only its
    text entries.
    """
    kept: list[list[Any]] = []
    for item in items:
        try:
            kept.append(json.loads(json.dumps(item, default=_json_default, allow_nan=False)))
        except (TypeError, ValueError, RecursionError):  # the last two parts: data, metadata
            texts = {k: v for k, v in item[-2].items() if isinstance(k, str) and isinstance(v, str)}
            kept.append([*item[:-2], texts, {}])
    return kept


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    return str(value)


def flush_figures() -> None:
    """Show the figures the cell drew now, while its output is recorded (matplotlib's inline
    backend would show them after the cell, where they would not be recorded)."""
    inline = sys.modules.get("matplotlib_inline.backend_inline")
    if inline is not None:
        with contextlib.suppress(Exception):
            inline.flush_figures()
