"""nbflow against DBOS Transact, side by side: ``python -m benchmarks.compare``.

Runs the workloads below for both systems in one process, alternating (nbflow, DBOS, nbflow, DBOS
…): in each round every workload runs once per system, each time on a fresh database file in a
fresh temporary directory (nbflow: DuckDB; DBOS: its default SQLite file, default journal mode).
Prints a markdown table of the medians over the rounds, the ratio (how many times faster nbflow is)
and nbflow's goal with a ✓/✗ mark, with the machine described above it.

``--store postgres`` runs both systems on one PostgreSQL server instead, each workload and system
in a fresh database of its own (nbflow: ``nbflow.Runtime(url)``; DBOS: that URL as its
``system_database_url``, with its defaults): the server given by ``--pg-url`` (whose user may create
databases; they are dropped after use), else a throwaway server started with ``fsync=on`` (see
:mod:`tests.support.pgserver`) and stopped at the end. The header names the server's version and its
``fsync`` and ``synchronous_commit`` settings. PostgreSQL adds the cross-process workloads (x), (x1).

Workloads:
  a  per-step overhead: a workflow of 1,000 trivial steps (µs per step, start to durable result)
  b  stream writes: 10,000 small dicts written from the workflow body (items/s, to the result)
  c  write→read latency p50/p99: a reader thread in the same process while the workflow writes
     1,000 items 1 ms apart, each stamped with time.perf_counter() (ms)
  c1 the same with DBOS's reader polling every 1 ms instead of its default 1 s (nbflow: same as c)
  d  trivial workflow, start → result (ms, median of 200 one after the other)
  e  read back the closed 10,000-item stream of (b) (items/s)
  f  peak RSS growth while reading a closed 1,000,000-item stream (MB, nbflow only, child process)
  g  8 workflows writing 5,000 items each, concurrently (total items/s)
  h  fan-out: one workflow over 500 items, each a step sleeping 50 ms, 16 at once (items/s; ideal
     320); then checks that all 500 are recorded as steps. nbflow: ``nbflow.map(step, items,
     concurrency=16)`` in the workflow; DBOS: 500 child workflows (each calling the step) enqueued
     on a queue with ``worker_concurrency=16``, its default polling (1 s), the parent waiting for all
  h1 the same with DBOS's queue polled every 50 ms (nbflow: same as h)
  i  1,000 workflows of 5 trivial steps, started 100 at a time: start 100, wait for all their
     results, start the next 100 … (workflows/s)
  r  recover 200 interrupted workflows: a child process starts 200 workflows that record 3 trivial
     steps each and block, and is killed with SIGKILL; then the system, open again, recovers them
     (s, from the call until all 200 results are durable). nbflow: ``Runtime.recover()``; DBOS:
     ``DBOS._recover_pending_workflows(["local"])`` (what its launch does in the background; the
     killed process had DBOS's default executor id, the recovering one another, so that its
     launch recovers nothing by itself), then each handle's ``get_result()``
  x  cross-process write→read latency p50/p99 (PostgreSQL only): a child process writes as in (c),
     with its own runtime (DBOS instance) on the same database; this process reads (ms)
  x1 the same with DBOS's reader polling every 1 ms instead of its default 1 s (nbflow: same as x)

Isolation: both systems' workflows are declared once, at import. nbflow opens a
``nbflow.Runtime(path)`` (or ``nbflow.Runtime(url)``) per workload and closes it after. A DBOS instance is bound to one database
URL when constructed, so DBOS is constructed and launched per workload and ``DBOS.destroy()``-ed
after it (the registry of declared workflows survives); destroy joins its background threads, so
neither system has threads running while the other is measured. Each workload first runs a few
trivial workflows (warm-up) that are not measured.

On PostgreSQL, workload (f) writes and reads its stream in a fresh database too, and in (x) the
writer is a child process (:mod:`benchmarks._xwriter`) that opens the same database as the open
system, warms up, and writes; the stamps are ``time.perf_counter()``, which on Linux is
``CLOCK_MONOTONIC``, one clock for all processes of the machine (checked before each run).

A full run takes about 14 minutes on a 2-core machine, nearly all of it DBOS writing streams
(workload g alone: about 130 s per round) and running its queue (h: 35 s, h1: 10 s, i: 25 s per
round, where nbflow takes 2, 2 and 4 s); on PostgreSQL about 16 minutes (g: 130 s, b: 50 s, h: 35 s,
i: 15 s per round for DBOS; f: 30 s per round for nbflow). ``--quick`` takes about 25 (PostgreSQL:
30) seconds.

Options: ``--rounds N`` (3), ``--only a,b,…``, ``--systems nbflow,dbos``, ``--quick`` (tiny sizes, one
round), ``--json FILE`` (raw numbers too), ``--profile X`` (workload X for nbflow under pyinstrument),
``--store duckdb|postgres`` (duckdb), ``--pg-url URL`` (a PostgreSQL server to use; implies
``--store postgres``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from benchmarks._stores import STORES, BenchStore, open_store
from benchmarks._systems import NbflowSystem, System
from benchmarks._workloads import FULL, METRICS, QUICK, UNITS, Metric, Sizes, Unavailable

__all__ = ["Results", "format_table", "machine_info", "main", "run"]

ROOT = Path(__file__).resolve().parent.parent
LETTERS = ("a", "b", "c", "c1", "d", "e", "f", "g", "h", "h1", "i", "r", "x", "x1")
SHARED_ONLY = ("x", "x1")  # need a database several processes use at once (PostgreSQL)
SYSTEMS = ("nbflow", "dbos")


def log(message: str) -> None:
    """Progress, on stderr (the table goes to stdout)."""
    print(message, file=sys.stderr, flush=True)


# -- the machine -----------------------------------------------------------------------------


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gb": _memory_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "duckdb": _package_version("duckdb"),
        "dbos": _package_version("dbos"),
        "sqlite": sqlite3.sqlite_version,
        "nbflow": _package_version("nbflow"),
        "tmpdir": tempfile.gettempdir(),
    }


def describe_machine(info: dict[str, Any]) -> str:
    memory = f", {info['memory_gb']:.0f} GB RAM" if info.get("memory_gb") else ""
    return (
        f"- Machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable){memory}; "
        f"{info['os']}\n"
        f"- Python {info['python']}, duckdb {info['duckdb']}, dbos {info['dbos']} "
        f"(SQLite {info['sqlite']}, default journal mode), nbflow {info['nbflow']}\n"
        f"- Database files in fresh directories under {info['tmpdir']}"
    )


def _pg_version(store: dict[str, Any]) -> str:
    """``15.18`` from ``15.18 (Debian 15.18-0+deb12u1)``."""
    return str(store.get("server_version", "?")).split(" ", 1)[0]


def describe_postgres(info: dict[str, Any], store: dict[str, Any]) -> str:
    """The machine and the PostgreSQL server, for the header of a ``--store postgres`` table."""
    memory = f", {info['memory_gb']:.0f} GB RAM" if info.get("memory_gb") else ""
    where = f", data in {store['data_directory']}" if store.get("data_directory") else ""
    return (
        f"- Machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable){memory}; "
        f"{info['os']}\n"
        f"- Store: PostgreSQL {store['server_version']} at {store['host']} (TCP; {store['server']}"
        f"{where}): fsync {store['fsync']}, synchronous_commit {store['synchronous_commit']}, "
        f"wal_sync_method {store['wal_sync_method']}, shared_buffers {store['shared_buffers']}. "
        "Both systems on this server, every workload and system in a fresh database of its own.\n"
        f"- Python {info['python']}, nbflow {info['nbflow']} (its PostgreSQL store, psycopg "
        f"{store['psycopg']}), dbos {info['dbos']} (its PostgreSQL system database, SQLAlchemy "
        f"{store['sqlalchemy']} with psycopg, default settings)"
    )


#: Under the PostgreSQL table: how each system's reader learns of items written elsewhere.
POSTGRES_NOTES = """\
- x: the writer is a child process with its own nbflow runtime (DBOS instance, own executor id) on
  the same database; the reader is the benchmark process. Stamps: `time.perf_counter()`
  (CLOCK_MONOTONIC on Linux, one clock for every process; checked). nbflow sends one NOTIFY per
  commit per workflow, in the commit's transaction; the reader's LISTEN connection wakes it and it
  queries the new items (it also polls every 1 s). DBOS (its defaults: `use_listen_notify` on,
  `notification_coalesce_sec` 0.01) queues a wake-up after each write's commit and a background
  thread sends the queued NOTIFYs every 10 ms; its reader also polls every 1 s (x1: every 1 ms).
