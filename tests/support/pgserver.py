"""A throwaway PostgreSQL server for the tests and benchmarks of the PostgreSQL store.

``PostgresServer().start()`` runs ``initdb`` into a new temporary folder and starts ``postgres``
on it, listening on 127.0.0.1 on a free port (and on a Unix socket in the same folder), with trust
authentication for the superuser ``postgres``. Its settings are given on the command line:
``fsync`` as asked (off for the tests, on for the benchmarks), ``max_connections=200``,
``shared_buffers=128MB``. Without fsync the folder is in memory (``/dev/shm``) when that has room.
``stop()`` shuts the server down at once (immediate mode: nothing it holds is worth keeping) and
removes the folder; it also runs at interpreter exit, so a test run that fails or is interrupted
leaves no server behind (a SIGKILLed interpreter still can).

PostgreSQL refuses to run as root: under root, ``initdb`` and ``postgres`` run as the ``postgres``
system user (made by Debian's package), which owns the temporary folder.

The binaries come from ``$NBFLOW_PG_BIN``, else ``pg_config --bindir``, else the newest
``/usr/lib/postgresql/*/bin``, else the folder of ``initdb`` on the ``PATH`` (see ``find_pg_bin``).
With ``$NBFLOW_TEST_POSTGRES_URL`` set (a ``postgresql://`` URL of a superuser, or of a role that
may create databases) that server is used instead and nothing is started; the databases made on it
are dropped by ``stop()``.

``python -m tests.support.pgserver [--fsync]`` checks the whole cycle and prints how long each part takes.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import warnings
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

try:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo
except ImportError:  # the postgres extra is missing: start_or_skip_reason() says so
    psycopg = None  # type: ignore[assignment]

BIN_ENV = "NBFLOW_PG_BIN"
URL_ENV = "NBFLOW_TEST_POSTGRES_URL"
SUPERUSER = "postgres"
RUN_AS = "postgres"  # the system user that runs the server when we are root
SHM = "/dev/shm"  # tmpfs on Linux: the server's folder goes there when fsync is off
SHM_MIN_FREE = 2 << 30  # data, and WAL up to max_wal_size (1 GB)
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
START_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it
INSTALL_HINT = (
    "install PostgreSQL (Debian: apt-get install -y postgresql), set "
    f"${BIN_ENV} to the folder holding initdb and postgres, or set ${URL_ENV} "
    "to the URL of a server of your own"
)


class PostgresStartError(RuntimeError):
    """The server could not be set up or did not come up."""


def find_pg_bin() -> Path | None:
    """Find the folder that holds PostgreSQL's server binaries.

    Returns:
        ``$NBFLOW_PG_BIN`` if set (unchecked); else ``pg_config --bindir`` if it holds ``initdb``;
        else the newest ``/usr/lib/postgresql/*/bin`` holding ``initdb``; else the folder of the
        ``initdb`` on the ``PATH``; else None.
    """
    if os.environ.get(BIN_ENV):
        return Path(os.environ[BIN_ENV])
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            if out and (Path(out) / "initdb").is_file():
                return Path(out)
    debian = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb") if p.is_file()]
    if debian:
        return max(debian, key=lambda d: _version_key(d.parent.name))
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    return None


def _version_key(name: str) -> tuple[int, ...]:
    """Sort key of a version folder name such as ``15`` or ``9.6``."""
    return tuple(int(part) for part in re.findall(r"\d+", name))


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a text file, or a note that there is none."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class PostgresServer:
    """A PostgreSQL server in a temporary folder, or an existing server given by URL.

    Use it as a context manager, or call ``start()`` and ``stop()``.

    Attributes:
        timings: Seconds taken by ``initdb`` and by the server's start-up (keys ``"initdb"`` and
            ``"start"``), filled in by ``start()``.
    """

    def __init__(
        self,
        *,
        fsync: bool = False,
        bin_dir: Path | None = None,
        existing_url: str | None = None,
    ) -> None:
        """Describe a server; nothing runs before ``start()``.

        Args:
            fsync: The server's ``fsync`` setting: off for tests (fast, nothing survives a crash
                of the machine), on for benchmarks (costs as in production).
            bin_dir: The folder of ``initdb`` and ``postgres``; default ``find_pg_bin()``.
            existing_url: Use this running server instead of starting one (a ``postgresql://``
                URL); ``fsync`` and ``bin_dir`` are then ignored.
        """
        self.fsync = fsync
        self.bin_dir = bin_dir
        self.existing_url = existing_url
        self.timings: dict[str, float] = {}
        self._url: str | None = None
        self._directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._created: list[str] = []
        self._names = itertools.count(1)

    # -- public API ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The server's URL, as its superuser, on the database ``postgres``."""
        if self._url is None:
            raise RuntimeError("the server is not started")
        return self._url

    @property
    def directory(self) -> Path | None:
        """The temporary folder (data, socket, log) of a started server; None otherwise."""
        return self._directory

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while this object runs one; None otherwise."""
        return self._process.pid if self._process is not None else None

    def start(self) -> PostgresServer:
        """Start the server (or check the existing one) and wait until it accepts connections.

        Returns:
            This server, started.

        Raises:
            PostgresStartError: The binaries are missing, ``initdb`` failed, or the server did not
                accept connections within 30 s; the message holds the end of the server's log.
        """
        if self._url is not None:
            raise RuntimeError("the server is already started")
        atexit.register(self.stop)
        try:
            if self.existing_url:
                self._wait_ready(self.existing_url, lambda: None)
                self._url = self.existing_url
            else:
                self._start_own()
        except BaseException:
            self.stop()
            raise
        return self

    def create_database(self, name: str | None = None) -> str:
        """Create a new, empty database (a copy of ``template0``).

        Args:
            name: Its name; default a fresh ``nbflow_test_<pid>_<n>``.

        Returns:
            The URL of the new database.
        """
        name = name or f"nbflow_test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
            )
        self._created.append(name)
        parts = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(name)))

    def drop_database(self, name: str) -> None:
        """Drop a database, closing the connections still open to it.

        Args:
            name: The database's name, as given to or made by ``create_database``.
        """
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        with contextlib.suppress(ValueError):
            self._created.remove(name)

    def stop(self) -> None:
        """Stop the server and remove its folder; safe to call more than once.

        For an existing server, drop the databases made by ``create_database`` instead.
        """
        atexit.unregister(self.stop)
        if self.existing_url:
            if self._url is not None:
                self._drop_created()
        else:
            self._stop_own()
        self._url = None

    def restart(self, outage: float = 0.0) -> None:
        """Restart our own server on the same port: ``pg_ctl stop -m fast`` (every session is
        dropped), ``outage`` seconds with no server (connections are refused), then start it again
        and wait until it accepts connections.

        Args:
            outage: Seconds between the stop and the start (the length of the fault).
        """
        if self.existing_url or self._process is None or self._directory is None:
            raise RuntimeError("restart() needs a server this object started")
        bin_dir = self.bin_dir or find_pg_bin()
        assert bin_dir is not None
        run_as = self._run_as()
        data = self._directory / "data"
        stop = [str(bin_dir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w"]
        done = subprocess.run(stop, capture_output=True, text=True, **self._spawn_args(run_as))
        if done.returncode != 0:
            raise PostgresStartError(f"pg_ctl stop failed:\n{done.stdout}{done.stderr}")
        self._process.wait(STOP_TIMEOUT)
        time.sleep(outage)  # the fault itself: no server at all for this long
        port = int(urllib.parse.urlsplit(self.url).port or 5432)
        with (self._directory / "postgres.log").open("ab") as log_file:
            self._process = subprocess.Popen(
                [str(bin_dir / "postgres"), "-D", str(data), *self._settings(port)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._spawn_args(run_as),
            )
        self._wait_ready(self.url, self._check_alive)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- a server of our own ---------------------------------------------------------------------

    def _start_own(self) -> None:
        bin_dir = self.bin_dir or find_pg_bin()
        if bin_dir is None:
            raise PostgresStartError(f"PostgreSQL's server binaries were not found: {INSTALL_HINT}")
        for program in ("initdb", "postgres"):
            if not os.access(bin_dir / program, os.X_OK):
                raise PostgresStartError(f"no {program} in {bin_dir}: {INSTALL_HINT}")
        run_as = self._run_as()
        self._directory = Path(tempfile.mkdtemp(prefix="nbflow-pg-", dir=self._parent()))
        if run_as:
            os.chown(self._directory, run_as.pw_uid, run_as.pw_gid)
        data = self._directory / "data"

        began = time.perf_counter()
        initdb = [
            str(bin_dir / "initdb"),
            *("-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C"),
            "--no-sync",
        ]
        done = subprocess.run(initdb, capture_output=True, text=True, **self._spawn_args(run_as))
        if done.returncode != 0:
            raise PostgresStartError(
                f"initdb failed (exit {done.returncode}):\n{done.stdout}{done.stderr}"
            )
        self.timings["initdb"] = time.perf_counter() - began

        began = time.perf_counter()
        for attempt in range(1, START_ATTEMPTS + 1):
            port = _free_port()
            log = self._directory / "postgres.log"
            with log.open("ab") as log_file:
                self._process = subprocess.Popen(
                    [str(bin_dir / "postgres"), "-D", str(data), *self._settings(port)],
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C goes to the tests, which then stop it
                    **self._spawn_args(run_as),
                )
            url = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
            # Wait on the Unix socket in our own folder: only our server can answer there, and it
            # makes that socket after binding its TCP port (it exits if it cannot bind it), so a
            # server of someone else's on the same port is never taken for ours.
            own_socket = make_conninfo(
                host=str(self._directory), port=port, user=SUPERUSER, dbname="postgres"
            )
            try:
                self._wait_ready(own_socket, self._check_alive)
                self._wait_ready(url, self._check_alive)
            except PostgresStartError:
                self._stop_process()
                if attempt < START_ATTEMPTS and "could not bind" in _tail(log):
                    continue
                raise
            self._url = url
            break
        self.timings["start"] = time.perf_counter() - began

    def _parent(self) -> str | None:
        """Where to make the temporary folder: memory (tmpfs) without fsync, if it has room.

        On the development VM a CREATE DATABASE took 20-150 ms on disk (with or without fsync:
        the copy is written either way) and 20 ms in ``/dev/shm``. Docker gives containers a
        64 MB ``/dev/shm``, too small: then, and with fsync on (a benchmark wants the disk's
        costs), the folder goes where ``tempfile`` puts it (``$TMPDIR``, else ``/tmp``).
        """
        if self.fsync or not os.path.isdir(SHM) or not os.access(SHM, os.W_OK):
            return None
        return SHM if shutil.disk_usage(SHM).free >= SHM_MIN_FREE else None

    def _settings(self, port: int) -> list[str]:
        """The server's command-line settings."""
        assert self._directory is not None
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": str(self._directory),
            "fsync": "on" if self.fsync else "off",
            "max_connections": "200",
            "shared_buffers": "128MB",
        }
        return [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]

    @staticmethod
    def _run_as() -> pwd.struct_passwd | None:
        """The system user to run PostgreSQL as when we are root; None when we are not."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(RUN_AS)
        except KeyError:
            raise PostgresStartError(
                f"PostgreSQL refuses to run as root and there is no {RUN_AS!r} user to run it as "
                "(Debian's postgresql package creates it)"
            ) from None

    def _spawn_args(self, run_as: pwd.struct_passwd | None) -> dict[str, Any]:
        """Keyword arguments for subprocess: the user and folder to run PostgreSQL in."""
        spawn: dict[str, Any] = {"cwd": self._directory}
        if run_as:
            spawn.update(user=run_as.pw_uid, group=run_as.pw_gid, extra_groups=[])
        return spawn

    def _check_alive(self) -> None:
        """Fail at once, with the log, if the postmaster has already exited."""
        assert self._process is not None and self._directory is not None
        code = self._process.poll()
        if code is not None:
            raise PostgresStartError(
                f"postgres exited with status {code} while starting; its log ends with:\n"
                + _tail(self._directory / "postgres.log")
            )

    def _stop_process(self) -> None:
        """Shut the postmaster down in immediate mode and wait for it (and so its children)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)  # immediate shutdown
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _stop_own(self) -> None:
        """Stop the postmaster and remove the folder."""
        self._stop_process()
        directory, self._directory = self._directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    # -- both kinds ------------------------------------------------------------------------------

    def _wait_ready(self, conninfo: str, check_alive: Callable[[], None]) -> None:
        """Connect until it works; raise after ``START_TIMEOUT`` seconds.

        Args:
            conninfo: The server to connect to, as a URL or ``key=value`` string.
            check_alive: Called before each try; raises if the server can no longer come up.
        """
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            check_alive()
            try:
                with psycopg.connect(conninfo, connect_timeout=2, autocommit=True) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    log = (
                        _tail(self._directory / "postgres.log")
                        if self._directory is not None
                        else "(no log: not our server)"
                    )
                    raise PostgresStartError(
                        f"PostgreSQL at {conninfo!r} did not accept connections within "
                        f"{START_TIMEOUT:.0f} s ({exc}); its log ends with:\n{log}"
                    ) from exc
            time.sleep(0.02)

    def _drop_created(self) -> None:
        """Drop the databases this object made on an existing server (best effort)."""
        for name in list(self._created):
            try:
                self.drop_database(name)
            except psycopg.Error as exc:
                warnings.warn(f"could not drop the test database {name}: {exc}", stacklevel=2)
        self._created.clear()


def start_or_skip_reason(*, fsync: bool = False) -> tuple[PostgresServer | None, str | None]:
    """Start a server for a fixture, or say why the tests that need one must be skipped.

    Uses ``$NBFLOW_TEST_POSTGRES_URL`` when set, else starts a throwaway server.

    Args:
        fsync: The server's ``fsync`` setting (ignored for an existing server).

    Returns:
        ``(server, None)`` with the server started, or ``(None, reason)``.
    """
    if psycopg is None:
        return None, "psycopg is not installed (pip install -e '.[postgres]')"
    server = PostgresServer(fsync=fsync, existing_url=os.environ.get(URL_ENV) or None)
    try:
        return server.start(), None
    except (PostgresStartError, OSError, subprocess.SubprocessError) as exc:
        return None, f"no PostgreSQL server for the tests: {exc}"


def _self_check(fsync: bool) -> int:
    """Start a server, make databases, query one, stop it, and print how long each part took.

    Args:
        fsync: The server's ``fsync`` setting.

    Returns:
        The exit status: 0 when everything worked.
    """
    began = time.perf_counter()
    server, reason = start_or_skip_reason(fsync=fsync)
    if server is None:
        print(reason)
        return 1
    try:
        print(
            f"server: {server.url}" + (f" (folder {server.directory})" if server.directory else "")
        )
        for part, seconds in server.timings.items():
            print(f"{part:>16}: {seconds * 1000:8.1f} ms")
        durations = []
        for _ in range(20):
            t0 = time.perf_counter()
            url = server.create_database()
            durations.append(time.perf_counter() - t0)
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT 1").fetchone()
            assert row == (1,), row
            version = conn.execute("SHOW server_version").fetchone()
        print(
            f"{'create_database':>16}: {statistics.median(durations) * 1000:8.1f} ms median "
            f"of 20 (min {min(durations) * 1000:.1f}, max {max(durations) * 1000:.1f})"
        )
        print(f"{'version':>16}: {version[0] if version else '?'}")
        t0 = time.perf_counter()
        server.drop_database(urllib.parse.urlsplit(url).path.lstrip("/"))
        print(f"{'drop_database':>16}: {(time.perf_counter() - t0) * 1000:8.1f} ms")
    finally:
        t0 = time.perf_counter()
        directory = server.directory
        server.stop()
        print(f"{'stop':>16}: {(time.perf_counter() - t0) * 1000:8.1f} ms")
    if directory is not None and directory.exists():
        print(f"error: {directory} is still there after stop()")
        return 1
    print(f"{'total':>16}: {(time.perf_counter() - began) * 1000:8.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(_self_check(fsync="--fsync" in sys.argv[1:]))
