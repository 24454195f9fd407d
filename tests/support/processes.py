"""What every test that starts a child process of nbflow needs: where the repository is, the
child's environment, which store a database location names, and a child started ahead of time."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import IO, Any

__all__ = ["ROOT", "ReadyChild", "child_env", "is_postgres", "run_together", "start_worker"]

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


def start_worker(
    database: str,
    app: str,
    *options: str,
    out: int | IO[str] = subprocess.PIPE,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """A child running ``nbflow worker`` on ``database``, importing the module ``app`` and
    recovering every 0.5 s; ``options``: more of its options (``--queue``, ``name``); its output,
    stderr too, to ``out`` (default: a pipe); ``env``: its environment (default:
    :func:`child_env`)."""
    command = [sys.executable, "-m", "nbflow", "--db", database, "worker", "--import", app]
    command += ["--recover-every", "0.5", *options]
    env = child_env() if env is None else env
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
    )


def run_together(commands: list[list[str]], cwd: Path, timeout: float = 120) -> list[str]:
    """Start a child per command, each waiting for a line ``go`` on its stdin, tell them all at
    once, and return what each printed; every child must exit with 0."""
    procs = [
        subprocess.Popen(
            command,
            cwd=cwd,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    for proc in procs:  # told at the same moment
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outs = [proc.communicate(timeout=timeout) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * len(procs), outs
    return [out for out, _ in outs]


class ReadyChild:
    """A child process of a test app, started ahead of time (its start-up is not part of what
    the test times or kills into) in a session of its own, so that its process group (a pool's
    workers, a cluster's) dies with it. It runs when told to :meth:`go` (a line on its stdin)
    and prints a JSON summary as its last line.

    Args:
        app: The app's script.
        args: Its arguments.
        cwd: Its working folder.
        name: What its PostgreSQL sessions are called, before a unique suffix (``app_name``).
    """

    def __init__(self, app: Path, args: list[str], cwd: Path, name: str) -> None:
        self.app_name = f"{name}-{uuid.uuid4().hex[:12]}"
        self.proc = subprocess.Popen(
            [sys.executable, str(app), *args],
            cwd=cwd,
            env=child_env(self.app_name),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def go(self) -> None:
        """Let it run."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        """SIGKILL its process group (if it is still there), and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.communicate(timeout=60)

    def summary(self, timeout: float = 120) -> dict[str, Any]:
        """Wait for it to end by itself; the JSON summary it printed last."""
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, f"the app failed ({self.proc.returncode}): {err}"
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result