- c, c1: the reader is a thread of the writer's process. nbflow hands committed items to it
  directly; DBOS's reader waits for the same NOTIFY (or its poll) as in x.
- Goals: those of a to h were set for the DuckDB store; x's (p50 ≤ 20 ms) is the PostgreSQL one."""


# -- running ---------------------------------------------------------------------------------


@dataclass
class Results:
    """Per-round values and errors, by metric key and system."""

    sizes: Sizes
    rounds: int
    systems: list[str]
    letters: list[str]
    titles: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    errors: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    extra: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # letter -> why it did not run
    #: metric key -> system -> why that system cannot run it (e.g. a feature not there yet)
    unavailable: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(self, key: str, system: str, value: float) -> None:
        self.values.setdefault(key, {}).setdefault(system, []).append(value)

    def fail(self, key: str, system: str, error: str) -> None:
        self.errors.setdefault(key, {}).setdefault(system, []).append(error)

    def median(self, key: str, system: str) -> float | None:
        values = self.values.get(key, {}).get(system)
        return statistics.median(values) if values else None

    def error(self, key: str, system: str) -> str | None:
        errors = self.errors.get(key, {}).get(system)
        return errors[-1] if errors else None


def _make_systems(names: list[str]) -> dict[str, System]:
    systems: dict[str, System] = {}
    for name in names:
        if name == "nbflow":
            systems[name] = NbflowSystem()
        elif name == "dbos":
            from benchmarks._dbos_system import DbosSystem

            systems[name] = DbosSystem()
    return systems


