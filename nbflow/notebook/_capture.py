"""Output capture: what a workflow running in the background prints goes to its stream ``stdout``.

In a kernel, every thread's ``print`` lands in whatever cell the kernel's output is attached to at
the time, so a workflow running in a worker thread would print into unrelated cells. While
installed (:func:`install`, done by every launch and by ``%load_ext nbflow``), stand-ins for
``sys.stdout`` and ``sys.stderr`` route each write by the writing thread or task:

- **captured** when it runs inside a workflow (its body, one of its steps, an ``nbflow.map``
  item on a worker thread, a child workflow) whose body was entered in a thread other than the
  main thread, i.e. a workflow that runs in the background. Each complete line becomes one item
  of that workflow's stream ``stdout`` (:data:`STREAM`), written with
  ``WorkflowContext.write_output``: unrecorded, so capturing never changes a workflow's positions;
  a replay drops the lines its body printed before (each is in the stream once); a step's lines
  are written by every attempt that runs (at least once);
- **passed on** otherwise: a workflow called synchronously in a cell runs in the main thread, and
  its output shows in the cell, as a plain function's would; so do other threads'. An ``async
  def`` workflow runs on nbflow's loop thread, so it is captured even when a cell waits for it.

A partial line is kept per (workflow, thread, step attempt) and written when its newline comes, or
when the workflow's body ends. A ``\\r`` restarts the partial line (only the text after the last
one is kept), so a text progress bar (tqdm) leaves its final state, not every refresh. Also, while
installed:

- ``logging.StreamHandler`` objects made before :func:`install` that write to the replaced
  ``sys.stdout`` or ``sys.stderr`` are pointed at the stand-ins (and back by :func:`uninstall`);
  handlers made later find the stand-ins themselves;
- ``display()`` from a captured thread (``tqdm.notebook`` bars, widgets, rich objects) writes the
  bundle's ``text/plain`` as a line instead of showing it in some other cell, and its
  ``clear_output()`` is ignored; updates of a display by id pass (they change that display only).
  A widget's line is written when the thread's next line comes (or the body ends), with the
  widget's text as it is then (its ``value`` and its children's are followed), so a
  ``tqdm.notebook`` bar leaves its final state.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
import weakref
from typing import Any

from nbflow.workflow import _context
from nbflow.workflow._context import WorkflowContext

__all__ = ["STREAM", "captured", "install", "installed", "uninstall", "write"]

#: The stream printed lines go to.
STREAM = "stdout"

_WIDGET = "application/vnd.jupyter.widget-view+json"
_lock = threading.RLock()
_local = threading.local()  # .busy: this thread is writing a captured line (no recursion)
#: (workflow context, thread ident, function id, attempt) -> the line begun there
_partials: dict[tuple[WorkflowContext, int, int, int], str] = {}
#: handler -> the stream it had before install() pointed it at a stand-in
_handlers: weakref.WeakKeyDictionary[logging.StreamHandler[Any], Any] = weakref.WeakKeyDictionary()
_publishers: list[_Publisher] = []
#: (workflow context, thread ident, function id, attempt) -> widgets displayed there, not written
_widgets: dict[tuple[WorkflowContext, int, int, int], list[_WidgetLine]] = {}


def captured() -> WorkflowContext | None:
    """The workflow whose stream what this thread or task prints goes to, or None (see the
    module's rule: inside a workflow whose body was entered in a thread other than the main one).
    """
    where = _context.scope()
    if where is None or getattr(_local, "busy", False):
        return None
    ctx = where.context
    if ctx.thread in (0, threading.main_thread().ident):
        return None
    return ctx


def write(ctx: WorkflowContext, text: str) -> None:
    """Write ``text`` as the current thread's output in ``ctx``: each complete line becomes an item
    of its stream ``stdout``; the rest is kept until its line ends (or the body ends)."""
    key = _key(ctx)
    with _lock:
        pending = _partials.pop(key, "") + text
    if "\n" not in pending:
        _keep(key, pending)
        return
    *lines, rest = pending.split("\n")
    _local.busy = True
    try:
        for line in _widget_lines(key) + _terminal_lines(key, lines):
            ctx.write_output(STREAM, line)
    finally:
        _local.busy = False
        _keep(key, rest)


def _key(ctx: WorkflowContext) -> tuple[WorkflowContext, int, int, int]:
    """Where this thread's output in ``ctx`` is kept: (workflow, thread, function id, attempt)."""
    where = _context.scope()
    step = (where.function_id, where.attempt) if where is not None else (0, 0)
    return (ctx, threading.get_ident(), *step)


def _widget_lines(key: tuple[WorkflowContext, int, int, int]) -> list[str]:
    """The text of the widgets displayed at ``key`` and not written yet (they are forgotten)."""
    with _lock:
        widgets = _widgets.pop(key, [])
    return [widget.close() for widget in widgets]


class _WidgetLine:
    """A widget a captured thread displayed: its text, kept current until it is written."""

    def __init__(self, widget: Any, text: str) -> None:
        self.widget, self.text = widget, text
        parts = [widget, *getattr(widget, "children", ())]
        self.observed = [w for w in parts if w.has_trait("value")]
        for w in self.observed:
            w.observe(self._changed, names="value")

    def _changed(self, _change: Any) -> None:
        from IPython.lib.pretty import pretty

        with contextlib.suppress(Exception):  # (a tqdm bar's text needs its tqdm alive)
            self.text = pretty(self.widget)  # type: ignore[no-untyped-call]

    def close(self) -> str:
        """Stop following the widget; its last text."""
        for w in self.observed:
            with contextlib.suppress(Exception):
                w.unobserve(self._changed, names="value")
        return self.text


_CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # terminal control sequences (colours, moves)
_UP = re.compile(r"\x1b\[\d*A")  # cursor up: the line was a bar drawn below and left
_moved_up: set[tuple[WorkflowContext, int, int, int]] = set()


def _terminal_lines(key: tuple[WorkflowContext, int, int, int], lines: list[str]) -> list[str]:
    """The lines a person reads of what a terminal would show: refreshes reduced to their last
    text, control sequences left out, and a bar drawn on the line below (a nested tqdm bar moves
    down, draws and moves back up) left out until its final line, with the newline that moved
    down to it."""
    out = []
    for raw in lines:
        line = _last_refresh(raw)
        if _UP.search(line):
            _moved_up.add(key)
            continue
        if key in _moved_up:
            _moved_up.discard(key)
            if not line:
                continue
        out.append(_CSI.sub("", line))
    return out


def _last_refresh(line: str) -> str:
    """What a terminal would show of ``line``: the text after its last ``\\r`` (a ``\\r\\n``
    ending is a plain newline; a refreshed line drops the padding that erased a longer one)."""
    line = line.removesuffix("\r")
    if "\r" not in line:
        return line
    return line.rsplit("\r", 1)[1].rstrip()


def _keep(key: tuple[WorkflowContext, int, int, int], partial: str) -> None:
    cut = partial.rfind("\r", 0, len(partial) - 1)  # (a last "\r" may be half a "\r\n")
    if cut >= 0:
        partial = partial[cut:]  # a refresh restarts the line (its "\r" kept: see _last_refresh)
    if partial:
        with _lock:
            _partials[key] = partial


def _flush(ctx: WorkflowContext) -> None:
    """Write the partial lines and widgets ``ctx``'s threads left (its body ends: an exit hook)."""
    with _lock:
        keys = {key for key in [*_partials, *_widgets] if key[0] is ctx}
        left = [(key, _partials.pop(key, None)) for key in keys]
    for key, text in left:
        lines = _widget_lines(key) + ([] if text is None else _terminal_lines(key, [text]))
        where = _context.Scope(ctx, key[2], key[3], ctx.thread if not key[2] else 0)
        _local.busy = True
        try:
            with _context.scoped(where):
                for line in lines:
                    ctx.write_output(STREAM, line)
        finally:
            _local.busy = False
    with _lock:  # (what was kept of its bars: it keeps nothing of the workflow alive)
        _moved_up.difference_update([key for key in list(_moved_up) if key[0] is ctx])


class _Router:
    """Stands in for ``sys.stdout``/``sys.stderr``: a captured thread's writes go to its workflow's
    stream, every other thread's to the stream this replaced (every other attribute is that
    stream's)."""

    def __init__(self, target: Any) -> None:
        self._nbflow_target = target

    def write(self, text: str) -> int:
        ctx = captured()
        if ctx is None:
            return int(self._nbflow_target.write(text) or 0)
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        write(ctx, text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if captured() is None:
            self._nbflow_target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._nbflow_target, name)


class _Publisher:
    """Wraps a display publisher's ``publish`` and ``clear_output`` while installed."""

    def __init__(self, pub: Any) -> None:
        self.pub = pub
        self.active = True
        self.saved = {name: vars(pub).get(name) for name in ("publish", "clear_output")}
        self.publish_original, self.clear_original = pub.publish, pub.clear_output
        pub.publish, pub.clear_output = self.publish, self.clear_output

    def publish(self, data: dict[str, Any], metadata: Any = None, *args: Any, **kw: Any) -> Any:
        ctx = captured() if self.active else None
        if ctx is None or kw.get("update"):
            return self.publish_original(data, metadata, *args, **kw)
        text = str(data.get("text/plain", ""))
        widget = _widget(data)
        if widget is not None:
            with _lock:
                _widgets.setdefault(_key(ctx), []).append(_WidgetLine(widget, text))
        elif text:
            write(ctx, text + "\n")
        return None

    def clear_output(self, *args: Any, **kwargs: Any) -> Any:
        if self.active and captured() is not None:
            return None  # it would clear some other cell's output
        return self.clear_original(*args, **kwargs)

    def remove(self) -> None:
        """Undo the wrap; if something wrapped it since, just stop (it then passes through)."""
        self.active = False
        for name in ("publish", "clear_output"):
            if vars(self.pub).get(name) == getattr(self, name):
                saved = self.saved[name]
                if saved is None:
                    delattr(self.pub, name)
                else:
                    setattr(self.pub, name, saved)


def _widget(data: dict[str, Any]) -> Any:
    """The live widget a display bundle shows, or None."""
    model_id = (data.get(_WIDGET) or {}).get("model_id")
    module = sys.modules.get("ipywidgets.widgets.widget")
    instances = getattr(module, "_instances", None)
    widget = instances.get(model_id) if model_id and isinstance(instances, dict) else None
    return widget if widget is not None and hasattr(widget, "has_trait") else None


def _all_handlers() -> list[logging.StreamHandler[Any]]:
    """Every live ``logging.StreamHandler`` (not a file's)."""
    refs = list(getattr(logging, "_handlerList", []))
    found = [ref() for ref in refs]
    return [
        h
        for h in found
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]


def _repoint(routers: dict[int, _Router]) -> None:
    """Point the handlers that write to a replaced stream at its stand-in."""
    for handler in _all_handlers():
        router = routers.get(id(handler.stream))
        if router is not None:
            _handlers[handler] = handler.stream
            handler.setStream(router)  # type: ignore[arg-type]


def _patch_display() -> None:
    shell = _shell()
    pub = getattr(shell, "display_pub", None)
    if pub is None or any(p.pub is pub and p.active for p in _publishers):
        return
    with contextlib.suppress(AttributeError, TypeError):
        _publishers.append(_Publisher(pub))


def _shell() -> Any:
    module = sys.modules.get("IPython.core.getipython")
    return None if module is None else module.get_ipython()


def install() -> None:
    """Capture what workflows running in the background print (idempotent and cheap: call it
    before anything starts a workflow from a notebook)."""
    with _lock:
        routers: dict[int, _Router] = {}
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is not None and not isinstance(stream, _Router):
                router = _Router(stream)
                setattr(sys, name, router)
                routers[id(stream)] = router
        if routers:
            _repoint(routers)
        _patch_display()
        _context.add_exit_hook(_flush)


def uninstall() -> None:
    """Stop capturing: put back the streams, handlers and display publisher :func:`install`
    changed, where they are still as it left them."""
    with _lock:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if isinstance(stream, _Router):
                setattr(sys, name, stream._nbflow_target)
        for handler, original in list(_handlers.items()):
            if isinstance(handler.stream, _Router):
                handler.setStream(original)
        _handlers.clear()
        while _publishers:
            _publishers.pop().remove()
        _context.remove_exit_hook(_flush)


def installed() -> bool:
    """Whether output capture is installed."""
    return isinstance(sys.stdout, _Router)
