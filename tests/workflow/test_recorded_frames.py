"""A recorded error raised again shows the frames it was raised in (nbflow._tracebacks)."""

from __future__ import annotations

import importlib.util
import linecache
import pickle
import traceback
from pathlib import Path
from types import ModuleType

from nbflow._serialization import decode_error, encode_error

SOURCE = """\
def outer(n):
    return helper(n)

def helper(n):
    __tracebackhide__ = True
    return inner(n)

def inner(n):
    raise ValueError(f"bad batch {n}")
"""


def module(path: Path) -> ModuleType:
    path.write_text(SOURCE)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    found = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(found)
    return found


def raised(path: Path) -> ValueError:
    try:
        module(path).outer(3)
    except ValueError as exc:
        return exc
    raise AssertionError("outer did not raise")


def frames(error: BaseException) -> list[tuple[str, int, str]]:
    return [(f.filename, f.lineno or 0, f.name) for f in traceback.extract_tb(error.__traceback__)]


def test_the_frames_of_a_recorded_error_come_back_hidden_ones_left_out(tmp_path: Path) -> None:
    path = tmp_path / "stepcode.py"
    error = raised(path)
    text, blob = encode_error(error)
    assert text == "ValueError: bad batch 3" and blob is not None
    assert "__nbflow_frames__" not in error.__dict__  # the live error is left as it was

    again = decode_error(text, blob, allow_pickle=True)
    assert isinstance(again, ValueError) and str(again) == "bad batch 3"
    assert frames(again)[1:] == [(str(path), 2, "outer"), (str(path), 9, "inner")]
    assert frames(again)[0][2] == "raised"  # (where it was caught: this test's frame)
    assert "__nbflow_frames__" not in again.__dict__
    shown = "".join(traceback.format_exception(again))
    assert 'raise ValueError(f"bad batch {n}")' in shown, shown
    assert "were recorded when it was raised" in shown, shown


def test_a_frame_whose_file_is_gone_still_shows_its_recorded_line(tmp_path: Path) -> None:
    path = tmp_path / "gonecode.py"
    text, blob = encode_error(raised(path))
    path.unlink()  # e.g. a cell file of a kernel that has exited
    linecache.checkcache(str(path))
    again = decode_error(text, blob, allow_pickle=True)
    shown = "".join(traceback.format_exception(again))
    assert f'File "{path}", line 9, in inner' in shown, shown
    assert 'raise ValueError(f"bad batch {n}")' in shown, shown


def test_an_error_recorded_before_keeps_decoding(tmp_path: Path) -> None:
    # as nbflow recorded errors before it kept their frames (without a traceback: where tblib's
    # pickling support is installed, by dask's tests, a pickle keeps one)
    error = raised(tmp_path / "oldcode.py").with_traceback(None)
    old = pickle.dumps(error)
    again = decode_error("ValueError: bad batch 3", old, allow_pickle=True)
    assert isinstance(again, ValueError) and again.__traceback__ is None
    assert not hasattr(again, "__notes__")
