"""The colours of the notebook's HTML (live views, their static renderings, tables), theme-aware.

Each colour is a CSS value over JupyterLab's theme variables, with a fallback for pages without
them (nbconvert, GitHub) that reads on white. A status word's colour mixes the theme's colour of
that kind (``--jp-success-color1``, …) with the theme's text colour (``--jp-ui-font-color0``):
dark green on a light theme, light green on a dark one, both above WCAG's 4.5:1 against the
page. A browser without ``color-mix`` keeps the first (light) declaration.
"""

from __future__ import annotations

__all__ = ["WRAP", "fill", "muted", "text_colour", "track"]

#: Text that wraps between words: JupyterLab's outputs break a ``<pre>`` anywhere
#: (``word-break: break-all``), a path or a call cut in the middle of a word.
WRAP = "white-space:pre-wrap;word-break:normal;overflow-wrap:break-word"

#: JupyterLab's variable and a fallback (read on white) for each kind of colour.
_KINDS = {
    "success": ("--jp-success-color1", "#2e7d32"),
    "danger": ("--jp-error-color1", "#c62828"),
    "warning": ("--jp-warn-color1", "#b45309"),
    "info": ("--jp-info-color1", "#1565c0"),
}
#: The bar's colour of each kind (a fill, not text: the theme's colour as it is).
_FILLS = {
    "success": "var(--jp-success-color1, #4caf50)",
    "danger": "var(--jp-error-color1, #e53935)",
    "warning": "var(--jp-warn-color1, #fb8c00)",
    "info": "var(--jp-info-color1, #29b6f6)",
    "": "var(--jp-brand-color1, #2196f3)",
}
_MIX = 55  # percent of the kind's colour; the rest is the theme's text colour


def text_colour(kind: str) -> str:
    """``color:…`` declarations for text of ``kind`` (``success``, ``danger``, ``warning``,
    ``info``; anything else: the page's text colour), for a ``style`` attribute."""
    if kind not in _KINDS:
        return "color:inherit"
    variable, light = _KINDS[kind]
    mixed = f"color-mix(in srgb,var({variable},{light}) {_MIX}%,var(--jp-ui-font-color0,#000))"
    return f"color:{light};color:{mixed}"


def muted() -> str:
    """``color:…`` for secondary text (a notice under a header)."""
    return "color:var(--jp-ui-font-color2,#616161)"


def fill(kind: str) -> str:
    """The CSS colour of a bar of ``kind`` (``''``: running)."""
    return _FILLS.get(kind, _FILLS[""])


def track() -> str:
    """The CSS colour of a bar's empty track."""
    return "var(--jp-layout-color2,#e0e0e0)"