def _metric_keys(letters: set[str]) -> list[str]:
    return [m.key for m in METRICS if m.workload in letters]


def _fmt(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _run_unit(
    system: System, unit_run: Any, sizes: Sizes, wanted: set[str], store: BenchStore
) -> tuple[dict[str, float], float]:
    with store.place(system.name) as place:
        system.open(place)
        t0 = time.perf_counter()
        try:
            values = unit_run(system, sizes, wanted)
        finally:
            system.close()
            gc.collect()
        return values, time.perf_counter() - t0


def _run_rss(sizes: Sizes, store: BenchStore) -> dict[str, Any]:
    with store.place("nbflow") as place:
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks._rss", "--items", str(sizes.rss_items), "--dir", str(place.directory),
             *(["--url", place.pg_url] if place.pg_url else [])],
            cwd=ROOT, capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
    if child.returncode != 0:
        raise RuntimeError(f"the (f) child failed:\n{child.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def run(
    sizes: Sizes,
    rounds: int,
    system_names: list[str],
    letters: list[str],
    store: BenchStore | None = None,
) -> Results:
    """Run the selected workloads ``rounds`` times, alternating the systems within each round.

    ``store``: where the databases are (default: files in temporary directories). Workloads that
    need a database shared by processes are skipped, with the reason, on a store that is not.
    """
    store = store or open_store("duckdb")
    systems = _make_systems(system_names)
    results = Results(sizes, rounds, system_names, letters)
    results.titles = {name: s.title for name, s in systems.items()}
    wanted = set(letters)
    for unit in UNITS:
        if unit.shared and not store.shared:
            for letter in sorted(unit.covers & wanted):
                results.skipped[letter] = (
                    "not applicable on DuckDB: a database file is open in one process at a time "
                    "(run it with --store postgres)"
                )
    for r in range(rounds):
        log(f"round {r + 1}/{rounds}")
        for unit in UNITS:
            covered = unit.covers & wanted
            if not covered or (unit.shared and not store.shared):
                continue
            keys = _metric_keys(covered)
            for name, system in systems.items():
                try:
                    values, elapsed = _run_unit(system, unit.run, sizes, covered, store)
                except Unavailable as exc:
                    log(f"  {unit.name:<4} {name:<7} {exc}")
                    for key in keys:
                        results.unavailable.setdefault(key, {})[name] = str(exc)
                    continue
                except Exception as exc:
                    message = f"{type(exc).__name__}: {exc}"
                    log(f"  {unit.name:<4} {name:<7} FAILED {message}")
                    log(traceback.format_exc())
                    for key in keys:
                        results.fail(key, name, message)
                    continue
                for key, value in values.items():
                    results.add(key, name, value)
                shown = ", ".join(f"{k} {_fmt(v)}" for k, v in values.items())
                log(f"  {unit.name:<4} {name:<7} {shown}  ({elapsed:.1f} s)")
        if "f" in wanted and "nbflow" in systems:
            t0 = time.perf_counter()
            try:
                rss = _run_rss(sizes, store)
            except Exception as exc:
                log(f"  f    nbflow  FAILED {exc}")
                results.fail("f", "nbflow", f"{type(exc).__name__}: {exc}"[:300])
            else:
                results.add("f", "nbflow", rss["growth_mb"])
                results.extra.setdefault("f", []).append(rss)
                log(
                    f"  f    nbflow  f {rss['growth_mb']:.1f} MB (peak {rss['hwm_before_kb'] / 1024:.0f} → "
                    f"{rss['hwm_after_kb'] / 1024:.0f} MB; wrote {sizes.rss_items:,} items in "
                    f"{rss['write_s']:.1f} s, read them in {rss['read_s']:.1f} s)  "
                    f"({time.perf_counter() - t0:.1f} s)"
                )
    return results


