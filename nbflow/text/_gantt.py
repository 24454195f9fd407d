"""A Gantt chart as SVG: rows of labelled bars on a time axis, rows of ticks, markers.

The chart is described by plain records (:class:`Chart`, :class:`Row`, :class:`Bar`) and drawn
by :func:`render_svg` with :class:`~nbflow.text._svg.Svg`. It reads in light and dark themes:
text, axis and grid use ``currentColor`` (the page's text colour); the bars use mid-tone fills
that stand out on white and on black, and the colours of the live view's end states (green
success, red error, orange warning).

What keeps a large chart fast: in each row, bars closer together than a pixel that carry no
marker are drawn as one rectangle whose tooltip counts them; so a row draws at most about as
many rectangles as it is pixels wide. Markers: a failed bar has a cross at its end
(``nbflow-error-mark``), a bar that took more than one attempt a dot at its start
(``nbflow-retry-mark``); every bar has a ``<title>`` tooltip.
"""

from __future__ import annotations

import html
import math
from typing import NamedTuple

from nbflow.text._svg import Svg

__all__ = ["COLOURS", "Bar", "Chart", "Row", "axis_steps", "html_page", "render_svg"]

#: Fills by bar kind. The end states are the live view's colours.
COLOURS = {
    "step": "#5b8fd0",
    "cached": "#5b8fd0",
    "retry": "#fb8c00",
    "error": "#e53935",
    "success": "#4caf50",
    "running": "#29b6f6",
    "pending": "#9e9e9e",
    "cancelled": "#9e9e9e",
}
WIDTH = 960  # pixels
LABELS = 230  # the label column
RIGHT = 24  # room right of the plot (a marker at the very end)
TOP = 44  # the title and the axis
ROW = 20  # a row's height
BAR = 12  # a bar's height
LABEL_CHARS = 34  # characters of a label shown (the whole in its tooltip)


class Bar(NamedTuple):
    """One bar: from ``start`` to ``end`` (seconds on the axis), of a ``kind`` of :data:`COLOURS`.

    Attributes:
        error: Draw the error marker at its end.
        attempts: More than 1: draw the retry marker at its start.
    """

    start: float
    end: float
    kind: str
    title: str
    error: bool = False
    attempts: int = 1


class Row(NamedTuple):
    """One row: a label, its bars and its ticks (seconds on the axis), indented ``indent``
    levels. ``kind`` is a class of the row's group (``workflow``, ``step``, ``lane``,
    ``stream``, ``note``)."""

    label: str
    bars: tuple[Bar, ...] = ()
    ticks: tuple[float, ...] = ()
    title: str = ""
    indent: int = 0
    kind: str = "step"


class Chart(NamedTuple):
    """A whole chart: its title, the length of its axis in seconds, its rows; ``live`` draws a
    line at the axis' end (now) saying it still runs; ``note`` is a line under the chart."""

    title: str
    span: float
    rows: tuple[Row, ...]
    live: bool = False
    note: str = ""


def axis_steps(span: float, most: int = 10) -> float:
    """The interval of the axis' grid lines: 1, 2 or 5 times a power of ten seconds (below a
    minute), else whole minutes or hours, such that at most ``most`` lines fit in ``span``."""
    span = max(span, 1e-3)
    minutes = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
    for step in minutes if span > 60 * most / 2 else ():
        if span / step <= most:
            return float(step)
    power = 10.0 ** math.floor(math.log10(span / most))
    for factor in (1, 2, 5, 10):
        if span / (factor * power) <= most:
            return factor * power
    return 10 * power


def _axis_label(seconds: float) -> str:
    if seconds >= 3600:
        hours, rest = divmod(round(seconds), 3600)
        return f"{hours} h" + (f" {rest // 60:02d}" if rest else "")
    if seconds >= 60:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min" + (f" {rest:02d}" if rest else "")
    return f"{seconds:.3g} s"


def _short(text: str, chars: int = LABEL_CHARS) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _merged(bars: tuple[Bar, ...], scale: float) -> list[Bar]:
    """The bars, with each run of plain bars (no marker) of one kind less than a pixel apart
    drawn as one, whose tooltip says how many it holds and the first one's."""
    runs: list[list[Bar]] = []
    ends: list[float] = []  # each run's end
    for bar in sorted(bars, key=lambda b: (b.start, b.end)):
        run = runs[-1] if runs else None
        if (
            run is not None
            and _plain(bar)
            and _plain(run[-1])
            and run[-1].kind == bar.kind
            and (bar.start - ends[-1]) * scale < 1.0
        ):
            run.append(bar)
            ends[-1] = max(ends[-1], bar.end)
        else:
            runs.append([bar])
            ends.append(bar.end)
    out = []
    for run, end in zip(runs, ends, strict=True):
        first = run[0]
        if len(run) > 1:
            title = f"{len(run):,} bars drawn as one, the first:\n{first.title}"
            first = first._replace(end=end, title=title)
        out.append(first)
    return out


def _plain(bar: Bar) -> bool:
    return not bar.error and bar.attempts <= 1


