"""Patches: changing a long-running workflow's code without breaking the runs under way.

A run that passed a point before the code there changed must replay what it recorded; a run that
reaches it afterwards takes the new path. DBOS calls this ``patch``, Temporal ``patched``::

    @nbflow.workflow
    def pipeline(urls):
        rows = fetch_all(urls)
        if nbflow.patched("dedupe-rows"):      # new runs, and runs that had not got here yet
            rows = dedupe(rows)
        return store(rows)

Once no run from before the patch is left, ``nbflow.deprecate_patch("dedupe-rows")`` replaces the
test (it returns True and still understands runs that recorded the patch); later, remove it.
"""

from __future__ import annotations

from nbflow._serialization import check_text
from nbflow.workflow import _context as context

__all__ = ["deprecate_patch", "patched"]


def patched(name: str) -> bool:
    """Whether this run takes the patched path ``name``.

    True in new runs and in resumed runs that had not yet reached this point (it is recorded
    then, as a checkpoint); False in a run that passed this point before the patch existed (its
    recorded operation here is another). Outside a workflow: True.

    Args:
        name: The patch's name, unique within the workflow.
    """
    check_text(name, "A patch name")
    ctx = context.body()
    return True if ctx is None else ctx.patched(name)


def deprecate_patch(name: str) -> bool:
    """A patch every run has passed: True, recording nothing new; a replay that recorded the
    patch ``name`` at this point still finds its place. Remove the call once no run that
    recorded the patch remains.
    """
    check_text(name, "A patch name")
    ctx = context.body()
    return True if ctx is None else ctx.patched(name, deprecated=True)
