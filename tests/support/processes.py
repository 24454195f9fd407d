"""What every test that starts a child process of nbflow needs: where the repository is, the
child's environment, and which store a database location names."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ROOT", "child_env", "is_postgres"]

#: The repository's root (the folder of ``pyproject.toml``).
ROOT = Path(__file__).resolve().parents[2]


def child_env(app_name: str | None = None) -> dict[str, str]:
    """The environment of a child process: this one's, with the repository importable, no
    ``NBFLOW_DATABASE`` (a child is told its database), and with ``app_name`` the name libpq
    gives each of the child's PostgreSQL sessions (so a test can find them)."""
    env = dict(os.environ)
    env.pop("NBFLOW_DATABASE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if app_name is not None:
        env["PGAPPNAME"] = app_name
    return env


def is_postgres(database: str) -> bool:
    """Whether ``database`` is a PostgreSQL URL (else a DuckDB file)."""
    return database.startswith(("postgresql://", "postgres://"))
