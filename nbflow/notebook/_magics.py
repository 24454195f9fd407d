"""The ``%nbflow`` magics: launch, watch and manage workflows; durable and background cells.

``%load_ext nbflow`` registers them (loading twice is harmless; ``%unload_ext nbflow`` removes
them). Wrong arguments raise IPython's ``UsageError``, which shows the subcommand's usage line and
the error without a traceback (and, like any failed cell, stops "Run All"). Errors nbflow reports
about the database or a workflow (an unknown id, say) show the same way, in one line.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import shlex
import sys
import weakref
from typing import Any, NoReturn, Protocol

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import display

import nbflow
from nbflow._records import Records
from nbflow.notebook import _background, _cells, _prune, _tables
from nbflow.notebook._why import explain
from nbflow.text._format import (
    AGES,
    format_cancel,
    format_recover,
    format_resume,
    format_sent,
    parse_age,
    parse_message,
    status_word,
)
from nbflow.text._hints import set_front_end
from nbflow.text._options import add_list_options, add_stats_options, list_options, stats_options
from nbflow.workflow._recovery import reported_by_caller
from nbflow.workflow._workflows import WorkflowFunction

__all__ = ["NbflowMagics", "load", "unload"]

_CELL_COMMANDS = ("step", "background")
_START_FILE = "<%nbflow start>"  # the file name of the code %nbflow start compiles


class _HelpShown(Exception):
    """``-h``: the help was printed; nothing else to do."""


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors raise ``UsageError`` with the usage line in the message."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.format_usage()}{self.prog}: error: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise _HelpShown


def _status(text: str) -> str:
    try:
        return nbflow.Status.parse(text).value
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _age(text: str) -> float:
    seconds = parse_age(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age: give {AGES}")
    return seconds


class _Add(Protocol):
    """Adds a subcommand and returns its parser."""

    def __call__(self, name: str, text: str, usage: str | None = None) -> _Parser: ...


def _add_workflow_commands(add: _Add) -> None:
    """The commands about workflows: start, watch, timeline, list, stats, steps, cancel, resume, recover,
    send."""
    usage = "%(prog)s EXPR [--id ID] [--watch KEY [KEY ...]] [--rerun] [--replay]"
    p = add("start", "start the workflow call EXPR in the background and show its live view", usage)
    p.add_argument(
        "expr", nargs="+", metavar="EXPR", help="a call of a workflow, e.g. pipeline(urls, n=3)"
    )
    p.add_argument(
        "--id",
        dest="workflow_id",
        metavar="ID",
        help="the workflow's id (an existing id: that workflow)",
    )
    p.add_argument(
        "--watch", nargs="+", metavar="KEY", help="the streams to show (default: progress)"
    )
    p.add_argument(
        "--rerun",
        action="store_true",
        help="run the call anew when its newest run finished (default: show that run, or "
        "resume it from the step that failed)",
    )
    p.add_argument(
        "--replay",
        action="store_true",
        help="leave an ended run as it is: show it, a failed one too, even if the code changed "
        "(default: run changed code again reusing what still holds, resume a failed run)",
    )
    p = add("watch", "show the live view of a workflow, running or finished")
    p.add_argument("workflow_id", metavar="ID")
    p.add_argument(  # (default=[]: else Python 3.11 says KEY is required)
        "keys", nargs="*", default=[], metavar="KEY", help="the streams to show (default: all)"
    )
    p = add("timeline", "draw a Gantt chart of a workflow (live while it runs)")
    p.add_argument("workflow_id", metavar="ID")
    p = add("list", "list workflows, newest first (not nbflow's own, unless --all)")
    add_list_options(p, limit=20, statuses=[s.value for s in nbflow.Status])
    p.add_argument(
        "--all", action="store_true", help="also nbflow's own (the record keeping of durable cells)"
    )
    add_stats_options(add("stats", "statistics of the recorded steps, per step name"))
    p = add("steps", "list a workflow's steps (no ID: the cells of this notebook's pipeline)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("workflow_id", nargs="?", metavar="ID")
    which.add_argument(
        "--pipeline", action="store_true", help="the notebook's pipeline (the default)"
    )
    p.add_argument("--all", action="store_true", help="every step (default: a long list folds)")
    add("cancel", "cancel a workflow").add_argument("workflow_id", metavar="ID")
    p = add("resume", "resume an interrupted, cancelled or failed workflow")
    p.add_argument("workflow_id", metavar="ID")
    add("recover", "resume every interrupted workflow whose function is declared here")
    p = add("send", "send a message to a workflow (it gets it with nbflow.recv)")
    p.add_argument("workflow_id", metavar="ID")
    p.add_argument("message", metavar="MESSAGE", help="JSON, else taken as text")
    p.add_argument("--topic", help="the topic it is sent on (default: none)")


def _build_parser() -> tuple[_Parser, dict[str, _Parser]]:
    """The parser, and the parser of each subcommand by name."""
    commands: dict[str, _Parser] = {}
    parser = _Parser(
        prog="%nbflow",
        description="Launch, watch and manage nbflow workflows; run durable or background cells.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def add(name: str, text: str, usage: str | None = None) -> _Parser:
        prog = f"%%nbflow {name}" if name in _CELL_COMMANDS else f"%nbflow {name}"
        p: _Parser = sub.add_parser(name, help=text, description=text, prog=prog, usage=usage)
        commands[name] = p
        return p

    _add_workflow_commands(add)
    p = add("db", "show the database (with URL: open it as the default runtime)")
    p.add_argument(
        "url", nargs="?", metavar="URL", help="a path, duckdb:///path, :memory: or postgresql://…"
    )
    p = add("step", "(cell magic) run the cell once; afterwards restore its variables and output")
    p.add_argument("name", metavar="NAME", help="the cell's name in the pipeline")
    p.add_argument("--force", action="store_true", help="run it even if a run is recorded")
    p = add("prune", "remove finished workflows older than an age, or (--cells) superseded records")
    p.add_argument("--cells", action="store_true", help="older versions of durable cells")
    p.add_argument("--older-than", type=_age, metavar="AGE", help="e.g. 30d, 12h, 45m, 90s")
    p.add_argument("--status", type=_status, action="append", help="only this status (repeat)")
    p.add_argument("--dry-run", action="store_true", help="count, remove nothing")
    p = add("why", "why a durable cell last ran (or was restored), or why a cached step missed")
    p.add_argument("name", metavar="NAME", help="a durable cell's name, or a cached step's")
    p = add("background", "(cell magic) run the cell as a workflow in a background thread")
    p.add_argument("name", nargs="?", metavar="NAME", help="the start of its workflow id")
    return parser, commands


_PARSER, _COMMANDS = _build_parser()


def _help() -> str:
    """The magic's docstring: one usage line and description per subcommand."""
    lines = ["Launch, watch and manage nbflow workflows; durable and background cells.", ""]
    for p in _COMMANDS.values():
        usage = p.format_usage().removeprefix("usage: ").replace("[-h] ", "").rstrip()
        lines += [f"  {usage}", f"      {p.description}"]
    return "\n".join(lines)


