"""The frames of a recorded error: kept in its pickle, shown again when it is raised from a record.

A traceback does not survive pickling, so an error raised again from a workflow's record
(``result()`` of a failed run in a new kernel, a replayed step that had failed) would end in
nbflow's own code. When an error is recorded, :func:`keeping_frames` stores the frames of the
code it came through (file, line, function and source line; nbflow's own frames and frames marked
``__tracebackhide__`` left out) in the exception's ``__dict__``, which its pickle keeps.
:func:`restore_frames` gives the decoded exception a traceback of those frames: each is a frame
of code compiled under the recorded file name and line that raises the error (as Jinja2 shows
template lines in tracebacks), so IPython and the :mod:`traceback` module show the file, line,
function and source where it was raised; a note says that these frames were recorded.
"""

from __future__ import annotations

import contextlib
import linecache
import os
import sys
import types
from collections.abc import Iterator
from typing import Any, NamedTuple

__all__ = ["RecordedFrame", "keeping_frames", "recorded_frames", "restore_frames"]

_KEY = "__nbflow_frames__"  # in the exception's __dict__, as plain dicts (no nbflow class)
_MAX_FRAMES = 20  # the innermost ones
_NBFLOW = os.path.dirname(os.path.abspath(__file__)) + os.sep
_NOTE = (
    "(the frames above were recorded when it was raised; nbflow raised it again from the record)"
)


class RecordedFrame(NamedTuple):
    """One frame of a recorded traceback.

    Attributes:
        file: The code's file name (a notebook cell's too: ``/tmp/ipykernel_…/….py``).
        line: The line number.
        name: The function's name.
        code: The source line, stripped ('' when unknown).
        first: The first line of the function (its ``def``), or 0 when unknown.
    """

    file: str
    line: int
    name: str
    code: str
    first: int = 0


def recorded_frames(error: BaseException) -> list[RecordedFrame]:
    """The frames of ``error``'s traceback worth showing again: not nbflow's, not hidden."""
    found = []
    tb = error.__traceback__
    while tb is not None:
        frame, line = tb.tb_frame, tb.tb_lineno
        file = frame.f_code.co_filename
        hidden = bool(frame.f_locals.get("__tracebackhide__"))
        if not hidden and not os.path.abspath(file).startswith(_NBFLOW):
            code = linecache.getline(file, line, frame.f_globals).strip()
            first = frame.f_code.co_firstlineno
            found.append(RecordedFrame(file, line, frame.f_code.co_name, code, first))
        tb = tb.tb_next
    return found[-_MAX_FRAMES:]


@contextlib.contextmanager
def keeping_frames(error: BaseException) -> Iterator[None]:
    """Within the block, ``error`` carries its frames in its ``__dict__`` (to pickle it)."""
    frames = [f._asdict() for f in recorded_frames(error)]
    if not frames:
        yield
        return
    had = error.__dict__.get(_KEY)
    error.__dict__[_KEY] = frames
    try:
        yield
    finally:
        if had is None:
            error.__dict__.pop(_KEY, None)
        else:
            error.__dict__[_KEY] = had


def restore_frames(error: BaseException) -> BaseException:
    """``error`` with a traceback of the frames it was pickled with (if any), and a note."""
    kept: Any = error.__dict__.pop(_KEY, None)
    if not isinstance(kept, list) or not kept:
        return error
    try:
        frames = [_here(RecordedFrame(**f)) for f in kept]
        tb = None
        for frame in reversed(frames):
            made = _frame_raising(error, frame)
            tb = types.TracebackType(tb, made.tb_frame, made.tb_lasti, made.tb_lineno)
    except Exception:  # a frame that cannot be made: the error without it
        return error
    with contextlib.suppress(AttributeError):
        error.__notes__ = [*getattr(error, "__notes__", ()), _NOTE]  # type: ignore[attr-defined]
    return error.with_traceback(tb)


def _frame_raising(error: BaseException, frame: RecordedFrame) -> types.TracebackType:
    """The traceback entry of code at ``frame``'s file, line and function that raises ``error``."""
    _know_line(frame)
    first = frame.first if 0 < frame.first <= frame.line else 1  # as the function's code has it
    source = "\n" * (frame.line - first) + "raise __nbflow_error__\n"
    code = compile(source, frame.file, "exec", dont_inherit=True)
    names: dict[str, Any] = {"co_name": frame.name, "co_firstlineno": first}
    if sys.version_info >= (3, 11):
        names["co_qualname"] = frame.name
    code = code.replace(**names)
    context, suppress = error.__context__, error.__suppress_context__
    made: types.TracebackType | None = None
    try:
        exec(code, {"__name__": "__nbflow_recorded__", "__nbflow_error__": error})
    except BaseException as raised:
        made = raised.__traceback__
    finally:
        error.__context__, error.__suppress_context__ = context, suppress
    if made is None or made.tb_next is None:
        raise RuntimeError("the recorded frame raised nothing")
    return made.tb_next  # the frame of the compiled code, not this function's


def _here(frame: RecordedFrame) -> RecordedFrame:
    """``frame``, under the name its file has in this process: a notebook cell of another kernel
    (``/tmp/ipykernel_<pid>/<hash of the code>.py``) is the cell of this kernel with the same
    code, if it ran here (then IPython shows it as ``Cell In[n]``, with its source)."""
    if linecache.getline(frame.file, frame.line):
        return frame
    folder, base = os.path.split(frame.file)
    kind = os.path.basename(folder).rstrip("0123456789")
    if not kind or kind == os.path.basename(folder):
        return frame
    for known in list(linecache.cache):
        other, known_base = os.path.split(known)
        if known_base == base and os.path.basename(other).rstrip("0123456789") == kind:
            return frame._replace(file=known)
    return frame


def _know_line(frame: RecordedFrame) -> None:
    """Let :mod:`linecache` show the recorded source line of a file it cannot read (a cell of
    another kernel): the other lines are blank."""
    if not frame.code or linecache.getline(frame.file, frame.line):
        return
    entry = linecache.cache.get(frame.file)
    lines = list(entry[2]) if entry is not None and len(entry) == 4 else []
    lines += ["\n"] * (frame.line - len(lines))
    lines[frame.line - 1] = frame.code + "\n"
    linecache.cache[frame.file] = (sum(map(len, lines)), None, lines, frame.file)
