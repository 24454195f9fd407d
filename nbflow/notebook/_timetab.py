"""The live view's Timeline toggle: a button, and under it the workflow's Gantt chart.

The chart is read and drawn only while the toggle is on: turning it on starts a
:class:`~nbflow.notebook._timeline.Timeline` whose reader thread redraws it (throttled) until
the workflow has ended; turning it off stops that thread. The widgets are changed only by
assigning traits, never from a ``with`` block, as the live view's rules say
(:mod:`nbflow.notebook._view`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from nbflow.engine._runtime import Runtime
from nbflow.notebook._timeline import Timeline

__all__ = ["TimelineTab"]

logger = logging.getLogger("nbflow.notebook")

#: Says which workflow to chart, and on which runtime (no workflow yet: None).
Source = Callable[[], "tuple[Runtime, str | None]"]


class TimelineTab:
    """A "Timeline" toggle button and the chart it shows (ipywidgets).

    Args:
        source: Which runtime and workflow to chart, asked when the toggle turns on.
        rate: Redraws per second at most while the workflow runs.

    Attributes:
        button: The toggle (``ToggleButton``).
        chart: The chart (``HTML``), shown while the toggle is on.
    """

    def __init__(self, source: Source, rate: float = 2.0) -> None:
        import ipywidgets as w

        self._source, self._rate = source, rate
        self._lock = threading.Lock()
        self.timeline: Timeline | None = None
        self.button = w.ToggleButton(
            value=False,
            description="Timeline",
            tooltip="Show a Gantt chart of the workflow's steps, streams and children",
            layout=w.Layout(width="auto", align_self="flex-start"),
            style={"font_size": "0.85em"},
        )
        self.button.add_class("nbflow-timeline-toggle")
        self.chart = w.HTML(layout=w.Layout(display="none", overflow="auto"))
        self.chart.add_class("nbflow-timeline-chart")
        self.button.observe(self._toggled, names="value")

    def _toggled(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.show()
        else:
            self.hide()

    def show(self) -> None:
        """Draw the chart, then follow the workflow while it runs."""
        runtime, workflow_id = self._source()
        if workflow_id is None or runtime.closed:
            return
        timeline = Timeline(workflow_id, runtime=runtime, rate=self._rate)
        timeline.on_update(self._draw)
        self._draw(timeline.refresh())
        self.chart.layout.display = ""
        with self._lock:
            old, self.timeline = self.timeline, timeline
        if old is not None:
            old.close()
        timeline.start()

    def hide(self) -> None:
        """Stop following and hide the chart."""
        self.chart.layout.display = "none"
        self.close()

    def close(self) -> str:
        """Stop the chart's reader; the chart's HTML when it is shown, else ''."""
        with self._lock:
            timeline, self.timeline = self.timeline, None
        if timeline is not None:
            timeline.close()
            with contextlib.suppress(Exception):  # the runtime closed: keep the last drawing
                if not timeline.final:
                    self._draw(timeline.refresh())
        return str(self.chart.value) if self.button.value else ""

    def _draw(self, svg: str) -> None:
        self.chart.value = f'<div class="nbflow-timeline-view">{svg}</div>'