def split_expression(text: str) -> list[str]:
    """Split a line on spaces outside brackets and string literals (Python stays one word)."""
    words: list[str] = []
    current, depth, quote, i = "", 0, "", 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                current, i = current + text[i : i + 2], i + 2
                continue
            if text.startswith(quote, i):
                current, i, quote = current + quote, i + len(quote), ""
                continue
        elif ch in "\"'":
            quote = ch * 3 if text.startswith(ch * 3, i) else ch
            current, i = current + quote, i + len(quote)
            continue
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch.isspace() and depth <= 0:
            if current:
                words.append(current)
            current, i = "", i + 1
            continue
        current, i = current + ch, i + 1
    if quote or depth > 0:
        raise UsageError(f"%nbflow start: unbalanced brackets or quotes in {text!r}")
    return [*words, current] if current else words


def _wrong_kind(command: str, line: bool) -> str:
    """Why ``%nbflow COMMAND`` (``line``) or ``%%nbflow COMMAND`` is the wrong kind of magic."""
    if line:
        first_line = f"put '%%nbflow {command} …' on the first line of a cell"
        return f"%nbflow {command} is a cell magic: {first_line}."
    return f"%%nbflow {command} is a line magic: use '%nbflow {command} …' (one %)."


@magics_class
class NbflowMagics(Magics):
    """The ``%nbflow`` line magic and ``%%nbflow`` cell magic."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.views: list[Any] = []

    def close_views(self) -> None:
        """Close the live views these magics opened."""
        views, self.views = self.views, []
        for view in views:
            with contextlib.suppress(Exception):  # one that cannot close must not stop the others
                view.close()

    @line_cell_magic
    def nbflow(self, line: str, cell: str | None = None) -> Any:
        __tracebackhide__ = True
        words = line.split(None, 1)
        try:
            if words and words[0] == "start":
                argv = ["start", *split_expression(words[1] if len(words) > 1 else "")]
            else:
                argv = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%nbflow: cannot split {line!r}: {exc}") from None
        try:
            args, extra = _PARSER.parse_known_args(argv)
        except _HelpShown:
            return None
        if extra:  # said by the subcommand, with its usage line
            _COMMANDS[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
        if (cell is None) == (args.command in _CELL_COMMANDS):
            raise UsageError(_wrong_kind(args.command, cell is None))
        if args.command == "step":
            assert cell is not None
            return _cells.cells_for(self.shell).run(args.name, cell, force=args.force)
        if args.command == "background":
            assert cell is not None
            self._keep(_background.run_background(args.name, cell))
            return None
        try:
            return getattr(self, f"_{args.command}")(args)
        except nbflow.NbflowError as exc:
            raise UsageError(f"%nbflow {args.command}: {exc}") from None

    def _keep(self, handle: Any) -> None:
        view = getattr(handle, "view", None)
        if view is not None:
            self.views = [v for v in self.views if not getattr(v, "closed", False)] + [view]

    def _watch_view(self, workflow_id: str, keys: list[str] | None) -> None:
        from nbflow.notebook._view import LiveView  # (imports ipywidgets)

        view = LiveView(workflow_id, keys or None)
        view.display()
        self.views.append(view)

    def _start(self, args: argparse.Namespace) -> None:
        __tracebackhide__ = True
        text = " ".join(args.expr)
        must = "%nbflow start: EXPR must be a workflow call such as pipeline(x)"
        try:
            call = ast.parse(text, mode="eval").body
        except SyntaxError as exc:
            raise UsageError(f"{must}: {exc.msg} in {text!r}") from None
        if not isinstance(call, ast.Call):
            raise UsageError(f"{must}, not {text!r}")
        ns = self.shell.user_ns  # type: ignore[union-attr]
        fn = eval(compile(ast.Expression(call.func), _START_FILE, "eval"), ns)
        if not isinstance(fn, WorkflowFunction):
            name = ast.unparse(call.func)
            declare = "declare it with @nbflow.workflow."
            raise UsageError(f"%nbflow start: {name} is not a workflow; {declare}")
        capture = ast.Call(ast.Name("__nbflow_args__", ast.Load()), call.args, call.keywords)
        code = compile(ast.fix_missing_locations(ast.Expression(capture)), _START_FILE, "eval")
        fn_args, fn_kwargs = eval(code, ns, {"__nbflow_args__": lambda *a, **k: (a, k)})
        watch = tuple(args.watch) if args.watch else ("progress",)
        from nbflow.notebook import _launch  # (imports ipywidgets)

        rt = nbflow.runtime()
        workflow_id = args.workflow_id or _launch.newest_run(
            rt, _launch.call_id(fn, fn_args, fn_kwargs, _cells.pipeline_id()), rerun=args.rerun
        )
        if not (args.workflow_id or args.rerun or args.replay):
            plan = _launch.rerun_plan(rt, workflow_id)
            if plan is not None:  # the code changed since: run it again, reusing the rest
                self._keep(_launch.rerun_with_view(rt, fn, workflow_id, plan, watch))
                return
        hint = f"%nbflow start {text} --rerun"
        self._keep(
            _launch.start_with_view(
                rt, fn, workflow_id, fn_args, fn_kwargs, watch, hint, resume_failed=not args.replay
            )
        )

    def _watch(self, args: argparse.Namespace) -> None:
        nbflow.get_workflow(args.workflow_id)  # an unknown id: one line, not a view
        self._watch_view(args.workflow_id, args.keys)

    def _timeline(self, args: argparse.Namespace) -> None:
        from nbflow.notebook._timeline import Timeline  # (imports the engine's layout)

        timeline = Timeline(args.workflow_id)
        timeline.display()
        self.views.append(timeline)

    def _list(self, args: argparse.Namespace) -> None:
        options = list_options(args)
        rows = nbflow.list_workflows(**options, include_internal=args.all)
        rt = nbflow.runtime()
        title = f"workflows in {rt.database}"
        if options["status"]:  # (PENDING: those running and those interrupted)
            words = [status_word(nbflow.Status.parse(s).value) for s in options["status"]]
            words = ["running or interrupted" if w == "running" else w for w in words]
            title += f" ({', '.join(words)})"
        display(_tables.workflow_table(rows, title, rt))  # type: ignore[no-untyped-call]
        if schedules := nbflow.list_schedules():
            display(_tables.schedule_table(schedules))  # type: ignore[no-untyped-call]

    def _stats(self, args: argparse.Namespace) -> None:
        stats = nbflow.step_stats(**stats_options(args))
        title = f"step statistics in {nbflow.runtime().database}"
        display(_tables.stats_table(stats, title))  # type: ignore[no-untyped-call]

    def _steps(self, args: argparse.Namespace) -> None:
        workflow_id = args.workflow_id or _cells.pipeline_id()
        try:
            steps = nbflow.list_steps(workflow_id)
        except nbflow.WorkflowNotFoundError:
            if args.workflow_id:
                raise
            steps = Records()  # no durable cell has run yet
        table = _tables.step_table(steps, f"steps of {workflow_id}", everything=args.all)
        display(table)  # type: ignore[no-untyped-call]

    def _cancel(self, args: argparse.Namespace) -> None:
        workflow_id = args.workflow_id
        status = nbflow.get_workflow(workflow_id).status()
        cancelled = not status.is_final
        if cancelled:
            nbflow.cancel(workflow_id)
            status = nbflow.get_workflow(workflow_id).status()
        print(format_cancel(workflow_id, status, cancelled=cancelled))

    def _send(self, args: argparse.Namespace) -> None:
        message = parse_message(args.message)
        nbflow.send(args.workflow_id, message, topic=args.topic)
        print(format_sent(args.workflow_id, message, args.topic))

    def _resume(self, args: argparse.Namespace) -> None:
        before = nbflow.get_workflow(args.workflow_id).status()
        nbflow.resume(args.workflow_id)
        print(format_resume(args.workflow_id, before))
        if before != nbflow.Status.SUCCESS:
            self._watch_view(args.workflow_id, None)

    def _recover(self, args: argparse.Namespace) -> None:
        from nbflow.notebook._recover import shows_views  # (imports ipywidgets)

        with reported_by_caller():  # (each reason once: printed here or by the cell's views)
            recovered = nbflow.recover()  # in a cell, it shows what it did and the views itself
        if not shows_views():
            print("\n".join(format_recover(recovered, here="this kernel")))

    def _prune(self, args: argparse.Namespace) -> None:
        if args.cells == (args.older_than is not None):
            _COMMANDS["prune"].error("give either --cells or --older-than AGE")
        rt = nbflow.runtime()
        if args.cells:
            done = _prune.prune_cells(rt, _cells.cells_for(self.shell), dry_run=args.dry_run)
            print(_prune.format_cells_pruned(done, dry_run=args.dry_run))
        else:
            print(_prune.prune_workflows(rt, args.older_than, args.status, dry_run=args.dry_run))

    def _why(self, args: argparse.Namespace) -> None:
        last = _cells.cells_for(self.shell).last
        print(explain(args.name, last, _cells.pipeline_id()))

    def _db(self, args: argparse.Namespace) -> None:
        rt = nbflow.configure(args.url) if args.url else nbflow.runtime()
        print(f"nbflow database: {rt.database}")


NbflowMagics.nbflow.__doc__ = _help()


_loaded: weakref.WeakKeyDictionary[Any, NbflowMagics] = weakref.WeakKeyDictionary()


def load(ipython: Any) -> None:
    """Register the magics with ``ipython`` and route background cells' printing (idempotent)."""
    if ipython in _loaded:
        return
    magics = NbflowMagics(ipython)
    ipython.register_magics(magics)
    _background.install()
    _loaded[ipython] = magics
    set_front_end("magic")  # hints in messages name %nbflow commands


def unload(ipython: Any) -> None:
    """Remove the magics, close their live views and stop routing background cells' printing."""
    magics = _loaded.pop(ipython, None)
    if magics is None:
        return
    magics.close_views()
    manager = ipython.magics_manager
    for kind in ("line", "cell"):
        if getattr(manager.magics[kind].get("nbflow"), "__self__", None) is magics:
            del manager.magics[kind]["nbflow"]
    manager.registry.pop(type(magics).__name__, None)
    _background.uninstall()
    set_front_end("python")
