"""Side-by-side benchmarks: nbflow against DBOS Transact, on identical workloads.

Run ``python -m benchmarks.compare`` (``--help`` for the options; ``--store postgres`` for both
systems on one PostgreSQL server). The modules:

- :mod:`benchmarks.compare`: the command: runs the rounds, prints the table, writes JSON, profiles.
- :mod:`benchmarks._workloads`: sizes, the metrics (with their goals) and the workloads, written
  once against the small :class:`benchmarks._systems.System` interface.
- :mod:`benchmarks._systems`: that interface and the nbflow adapter (declares its workflows).
- :mod:`benchmarks._dbos_system`: the DBOS Transact adapter (imported only when DBOS is selected).
- :mod:`benchmarks._stores`: where the databases are: files in temporary directories (DuckDB,
  SQLite), or fresh databases on one PostgreSQL server (``--store postgres``, ``--pg-url``).
- :mod:`benchmarks._xwriter`: the writer child process of workload (x), cross-process latency.
- :mod:`benchmarks._rss`: the child process of workload (f), peak RSS while reading a long stream.
- :mod:`benchmarks._profile`: ``--profile``: pyinstrument on every thread a workload starts.
"""

from __future__ import annotations
