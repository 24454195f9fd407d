"""``launch``: start a workflow in the background and show its live view, in one call.

A launch is idempotent, so that "Run All" after a kernel restart continues instead of starting the
pipeline a second time. The workflow's id comes from the call: the notebook (its file name), the
workflow's registered name and its arguments (:func:`call_id`), compared by their canonical
encoding (:mod:`nbflow._canonical`): equal arguments give the same id in any kernel, whatever its
hash seed (a set's order is not part of it), and different arguments different ids (``{1: x}`` and
``{"1": x}``, ``(1, 2)`` and ``[1, 2]``). The same call again finds the run that id names:

- interrupted (its kernel died or restarted): it is resumed from its last checkpoint;
- running in this kernel: the new view follows it;
- failed (and its code did not change): it is resumed, as ``nbflow.resume(id)`` does: the step
  that failed runs again, every checkpoint before it is kept (a person who fixed what it needed
  outside the code, a file or the network, and runs the cell again wants it to go on);
- succeeded or cancelled: its view replays what it did; it does not run again (``rerun=True``
  runs it anew, under the id ``<id>.2``, ``<id>.3`` …; later launches of the call follow the
  newest run);
- finished or interrupted, but its code changed since (a step's or the body's fingerprint: a
  comment or a blank line is no change): it runs again as ``<id>.2``, taking the old run's
  checkpoints wherever step, code and arguments still match (``on_change="replay"``: the old
  run is resumed if it was interrupted and shown as it ended otherwise, a failed one too).

An id given with :func:`nbflow.set_workflow_id` (``%nbflow start … --id ID``) is used as it is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Callable, Iterable
from typing import Any

import nbflow
from nbflow._canonical import canonical
from nbflow._errors import InvalidValueError
from nbflow.engine._rerun import RerunPlan
from nbflow.engine._runtime import Runtime
from nbflow.notebook import _capture
from nbflow.notebook._cells import pipeline_id
from nbflow.notebook._say import say
from nbflow.notebook._view import LiveView
from nbflow.text._format import format_time, status_word
from nbflow.workflow import _context
from nbflow.workflow._handle import WorkflowHandle
from nbflow.workflow._workflows import WorkflowFunction

__all__ = [
    "LaunchedHandle",
    "Previous",
    "call_id",
    "launch",
    "newest_run",
    "rerun_plan",
    "rerun_with_view",
    "start_with_view",
]

_DIGITS = 12  # hex digits of the call's digest in its id


class LaunchedHandle(WorkflowHandle):
    """The handle of a workflow started by :func:`launch`, with its live view.

    Attributes:
        workflow_id: The workflow's id.
        view: Its :class:`LiveView`.
        previous: What the launch found under that id (:class:`Previous`): ``"new"`` when it
            started the workflow.
    """

    def __init__(self, handle: WorkflowHandle, view: LiveView, previous: Previous) -> None:
        super().__init__(handle.tracker, handle.workflow_id, handle.run)
        self.view = view
        self.previous = previous


@dataclasses.dataclass(frozen=True)
class Previous:
    """What a launch found under its workflow's id before it started it.

    Attributes:
        state: ``"new"`` (no run), ``"running"`` (in this kernel), ``"elsewhere"`` (running in
            another process of a shared database), ``"interrupted"`` or ``"finished"``;
            ``"resumed"``: the run had failed and goes on from the step that failed;
            ``"changed"``: the code changed since the run it found, which runs again as a new
            run reusing what still holds.
        status: The run's status (``Status`` value), or ``""`` when there was none.
        ended_at: When a finished run ended (seconds since the epoch), or None.
    """

    state: str
    status: str = ""
    ended_at: float | None = None


def _arguments(fn_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """The call's arguments as canonical bytes (:func:`nbflow._canonical.canonical`): equal for
    equal arguments in any kernel, different for different ones (``{1: x}`` and ``{"1": x}``,
    ``(1, 2)`` and ``[1, 2]``, ``1`` and ``1.0``); keyword arguments in any order."""
    try:
        return canonical((args, kwargs))
    except InvalidValueError as exc:
        raise InvalidValueError(
            f"launch({fn_name}, ...) cannot tell this call from another: {exc} Or give the run "
            "an id with nbflow.set_workflow_id(...).",
            what="An argument of a launch",
            value=exc.value,
        ) from None


def call_id(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], notebook: str) -> str:
    """The workflow id of a launch: ``<name>@<digest>``, the digest of the notebook, the
    workflow's registered name and the arguments (:mod:`nbflow._canonical`).

    Args:
        fn: The workflow function.
        args: Its positional arguments.
        kwargs: Its keyword arguments.
        notebook: The notebook's identity (:func:`nbflow.notebook._cells.pipeline_id`).

    Returns:
        The id: equal calls in the same notebook give the same id, in any kernel (whatever its
        hash seed); calls with different arguments give different ids.

    Raises:
        InvalidValueError: An argument cannot be encoded (see :func:`launch`).
    """
    name: str = fn.name
    arguments = _arguments(name, args, kwargs)
    digest = hashlib.sha256(canonical((notebook, name)) + arguments).hexdigest()
    short = name.removeprefix("__main__.")
    return f"{short}@{digest[:_DIGITS]}"


def _previous(rt: Runtime, workflow_id: str) -> Previous:
    """What runs, or ran, under ``workflow_id``."""
    if rt.execution(workflow_id) is not None:
        return Previous("running", "PENDING")
    try:
        info = rt.workflow_row(workflow_id)
    except nbflow.WorkflowNotFoundError:
        return Previous("new")
    status = str(info.status)
    if nbflow.Status(status).is_final:
        return Previous("finished", status, info.ended_at)
    if status == "PENDING" and rt.store.single_process:
        return Previous("interrupted", status)
    return Previous("elsewhere", status)  # PENDING elsewhere, or ENQUEUED: start() decides


def newest_run(rt: Runtime, base: str, rerun: bool) -> str:
    """The id of the newest run of the call ``base`` (``base``, ``base.2``, …); with ``rerun``,
    a new id when that run finished."""
    generation, newest = 1, base
    while rt.exists(f"{base}.{generation + 1}"):
        generation += 1
        newest = f"{base}.{generation}"
    if rerun and _previous(rt, newest).state == "finished":
        return f"{base}.{generation + 1}"
    return newest


def _note(previous: Previous, workflow_id: str, rerun_hint: str) -> str | None:
    """The line a launch prints about what it found, or None for a new run."""
    if previous.state == "interrupted":
        return f"nbflow: {workflow_id} was interrupted; resuming it from its last checkpoint."
    if previous.state == "running":
        return f"nbflow: {workflow_id} is already running in this kernel; following it."
    if previous.state == "elsewhere":
        word = status_word(previous.status)
        return f"nbflow: {workflow_id} is {word} in another process; following it."
    when = format_time(previous.ended_at)
    if previous.state == "resumed":
        return (
            f"nbflow: {workflow_id} failed at {when}; resuming it from the step that failed, "
            f"keeping every checkpoint before it ({rerun_hint} runs it all anew)."
        )
    if previous.state == "finished":
        resume = ""
        if previous.status != "SUCCESS":
            what = "re-runs only what failed" if previous.status == "ERROR" else "goes on"
            resume = f"nbflow.resume({workflow_id!r}) {what}; "
        return (
            f"nbflow: {workflow_id} already {status_word(previous.status)} at {when}; showing "
            f"that run without running it again ({resume}{rerun_hint} runs it anew)."
        )
    return None


def launch(
    fn: Callable[..., Any],
    /,
    *args: Any,
    watch: Iterable[str] | str | None = ("progress",),
    runtime: Runtime | None = None,
    rerun: bool = False,
    on_change: str = "rerun",
    **kwargs: Any,
) -> LaunchedHandle:
    """Start the workflow ``fn(*args, **kwargs)`` in the background and show its live view.

    Idempotent: the same call in the same notebook finds its earlier run and resumes it (if it
    was interrupted), follows it (if it runs) or shows it (if it finished) instead of starting
    the pipeline again; see the module's documentation. The view is displayed in the calling cell
    first, then the workflow starts and the view's reader follows it. Call it from a cell.

    Args:
        fn: A function decorated with ``@nbflow.workflow``.
        *args: Its positional arguments.
        watch: The streams the view shows (``"progress"`` feeds the bar); None: all of them.
            The captured output (stream ``stdout``) shows too.
        runtime: The runtime to start it in (default: ``nbflow.runtime()``).
        rerun: When the call's newest run finished, start a new run instead of showing (or
            resuming) it.
        on_change: ``"rerun"``: when the code changed since the call's newest run ended or
            was interrupted (:func:`nbflow.fingerprint`), run it again as a new run reusing
            every checkpoint whose step, code and arguments still match; with unchanged code,
            resume a failed run from the step that failed (``nbflow.resume(id)``).
            ``"replay"``: resume an interrupted run, show an ended one (a failed one too).
        **kwargs: Its keyword arguments (``watch``, ``runtime``, ``rerun`` and ``on_change``
            are taken by ``launch``).

    Returns:
        The workflow's handle; ``handle.view`` is its :class:`LiveView`, ``handle.previous``
        what the launch found.

    Raises:
        InvalidValueError: An argument cannot be encoded canonically (a lambda, a lock, an
            object pickle cannot take apart), so equal calls cannot be recognised: pass plain
            values, or give an id with ``nbflow.set_workflow_id``.

    Example:
        >>> handle = nbflow.notebook.launch(pipeline, urls, watch=("progress", "rows"))
        >>> handle.result()
    """
    __tracebackhide__ = True
    _check_on_change(on_change)
    rt = runtime if runtime is not None else nbflow.runtime()
    given = _context.take_assigned_id()
    if given is None and isinstance(fn, WorkflowFunction):  # (start() explains anything else)
        given = newest_run(rt, call_id(fn, args, kwargs, pipeline_id()), rerun=rerun)
        plan = None if rerun or on_change == "replay" else rerun_plan(rt, given)
        if plan is not None:
            return rerun_with_view(rt, fn, given, plan, watch)
    hint, resume_failed = "launch(..., rerun=True)", on_change == "rerun"
    return start_with_view(rt, fn, given, args, kwargs, watch, hint, resume_failed=resume_failed)


def _check_on_change(on_change: str) -> None:
    if on_change not in ("rerun", "replay"):
        raise InvalidValueError(
            f'launch(..., on_change=...) takes "rerun" or "replay", not {on_change!r}.',
            what="on_change",
            value=on_change,
        )


def rerun_plan(rt: Runtime, workflow_id: str) -> RerunPlan | None:
    """The re-run of ``workflow_id``, when it ended or was interrupted and its code changed
    since (else None)."""
    if _previous(rt, workflow_id).state not in ("finished", "interrupted"):
        return None
    return rt.rerun_plan(workflow_id)


def rerun_with_view(
    rt: Runtime,
    fn: Callable[..., Any],
    old_id: str,
    plan: RerunPlan,
    watch: Iterable[str] | str | None,
) -> LaunchedHandle:
    """Say what changed, show a view, then run ``old_id`` again as ``plan.new_id``, reusing
    what still holds; the view ends with what was reused and what ran again."""
    __tracebackhide__ = True
    _capture.install()
    new_id, changed = plan.new_id, plan.changes.describe()
    say(
        f"nbflow: {changed} since {old_id} ran; running it again as {new_id}, "
        "reusing every step whose code and arguments are the same."
    )
    view = LiveView(None, watch, runtime=rt, name=getattr(fn, "name", None))
    view.ending_note = lambda: _reused(rt, new_id, old_id, changed)
    view.display()
    try:
        handle = rt.rerun(old_id, new_id)
    except BaseException as exc:
        view.not_started(exc)
        raise
    view.attach(handle.workflow_id)
    return LaunchedHandle(handle, view, Previous("changed", "", None))


def _reused(rt: Runtime, new_id: str, old_id: str, changed: str) -> str:
    """``step 'parse' changed since the last run: 100 calls run again, 100 reused``."""
    steps = [s for s in rt.list_steps(new_id) if s.code is not None]
    reused = sum(1 for s in steps if s.cached_from == old_id)
    ran = sum(1 for s in steps if s.cached_from is None)
    return f"{changed} since the last run: {ran} calls run again, {reused} reused"


def start_with_view(
    rt: Runtime,
    fn: Callable[..., Any],
    workflow_id: str | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    watch: Iterable[str] | str | None,
    rerun_hint: str,
    *,
    resume_failed: bool = False,
) -> LaunchedHandle:
    """Say what runs under ``workflow_id``, show a view, then start (or find) the workflow
    (None: a new id; ``fn`` not a workflow: the view shows why it did not start); with
    ``resume_failed``, a failed run is resumed from the step that failed."""
    __tracebackhide__ = True
    _capture.install()  # what the workflow prints goes to its view, not to another cell
    previous = Previous("new") if workflow_id is None else _previous(rt, workflow_id)
    if resume_failed and previous.state == "finished" and previous.status == "ERROR":
        previous = dataclasses.replace(previous, state="resumed")
    note = None if workflow_id is None else _note(previous, workflow_id, rerun_hint)
    if note is not None:
        say(note)
    view = LiveView(None, watch, runtime=rt, name=getattr(fn, "name", None))
    view.display()
    try:
        if previous.state == "resumed" and workflow_id is not None:
            handle = rt.resume(workflow_id)
        else:
            with nbflow.set_workflow_id(workflow_id) if workflow_id else contextlib.nullcontext():
                handle = rt.start(fn, *args, **kwargs)
    except BaseException as exc:
        view.not_started(exc)
        raise
    view.attach(handle.workflow_id)
    return LaunchedHandle(handle, view, previous)
