"""Workload (x): the writer process of the cross-process write→read latency.

``python -m benchmarks._xwriter --system nbflow|dbos --url URL --items N --pause S --lead S
--warmup K`` opens the system on the PostgreSQL database ``URL`` in this (child) process: an
``nbflow.Runtime(url)`` of its own, or a DBOS instance of its own (``DBOS.launch()`` with an executor
id of its own, so that neither process recovers the other's workflows). It runs ``K`` trivial
workflows (warm-up), then starts the same ``write_stamped`` workflow as workload (c): after ``lead``
seconds, ``N`` items ``{"i": i, "t": time.perf_counter()}``, ``pause`` seconds apart. The benchmark
process, which opened the same database with its own runtime or DBOS instance, reads the stream
live and takes ``time.perf_counter() - t`` as each item's latency.

The clock: ``time.perf_counter()`` is ``clock_gettime(CLOCK_MONOTONIC)`` on Linux: one clock for
the whole machine (time since boot), read the same in every process, with nanosecond resolution
and, unlike ``time.time()``, never stepped by NTP. Where ``perf_counter`` is another clock the
stamps might not compare across processes, so :class:`WriterProcess` checks, before any item is
written, that both processes report the same clock implementation and that the child's reading of
it falls between two readings of the parent (before starting the child and after hearing from it).

The child talks to the parent in JSON lines on stdout: ``{"event": "ready", "clock": …,
"clock_implementation": …}`` after the warm-up, ``{"event": "started", "workflow_id": …}`` once the
workflow's row is committed (so the parent finds it), ``{"event": "done", "result": N}`` at the
end. Its stderr goes to a temporary file, shown when something fails.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from benchmarks._sizes import Sizes
from benchmarks._stores import Place

if TYPE_CHECKING:
    from benchmarks._systems import System

__all__ = ["WriterProcess", "main"]

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 120.0  # importing and launching the system in the child (DBOS: a few seconds)
EXIT_TIMEOUT = 60.0  # for the child to close and exit after its workflow ended


def clock_implementation() -> str:
    """What ``time.perf_counter()`` reads here, e.g. ``clock_gettime(CLOCK_MONOTONIC)``."""
    return str(time.get_clock_info("perf_counter").implementation)


class WriterProcess:
    """The writer child of workload (x), seen from the benchmark process (a context manager).

    Args:
        system: "nbflow" or "dbos".
        url: The PostgreSQL database the benchmark process has open.
        sizes: ``latency_items``, ``latency_pause``, ``cross_lead`` and ``warmup`` are used.
    """

    def __init__(self, system: str, url: str, sizes: Sizes) -> None:
        self.command = [
            sys.executable, "-m", "benchmarks._xwriter", "--system", system, "--url", url,
            "--items", str(sizes.latency_items), "--pause", repr(sizes.latency_pause),
            "--lead", repr(sizes.cross_lead), "--warmup", str(sizes.warmup),
        ]  # fmt: skip
        self._process: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    def __enter__(self) -> WriterProcess:
        self._stderr = tempfile.TemporaryFile("w+")
        self._spawned_at = time.perf_counter()
        self._process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        threading.Thread(target=self._pump, name="bench-xwriter-stdout", daemon=True).start()
        return self

    def _pump(self) -> None:
        """Hand the child's stdout lines to the parent (None at the end)."""
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-3000:].strip()

    def _expect(self, event: str, timeout: float) -> dict[str, Any]:
        """Wait for the child's next message, which must be ``event``."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(
                f"the writer process sent no {event!r} within {timeout:.0f} s\n"
                + self._stderr_tail()
            ) from None
        if line is None:
            assert self._process is not None
            code = self._process.wait()
            raise RuntimeError(
                f"the writer process exited (status {code}) before {event!r}:\n"
                + self._stderr_tail()
            )
        message: dict[str, Any] = json.loads(line)
        if message.get("event") != event:
            raise RuntimeError(f"the writer process sent {message!r}, expected {event!r}")
        return message

    def started(self) -> str:
        """Wait until the child's workflow is started and committed; return its id.

        Raises:
            RuntimeError: The child failed, or its ``perf_counter`` is not this process's clock.
        """
        ready = self._expect("ready", START_TIMEOUT)
        heard_at = time.perf_counter()
        here = clock_implementation()
        if ready["clock_implementation"] != here or not (
            self._spawned_at <= ready["clock"] <= heard_at
        ):
            raise RuntimeError(
                "time.perf_counter() is not one clock for both processes here (child: "
                f"{ready['clock_implementation']} = {ready['clock']:.6f}; parent: {here}, "
                f"{self._spawned_at:.6f} … {heard_at:.6f}): workload x cannot be measured"
            )
        workflow_id: str = self._expect("started", START_TIMEOUT)["workflow_id"]
        return workflow_id

    def finish(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the child to report its result, then for it to exit with
        status 0."""
        self._expect("done", timeout)
        assert self._process is not None
        code = self._process.wait(EXIT_TIMEOUT)
        if code != 0:
            raise RuntimeError(
                f"the writer process exited with status {code}:\n{self._stderr_tail()}"
            )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


# -- the child ---------------------------------------------------------------------------------


def _say(**message: Any) -> None:
    print(json.dumps(message), flush=True)


def _make_system(name: str) -> System:
    if name == "dbos":
        from benchmarks._dbos_system import DbosSystem

        return DbosSystem(executor_id=f"nbflow-bench-writer-{os.getpid()}")
    from benchmarks._systems import NbflowSystem

    return NbflowSystem()


def main(argv: list[str] | None = None) -> int:
    """Open the system, warm up, run ``write_stamped``, report on stdout, close."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks._xwriter", description=__doc__.split("\n\n", 1)[0]
    )
    parser.add_argument("--system", choices=("nbflow", "dbos"), required=True)
    parser.add_argument("--url", required=True, help="the PostgreSQL database")
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--pause", type=float, required=True)
    parser.add_argument("--lead", type=float, required=True)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    system = _make_system(args.system)
    with tempfile.TemporaryDirectory(prefix="nbflow-bench-xwriter-") as tmp:
        system.open(Place(Path(tmp), args.url))
        try:
            for _ in range(args.warmup):
                system.run_trivial()
            _say(
                event="ready",
                clock=time.perf_counter(),
                clock_implementation=clock_implementation(),
            )
            started = system.start_stamped(args.items, args.pause, args.lead)
            system.make_durable()
            _say(event="started", workflow_id=started.workflow_id)
            _say(event="done", result=started.wait())
        finally:
            system.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
