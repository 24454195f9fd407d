"""Who holds a DuckDB file: a note beside it naming the process, and its notebook and kernel.

DuckDB lets one process open a file for writing, and while it does, no other process may open it
at all (not even read-only: DuckDB's lock for a writer is exclusive). DuckDB's own error names the
holder's process id only; in a notebook that is a kernel the user cannot see. So a store that
opens a file writes ``<file>.holder`` beside it (JSON: the process id, host, start time, and the
notebook and kernel when the process is a Jupyter kernel) and removes it at close; a store
refused by DuckDB's lock reads it to say which notebook holds the file.

The note is advisory: DuckDB's lock decides. A note whose process is gone (killed, so never
removed) on this host, or that names another process than the one DuckDB reports, is stale: it
is ignored, and replaced by the next store that opens the file.

The notebook is the one jupyter-server names in ``JPY_SESSION_NAME`` for the kernels it starts
(ipykernel's ``__session__`` is set from it); the kernel's id is its connection file's name
(``kernel-<id>.json``, given to the kernel as ``-f``). Both are read here from the environment
and the command line: the store imports nothing of IPython.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from dataclasses import asdict, dataclass

__all__ = ["SUFFIX", "Holder", "read_holder", "remove_holder", "write_holder"]

#: What the note's name adds to the file's.
SUFFIX = ".holder"


@dataclass(frozen=True)
class Holder:
    """The process that holds a DuckDB file, as its note says.

    Attributes:
        pid: Its process id.
        host: The machine it runs on.
        started: When it opened the file (ISO 8601, UTC).
        notebook: The notebook whose kernel it is (its path, as jupyter-server gives it), or None.
        kernel: The kernel's id, or None.
    """

    pid: int
    host: str
    started: str
    notebook: str | None = None
    kernel: str | None = None


def this_process() -> Holder:
    """This process, as its note names it."""
    return Holder(
        pid=os.getpid(),
        host=socket.gethostname(),
        started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        notebook=os.environ.get("JPY_SESSION_NAME") or None,
        kernel=_kernel_id(sys.argv),
    )


def _kernel_id(argv: list[str]) -> str | None:
    """The kernel's id from its connection file (``-f …/kernel-<id>.json``), or None."""
    for i, arg in enumerate(argv):
        if arg == "-f" and i + 1 < len(argv):
            name = argv[i + 1]
        elif arg.startswith(("--f=", "-f=")):
            name = arg.split("=", 1)[1]
        else:
            continue
        base = os.path.basename(name)
        if base.startswith("kernel-") and base.endswith(".json"):
            return base[len("kernel-") : -len(".json")]
    return None


def write_holder(path: str) -> None:
    """Name this process as the holder of the file at ``path`` (best effort: the note is advice,
    and a folder that takes the database takes it)."""
    note = path + SUFFIX
    temporary = f"{note}.{os.getpid()}.tmp"
    with contextlib.suppress(OSError):
        with open(temporary, "w", encoding="utf-8") as out:
            json.dump(asdict(this_process()), out)
        os.replace(temporary, note)
    with contextlib.suppress(OSError):
        os.remove(temporary)  # (when the replace failed)


def remove_holder(path: str) -> None:
    """Remove the note, if it still names this process (another may have replaced it since)."""
    note = read_holder(path)
    if note is not None and note.pid == os.getpid() and note.host == socket.gethostname():
        with contextlib.suppress(OSError):
            os.remove(path + SUFFIX)


def read_holder(path: str, pid: int | None = None) -> Holder | None:
    """The holder the note beside ``path`` names, or None: no note, an unreadable one, or a
    stale one (its process is gone, or it is not ``pid``, the process DuckDB reports)."""
    try:
        with open(path + SUFFIX, encoding="utf-8") as note:
            fields = json.load(note)
        holder = Holder(
            pid=int(fields["pid"]),
            host=str(fields["host"]),
            started=str(fields["started"]),
            notebook=_text(fields.get("notebook")),
            kernel=_text(fields.get("kernel")),
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if pid is not None and holder.pid != pid:
        return None
    if holder.host == socket.gethostname() and not _alive(holder.pid):
        return None
    return holder


def _text(value: object) -> str | None:
    return str(value) if value else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # another user's process (or no way to ask): there
        return True
    return True
