"""The errors about the system database itself: it cannot be opened, another process holds it,
it is not a DuckDB file, or a newer nbflow wrote it (their place in nbflow's one tree of errors is
drawn in :mod:`nbflow._errors`)."""

from __future__ import annotations

from nbflow._errors import NbflowError
from nbflow.text._locked import locked_message

__all__ = ["DatabaseCorruptError", "DatabaseError", "DatabaseLockedError", "SchemaVersionError"]


class DatabaseError(NbflowError):
    """The system database cannot be opened or written.

    Attributes:
        path: The database file or URL concerned.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class DatabaseLockedError(DatabaseError):
    """Another process, or another runtime of this one, holds the DuckDB file (DuckDB allows one
    writing process per file, and no reader beside it; nbflow one runtime per file in a process).

    Attributes:
        path: The file.
        pid: The process that holds it, when DuckDB names it.
        notebook: The notebook whose kernel holds it, when its note beside the file says.
        kernel: That kernel's id, when known.
    """

    def __init__(
        self,
        path: str,
        pid: int | None,
        *,
        here: bool = False,
        notebook: str | None = None,
        kernel: str | None = None,
        since: str | None = None,
    ) -> None:
        if here:  # another Runtime of this process: two owners would each run its workflows
            message = (
                f"The nbflow database {path!r} is already open in this process (by another "
                "nbflow.Runtime): a file has one owner per process, or both would resume the same "
                "workflows. Use that runtime (nbflow.runtime() is the default one), or close it "
                "first (runtime.close())."
            )
        else:
            message = locked_message(path, pid, notebook, kernel, since)
        super().__init__(message, path=path)
        self.pid = pid
        self.notebook = notebook
        self.kernel = kernel


class DatabaseCorruptError(DatabaseError):
    """The file exists but is not a DuckDB database nbflow can read."""


class SchemaVersionError(DatabaseError):
    """The file was written by a newer nbflow, whose schema this version does not know.

    Attributes:
        found: The schema version in the file.
        supported: The newest version this nbflow knows.
    """

    def __init__(self, path: str, found: int, supported: int) -> None:
        super().__init__(
            f"The nbflow database {path!r} has schema version {found}, but this nbflow knows "
            f"versions up to {supported}. Upgrade nbflow (pip install -U nbflow) to open it, "
            "or use another file.",
            path=path,
        )
        self.found = found
        self.supported = supported