# -- the table -------------------------------------------------------------------------------


def _speedup(metric: Metric, nb: float | None, other: float | None) -> str:
    if nb is None or other is None or nb <= 0 or other <= 0:
        return "—"
    ratio = nb / other if metric.higher_is_better else other / nb
    if ratio >= 1:
        return f"{ratio:,.0f}x faster" if ratio >= 100 else f"{ratio:.1f}x faster"
    return f"{1 / ratio:.1f}x slower"


def _cell(results: Results, key: str, system: str, metric: Metric) -> str:
    if metric.nbflow_only and system != "nbflow":
        return "n/a"
    value = results.median(key, system)
    if value is not None:
        return _fmt(value)
    error = results.error(key, system)
    if error:
        return "error"
    return "n/a" if system in results.unavailable.get(key, {}) else "—"


def format_table(results: Results) -> str:
    """The markdown table of medians, ratios and goals."""
    systems = results.systems
    both = "nbflow" in systems and "dbos" in systems
    header = ["", "workload", "unit"] + [results.titles.get(s, s) for s in systems]
    if both:
        header.append("nbflow vs DBOS")
    if "nbflow" in systems:
        header += ["goal (nbflow)", "met"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for metric in METRICS:
        if metric.workload not in results.letters or metric.workload in results.skipped:
            continue
        if metric.nbflow_only and "nbflow" not in systems:
            continue
        row = [metric.workload, metric.label(results.sizes), metric.unit]
        row += [_cell(results, metric.key, s, metric) for s in systems]
        nb = results.median(metric.key, "nbflow")
        if both:
            row.append(
                "—"
                if metric.nbflow_only
                else _speedup(metric, nb, results.median(metric.key, "dbos"))
            )
        if "nbflow" in systems:
            row.append(metric.goal_text)
            row.append(
                "—" if metric.goal is None or nb is None else ("✓" if metric.meets(nb) else "✗")
            )
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def format_unavailable(results: Results) -> str:
    """One line per workload and system that could not run, with the reason."""
    lines = []
    for key, by_system in results.unavailable.items():
        for system, reason in by_system.items():
            lines.append(f"- {key} / {system}: n/a, {reason}.")
    return "\n".join(lines)


def format_errors(results: Results) -> str:
    lines = []
    for key, by_system in results.errors.items():
        for system, errors in by_system.items():
            lines.append(f"- {key} / {system}: {len(errors)} failed run(s); last: {errors[-1]}")
    return "\n".join(lines)


# -- the command -----------------------------------------------------------------------------


def _parse_list(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [item for item in items if item not in allowed]
    if unknown or not items:
        raise argparse.ArgumentTypeError(
            f"unknown {what}: {', '.join(unknown) or text!r}; choose from {', '.join(allowed)}"
        )
    return [item for item in allowed if item in items]


def _dbos_available() -> str | None:
    """None when dbos can be imported, else why not."""
    try:
        import dbos  # noqa: F401
    except ImportError as exc:
        return f"dbos is not importable ({exc}); install the bench extra: pip install -e '.[bench]'"
    return None


def _report(
    args: argparse.Namespace,
    results: Results,
    info: dict[str, Any],
    store_info: dict[str, Any],
    elapsed: float,
) -> None:
    """Print the header, the table and the notes to stdout."""
    sizes = "quick" if args.quick else "full"
    systems = results.systems
    order = ", then ".join(results.titles[s] for s in systems)
    if store_info["store"] == "postgres":
        print(
            f"## nbflow vs DBOS Transact on PostgreSQL {_pg_version(store_info)} "
            f"(fsync {store_info['fsync']}, synchronous_commit {store_info['synchronous_commit']}; "
            f"{sizes} sizes)\n"
        )
        print(describe_postgres(info, store_info))
        fresh = "each in a fresh database"
    else:
        print(f"## nbflow vs DBOS Transact ({sizes} sizes)\n")
        print(describe_machine(info))
        fresh = "each on a fresh database file"
    print(
        f"- Medians of {results.rounds} round(s); in each, every workload ran once per system in "
        f"this order: {order}, {fresh}. Ratio: how many times faster nbflow is. "
        f"Whole run: {elapsed:.0f} s."
    )
    if args.quick:
        print("- Quick sizes: the goals are for the full sizes; the marks mean little here.")
    print()
    print(format_table(results))
    if store_info["store"] == "postgres" and set(results.letters) & {"x", "x1", "c", "c1"}:
        print("\n" + POSTGRES_NOTES)
    for letter, reason in results.skipped.items():
        print(f"\n- {letter}: {reason}.")
    unavailable = format_unavailable(results)
    if unavailable:
        print("\n" + unavailable)
    errors = format_errors(results)
    if errors:
        print("\nErrors:\n" + errors)


def _write_json(
    path: Path,
    results: Results,
    info: dict[str, Any],
    store_info: dict[str, Any],
    elapsed: float,
) -> None:
    """The raw numbers, for ``--json``."""
    systems = results.systems
    raw = {
        "machine": info,
        "store": store_info,
        "sizes": results.sizes.as_dict(),
        "rounds": results.rounds,
        "systems": {s: results.titles[s] for s in systems},
        "elapsed_s": elapsed,
        "metrics": {
            m.key: {
                "label": m.label(results.sizes),
                "unit": m.unit,
                "higher_is_better": m.higher_is_better,
                "goal": m.goal,
                "values": results.values.get(m.key, {}),
                "median": {s: results.median(m.key, s) for s in systems},
                "errors": results.errors.get(m.key, {}),
            }
            for m in METRICS
            if m.workload in results.letters and m.workload not in results.skipped
        },
        "skipped": results.skipped,
        "unavailable": results.unavailable,
        "extra": results.extra,
    }
    path.write_text(json.dumps(raw, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compare",
        description="nbflow against DBOS Transact on identical workloads.",
        epilog=__doc__.split("Workloads:", 1)[1].split("Isolation:", 1)[0].rstrip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds (default 3; 1 with --quick)"
    )
    parser.add_argument(
        "--only",
        type=lambda t: _parse_list(t, LETTERS, "workload"),
        default=None,
        help="workloads, e.g. a,b,d (default: all; x and x1 only with --store postgres)",
    )
    parser.add_argument(
        "--systems",
        type=lambda t: _parse_list(t, SYSTEMS, "system"),
        default=list(SYSTEMS),
        help="nbflow,dbos",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes and one round (a smoke test)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the raw numbers here")
    parser.add_argument(
        "--profile",
        choices=LETTERS,
        metavar="X",
        help="run workload X for nbflow under pyinstrument and print the profile",
    )
    parser.add_argument(
        "--store",
        choices=STORES,
        default=None,
        help="duckdb (default: nbflow on DuckDB files, DBOS on SQLite files) or postgres (both "
        "on one PostgreSQL server)",
    )
    parser.add_argument(
        "--pg-url",
        metavar="URL",
        help="postgresql://user@host:port/db of a server whose user may create databases "
        "(implies --store postgres; default: a throwaway server with fsync on, stopped at the end)",
    )
    args = parser.parse_args(argv)  # fmt: skip
    sizes = QUICK if args.quick else FULL
    if args.pg_url and args.store == "duckdb":
        parser.error("--pg-url is for --store postgres")
    store_name = "postgres" if args.pg_url else (args.store or "duckdb")
    if args.only is None:
        args.only = [x for x in LETTERS if store_name == "postgres" or x not in SHARED_ONLY]

    if args.profile:
        from benchmarks._profile import profile_nbflow

        if args.profile in SHARED_ONLY and store_name != "postgres":
            parser.error(f"workload {args.profile} needs --store postgres")
        store = open_store(store_name, args.pg_url)
        try:
            print(profile_nbflow(args.profile, sizes, store))
        finally:
            store.close()
        return 0

    systems: list[str] = args.systems
    if "dbos" in systems and (reason := _dbos_available()) is not None:
        log(f"Skipping DBOS: {reason}")
        systems = [s for s in systems if s != "dbos"]
        if not systems:
            return 1
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    info = machine_info()
    store = open_store(store_name, args.pg_url)
    try:
        store_info = store.info()
        if store_name == "postgres":
            log(
                f"PostgreSQL {_pg_version(store_info)} at {store_info['host']}, "
                f"fsync {store_info['fsync']}"
            )
        t0 = time.perf_counter()
        results = run(sizes, rounds, systems, args.only, store)
        elapsed = time.perf_counter() - t0
    finally:
        store.close()

    _report(args, results, info, store_info, elapsed)
    if args.json:
        _write_json(args.json, results, info, store_info, elapsed)
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main())
