"""How big each benchmark workload is: the full sizes and the quick ones (``--quick``, tests).

A leaf: the workloads (:mod:`benchmarks._workloads`) and the cross-process writer
(:mod:`benchmarks._xwriter`) both read it, and neither imports the other's module for it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["FULL", "QUICK", "Sizes"]


@dataclass(frozen=True)
class Sizes:
    """How big each workload is."""

    steps: int = 1000  # (a) steps in one workflow
    stream_items: int = 10_000  # (b) items written, (e) items read back
    latency_items: int = 1000  # (c) items written, one every latency_pause s
    latency_pause: float = 0.001
    latency_lead: float = 0.05  # (c) the writer waits this long so the reader is subscribed
    cross_lead: float = 0.5  # (x) the same, with the reader in another process than the writer
    trivial_runs: int = 200  # (d) trivial workflows, one after the other
    rss_items: int = 1_000_000  # (f) items in the stream read back in a child process
    writers: int = 8  # (g) concurrent workflows
    writer_items: int = 5000  # (g) items each
    fanout_items: int = 500  # (h) items of one workflow, each a step sleeping fanout_pause s
    fanout_pause: float = 0.05
    fanout_concurrency: int = 16  # (h) items at once
    fanout_fast_poll: float = 0.05  # (h1) DBOS's queue polling interval (its default: 1 s)
    small_workflows: int = 1000  # (i) workflows of small_steps trivial steps
    small_steps: int = 5
    small_batch: int = 100  # (i) started at once; the next batch starts when all have ended
    recover_workflows: int = 200  # (r) interrupted workflows, recovered at once
    recover_steps: int = 3  # (r) steps each recorded before its process was killed
    warmup: int = 3  # trivial workflows run after opening, before measuring

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FULL = Sizes()
QUICK = Sizes(
    steps=50,
    stream_items=200,
    latency_items=50,
    trivial_runs=20,
    rss_items=20_000,
    writers=8,
    writer_items=100,
    fanout_items=40,
    small_workflows=100,
    small_batch=50,
    recover_workflows=20,
    warmup=1,
)
