"""A line nbflow says in a cell (what a launch found, what a re-run reuses), shown as HTML.

A cell's stdout breaks long lines anywhere in JupyterLab and Notebook 7 (``nbflow.resum`` at the
end of one line, ``e('…')`` at the start of the next); the same line displayed as HTML wraps
between words, in the notebook's code font and text colour. Its ``text/plain`` is the line
itself, and outside IPython it is printed.
"""

from __future__ import annotations

import html

from IPython.display import display

from nbflow.notebook._theme import WRAP

__all__ = ["Said", "say"]

_STYLE = (
    f"{WRAP};font-family:var(--jp-code-font-family,monospace);font-size:var(--jp-code-font-size,13px);"
    "line-height:var(--jp-code-line-height,1.3);color:var(--jp-content-font-color1,inherit);"
    "padding:var(--jp-code-padding,2px) 0"
)


class Said:
    """A line to show in a cell: its text, and HTML that wraps between words."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return f'<div class="nbflow-said" style="{_STYLE}">{html.escape(self.text)}</div>'


def say(text: str) -> None:
    """Show ``text`` in the cell running now (printed where there is no IPython shell)."""
    display(Said(text))  # type: ignore[no-untyped-call]
