"""Riding out a PostgreSQL restart: retry what failed because the connection did, with backoff.

A server that restarts (``pg_ctl restart``, a failover, a network blip) drops every connection,
then refuses new ones while it starts ("the database system is starting up"). The store's
queries and commits are safe to run again — reads are reads, and a batch's inserts skip rows
that exist while a workflow ends only while PENDING — so :class:`RideOut` runs them again on a
new connection, waiting 0.05 s, 0.1 s, 0.2 s … (at most 2 s) between tries, for up to
``seconds`` (30 by default). Past that, it fails with a :class:`DatabaseError` that says how long
it tried. Errors that are not the connection's (a constraint, a full disk, bad SQL) are raised at
once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg

from nbflow._dberrors import DatabaseError
from nbflow._errors import RuntimeClosedError

__all__ = ["RideOut", "transient"]

logger = logging.getLogger("nbflow")

T = TypeVar("T")

#: SQLSTATEs of a server going away or not back yet: admin shutdown, crash shutdown, cannot
#: connect now (starting up or shutting down). Class 08 (connection exceptions) counts too.
_RESTARTING = frozenset({"57P01", "57P02", "57P03"})
_FIRST_PAUSE = 0.05
_LONGEST_PAUSE = 2.0


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or the psycopg error it wraps) is the connection's: lost or refused."""
    while isinstance(exc, DatabaseError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in _RESTARTING


class RideOut:
    """Runs an operation again while the server is away, for up to ``seconds``.

    Args:
        url: The database (redacted), for messages.
        stopping: Set when the store closes: a wait between tries ends, raising
            :class:`RuntimeClosedError`.
        seconds: How long to keep trying after the first failure.
    """

    def __init__(self, url: str, stopping: threading.Event, seconds: float = 30.0) -> None:
        self.url = url
        self.seconds = seconds
        self._stopping = stopping

    def run(self, attempt: Callable[[], T], reset: Callable[[], None], what: str) -> T:
        """``attempt()``; after a connection error, ``reset()`` and try again until it works.

        Args:
            attempt: The operation (safe to run again).
            reset: Drops the broken connection (the next attempt opens a new one).
            what: What it does, for messages ("a commit", "a query").

        Raises:
            DatabaseError: The server stayed away for ``seconds``, or the error is not the
                connection's.
        """
        deadline: float | None = None
        pause = _FIRST_PAUSE
        while True:
            try:
                result = attempt()
            except (psycopg.Error, DatabaseError) as exc:
                if not transient(exc):
                    raise
                deadline = self._wait(exc, deadline, pause, what)
                pause = min(2 * pause, _LONGEST_PAUSE)
                reset()
                continue
            if deadline is not None:
                logger.warning("nbflow is connected to %s again; %s went through.", self.url, what)
            return result

    def _wait(self, exc: BaseException, deadline: float | None, pause: float, what: str) -> float:
        """Wait before the next try; the deadline (set at the first failure)."""
        now = time.monotonic()
        if deadline is None:
            deadline = now + self.seconds
            logger.warning(
                "nbflow lost its connection to %s during %s (%s); trying again for up to %.0f s.",
                self.url,
                what,
                " ".join(str(exc).split()),
                self.seconds,
            )
        if now >= deadline:
            raise DatabaseError(
                f"The nbflow database {self.url!r} could not be reached for {self.seconds:.0f} s "
                f"(during {what}): {' '.join(str(exc).split())} Check that the PostgreSQL server "
                "runs; close the runtime and open it again once it does (interrupted workflows "
                "can then be recovered).",
                path=self.url,
            ) from exc
        if self._stopping.wait(min(pause, deadline - now)):
            raise RuntimeClosedError(
                f"The nbflow runtime for {self.url!r} was closed while it waited for the server."
            ) from exc
        return deadline