def render_svg(chart: Chart) -> str:
    """Draw ``chart`` as one self-contained ``<svg>`` element (see the module docstring)."""
    plot = WIDTH - LABELS - RIGHT
    span = chart.span if chart.span > 0 else 1.0
    scale = plot / span
    height = TOP + ROW * len(chart.rows) + (22 if chart.note else 8)
    svg = Svg(
        WIDTH,
        height,
        chart.title,
        class_="nbflow-timeline",
        font_family="sans-serif",
        font_size=11,
        fill="currentColor",
    )
    _axis(svg, chart, span, scale, height)
    for index, row in enumerate(chart.rows):
        _row(svg, row, TOP + ROW * index, scale)
    if chart.live:
        x = LABELS + plot
        svg.element(
            "line",
            {
                "class_": "nbflow-now",
                "x1": x,
                "x2": x,
                "y1": TOP - 6,
                "y2": height - 4,
                "stroke": "currentColor",
                "stroke_dasharray": "3 3",
            },
            title="now: the workflow is still running",
        )
        svg.element("text", {"x": x, "y": 10, "text_anchor": "end"}, text="now")
    if chart.note:
        svg.element("text", {"class_": "nbflow-note", "x": 4, "y": height - 8}, text=chart.note)
    return svg.render()


def _axis(svg: Svg, chart: Chart, span: float, scale: float, height: float) -> None:
    """The grid lines, their labels and the chart's title line."""
    svg.element("text", {"x": 4, "y": 12, "font_weight": "bold"}, text=_short(chart.title, 70))
    svg.open("g", {"class_": "nbflow-axis", "stroke": "currentColor", "stroke_opacity": 0.18})
    step = axis_steps(span)
    marks = [i * step for i in range(int(span / step + 1e-9) + 1)]
    for t in marks:
        x = LABELS + t * scale
        svg.element("line", {"x1": x, "x2": x, "y1": TOP - 6, "y2": height - 4})
    svg.close()
    svg.open("g", {"class_": "nbflow-axis-labels", "text_anchor": "middle", "font_size": 10})
    for t in marks:
        svg.element("text", {"x": LABELS + t * scale, "y": TOP - 9}, text=_axis_label(t))
    svg.close()


def _row(svg: Svg, row: Row, y: float, scale: float) -> None:
    """One row: its label, then its bars (merged below a pixel) or its ticks."""
    svg.open("g", {"class_": f"nbflow-row nbflow-row-{row.kind}"})
    indent = 12 * row.indent
    weight = "bold" if row.kind == "workflow" else None
    svg.element(
        "text",
        {"class_": "nbflow-label", "x": 4 + indent, "y": y + 14, "font_weight": weight},
        title=row.title or row.label,
        text=_short(row.label, LABEL_CHARS - 2 * row.indent),
    )
    top = y + (ROW - BAR) / 2
    for bar in _merged(row.bars, scale):
        _bar(svg, bar, top, scale)
    if row.ticks:
        svg.open("g", {"class_": "nbflow-ticks", "stroke": "currentColor", "stroke_opacity": 0.7})
        for t in row.ticks:
            x = LABELS + t * scale
            svg.element(
                "line", {"class_": "nbflow-tick", "x1": x, "x2": x, "y1": top, "y2": top + BAR}
            )
        svg.close()
    svg.close()


def _bar(svg: Svg, bar: Bar, top: float, scale: float) -> None:
    """A bar with its tooltip and markers."""
    x = LABELS + bar.start * scale
    width = max(1.0, (bar.end - bar.start) * scale)
    opacity = 0.45 if bar.kind == "cached" else None
    fill = COLOURS.get(bar.kind, COLOURS["step"])
    attrs: dict[str, str | float | None] = {"class_": f"nbflow-bar nbflow-{bar.kind}"}
    attrs.update(x=x, y=top, width=width)
    svg.element(
        "rect",
        {**attrs, "height": BAR, "rx": 2, "fill": fill, "fill_opacity": opacity},
        title=bar.title,
    )
    if bar.attempts > 1:
        svg.element(
            "circle",
            {
                "class_": "nbflow-retry-mark",
                "cx": x,
                "cy": top + BAR / 2,
                "r": 4,
                "fill": COLOURS["retry"],
                "stroke": "currentColor",
            },
            title=bar.title,
        )
    if bar.error:
        cx, cy, d = x + width, top + BAR / 2, 4.5
        svg.element(
            "path",
            {
                "class_": "nbflow-error-mark",
                "d": f"M{cx - d:.1f} {cy - d:.1f}L{cx + d:.1f} {cy + d:.1f}"
                f"M{cx - d:.1f} {cy + d:.1f}L{cx + d:.1f} {cy - d:.1f}",
                "stroke": COLOURS["error"],
                "stroke_width": 2.5,
            },
            title=bar.title,
        )


def html_page(title: str, svg: str) -> str:
    """A self-contained HTML page that shows ``svg`` (no script, no external resource)."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em;color:#222;background:#fff}"
        "@media (prefers-color-scheme: dark){body{color:#ddd;background:#111}}</style>"
        f"</head><body>\n{svg}\n</body></html>\n"
    )
