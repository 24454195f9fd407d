"""What a process is told when another holds the DuckDB file it asked for: the notebook, kernel
and process that hold it (as the note beside the file says), and what to do."""

from __future__ import annotations

from nbflow.text._hints import hint

__all__ = ["locked_message"]


def locked_message(
    path: str, pid: int | None, notebook: str | None, kernel: str | None, since: str | None
) -> str:
    """What a process refused by DuckDB's lock is told: who holds the file, and what to do."""
    details = [f"kernel {kernel}"] if kernel else []
    details += [f"process {pid}"] if pid is not None else []
    details += [f"since {since}"] if since else []
    shown = f" ({', '.join(details)})" if details else ""
    elsewhere = (
        f"use another file with {hint('db', 'other.duckdb')} or $NBFLOW_DATABASE, or share "
        f"workflows between processes with PostgreSQL: {hint('db', 'postgresql://…')}."
    )
    if notebook:
        return (
            f"The nbflow database {path!r} is in use by the notebook {notebook!r}{shown}. DuckDB "
            "lets one process open a file at a time, and keeps every other process out while it "
            "is open, even one that only reads: this one cannot list its history either. Use "
            "that notebook (`%nbflow list` there shows the history), or close that notebook and "
            "shut down its kernel to free the file; or "
            + elsewhere.replace("processes", "notebooks")
        )
    holder = f"process {pid}" if pid is not None else "another process"
    if since:
        holder += f" (since {since})"
    return (
        f"The nbflow database {path!r} is in use by {holder}. DuckDB lets one process open a "
        "file at a time, and keeps every other process out while it is open, even one that only "
        "reads. Close the runtime in that process (or stop it), " + elsewhere
    )
