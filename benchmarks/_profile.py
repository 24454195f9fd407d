"""``--profile``: run one workload for nbflow under pyinstrument, on every thread it uses.

pyinstrument samples only the thread it was started on, while nbflow runs workflows and commits on
threads of its own. So while profiling, :class:`ThreadProfiles` wraps ``threading.Thread.run``: each
thread started meanwhile gets its own profiler, and the sessions are combined per kind of thread
(``nbflow-workflow-1a2b3c4d`` and ``nbflow-workflow-5e6f7a8b`` are one kind). The main thread is
profiled too. Times are wall-clock: a thread waiting on a lock or a commit shows where it waits.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from benchmarks._stores import BenchStore
from benchmarks._workloads import UNITS, Sizes

__all__ = ["ThreadProfiles", "profile_nbflow"]

_ID_SUFFIX = re.compile(r"[-_][0-9a-f]{4,}$|[-_ ]\d+(?: \(\w+\))?$")


class ThreadProfiles:
    """While active, every new thread and the current one run under their own pyinstrument profiler."""

    def __init__(self, interval: float = 0.0005) -> None:
        self.interval = interval
        self.sessions: dict[str, list[Any]] = {}
        self._lock = threading.Lock()
        self._original_run: Any = None
        self._main: Any = None
        self._threads: list[threading.Thread] = []  # started while profiling

    def _add(self, name: str, session: Any) -> None:
        if session is None:
            return
        kind = _ID_SUFFIX.sub("", name) or name
        with self._lock:
            self.sessions.setdefault(kind, []).append(session)

    def __enter__(self) -> ThreadProfiles:
        from pyinstrument import Profiler

        original = self._original_run = threading.Thread.run
        profiles = self

        def run(thread: threading.Thread) -> None:
            name = thread.name  # (a workflow thread is renamed when it goes idle)
            with profiles._lock:
                profiles._threads.append(thread)
            profiler = Profiler(interval=profiles.interval, async_mode="disabled")
            profiler.start()
            try:
                original(thread)
            finally:
                profiles._add(name, profiler.stop())

        threading.Thread.run = run  # type: ignore[method-assign]
        self._main = Profiler(interval=self.interval, async_mode="disabled")
        self._main.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._add("main", self._main.stop())
        for thread in list(self._threads):  # the closed runtime's threads, ending
            thread.join(timeout=10)
        threading.Thread.run = self._original_run  # type: ignore[method-assign]

    @staticmethod
    def _merge_threads(session: Any) -> Any:
        """Drop the per-thread root frame, so threads of one kind merge into one tree."""

        def strip(stack: list[str]) -> list[str]:
            return stack[1:] if stack and "\x00<thread>\x00" in stack[0] else stack

        session.frame_records = [(strip(stack), *rest) for stack, *rest in session.frame_records]
        session.start_call_stack = strip(list(session.start_call_stack))
        return session

    def render(self) -> str:
        """The combined profile of each kind of thread, as text, busiest first."""
        from pyinstrument.renderers import ConsoleRenderer
        from pyinstrument.session import Session

        parts = []
        combined = []
        for kind, sessions in self.sessions.items():
            sessions = [self._merge_threads(s) for s in sessions]
            total = sessions[0]
            for session in sessions[1:]:
                total = Session.combine(total, session)
            combined.append((kind, len(sessions), total))
        combined.sort(key=lambda entry: -entry[2].duration)
        renderer = ConsoleRenderer(unicode=True, color=False, short_mode=False)
        for kind, count, session in combined:
            threads = f"{count} threads" if count > 1 else "1 thread"
            parts.append(f"=== {kind} ({threads}, {session.duration:.3f} s sampled) ===")
            parts.append(renderer.render(session))
        return "\n".join(parts)


def profile_nbflow(workload: str, sizes: Sizes, store: BenchStore) -> str:
    """Run ``workload`` (a letter) once for nbflow on ``store`` under the profiler; return the
    text report (for (x), of this process: the reader, not the writer child)."""
    from benchmarks._rss import measure_read, write_stream
    from benchmarks._systems import NbflowSystem

    with store.place("nbflow") as place:
        location = place.pg_url or place.directory / "nbflow.duckdb"
        if workload == "f":
            with ThreadProfiles() as profiles:
                workflow_id, write_s = write_stream(location, sizes.rss_items)
                result = measure_read(location, workflow_id, sizes.rss_items)
            summary = f"(f) wrote {sizes.rss_items:,} items in {write_s:.2f} s, read them back in {result['read_s']:.2f} s; peak RSS growth {result['growth_mb']:.1f} MB"
        else:
            unit = next(u for u in UNITS if workload in u.covers)
            system = NbflowSystem()
            with ThreadProfiles() as profiles:  # opened inside: the committer thread is profiled
                system.open(place)
                try:
                    values = unit.run(system, sizes, {workload})
                finally:
                    system.close()
            summary = ", ".join(f"{key} = {value:,.3f}" for key, value in values.items())
    where = "" if store.name == "duckdb" else f" on {store.name}"
    return f"nbflow{where}, workload {workload}: {summary}\n\n{profiles.render()}"
