"""A small SVG writer: elements with attributes and ``<title>`` tooltips, every text escaped.

It writes what a chart of nbflow needs (rectangles, lines, paths, circles, text, groups) as one
self-contained ``<svg>`` element: no script, no external resource, no CSS beyond presentation
attributes, so it shows the same in JupyterLab, nbconvert's HTML, GitHub and a saved file. Every
attribute value and text goes through :func:`html.escape`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

__all__ = ["Svg", "number"]

Attrs = Mapping[str, "str | float | int | None"]


def number(value: float) -> str:
    """A coordinate as SVG text: at most two decimals, no trailing zeros (``12``, ``3.5``)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _attrs(attrs: Attrs) -> str:
    """`` name="value"`` for each attribute that is not None (``_`` in a name becomes ``-``)."""
    parts = []
    for name, value in attrs.items():
        if value is None:
            continue
        text = number(value) if isinstance(value, (int, float)) else value
        parts.append(f' {name.rstrip("_").replace("_", "-")}="{html.escape(text, quote=True)}"')
    return "".join(parts)


class Svg:
    """An SVG document being written, element by element.

    Args:
        width: Its width in pixels.
        height: Its height in pixels.
        title: What the whole image shows (its first ``<title>``, read by screen readers).
        **attrs: More attributes of the ``<svg>`` element (``class_="x"`` writes ``class``).

    Example:
        >>> svg = Svg(100, 20, "a bar")
        >>> svg.element("rect", {"x": 0, "y": 0, "width": 50, "height": 20}, title="half")
        >>> svg.render().startswith("<svg")
        True
    """

    def __init__(self, width: float, height: float, title: str, **attrs: str | float) -> None:
        self.width, self.height = width, height
        head: dict[str, str | float | int | None] = {
            "xmlns": "http://www.w3.org/2000/svg",
            "width": width,
            "height": height,
            "viewBox": f"0 0 {number(width)} {number(height)}",
            "role": "img",
        }
        head.update(attrs)
        self._parts = [f"<svg{_attrs(head)}>", f"<title>{html.escape(title)}</title>"]
        self._open: list[str] = []

    def element(
        self, tag: str, attrs: Attrs, *, title: str | None = None, text: str | None = None
    ) -> None:
        """Add one element: with a ``<title>`` tooltip and/or text content when given."""
        inner = ""
        if title is not None:
            inner += f"<title>{html.escape(title)}</title>"
        if text is not None:
            inner += html.escape(text)
        if inner:
            self._parts.append(f"<{tag}{_attrs(attrs)}>{inner}</{tag}>")
        else:
            self._parts.append(f"<{tag}{_attrs(attrs)}/>")

    def open(self, tag: str, attrs: Attrs, *, title: str | None = None) -> None:
        """Open a container element (``g``); :meth:`close` ends it."""
        self._parts.append(f"<{tag}{_attrs(attrs)}>")
        if title is not None:
            self._parts.append(f"<title>{html.escape(title)}</title>")
        self._open.append(tag)

    def close(self) -> None:
        """End the container element opened last."""
        self._parts.append(f"</{self._open.pop()}>")

    def render(self) -> str:
        """The document: one ``<svg>`` element (the containers still open are closed)."""
        closing = [f"</{tag}>" for tag in reversed(self._open)]
        return "".join([*self._parts, *closing, "</svg>"])
