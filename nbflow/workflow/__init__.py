"""What user code calls: declarations, in-body calls and the seam to the engine.

Nothing here imports :mod:`nbflow.engine`. A declaration asks the abstract
:class:`~nbflow.workflow._context.WorkflowContext` (inside a workflow body) or
:class:`~nbflow.workflow._context.Runner` (outside one) for what it needs; each thread and asyncio
task finds its own through a context variable, and the engine implements both.

Modules, each importing only those listed after it (``lint-imports`` checks it):

- ``_schedules``: ``@scheduled``, ``list_schedules`` (a workflow run at each tick of a cron
  expression; croniter reads it);
- ``_workflows``, ``_steps``, ``_queues``, ``_progress``, ``_messages``, ``_parallel``,
  ``_patches``, ``_recovery``: ``@workflow``, ``set_workflow_id``; ``@step``, ``run_step``;
  ``Queue``, ``enqueue_options``; ``progress``, ``track``; ``sleep``, events and messages;
  ``map``, ``Executor``; ``patched``, ``deprecate_patch``; ``Recovered`` and the listeners a
  front end registers to hear of each recover;
- ``_fanout``: the loop both maps share (at most ``concurrency`` in flight, retries of items run
  in other processes, items that arrived after their window of the rate sent again);
- ``_remote``: a map item in another process (its window of the rate; what it prints carried
  back);
- ``_context``: the seam: the scope of a thread or task (a :class:`Scope` record), the abstract
  ``WorkflowContext`` and ``Runner``, the ids and timeouts a caller gives;
- ``_handle``: ``WorkflowHandle``, over the ``Tracker`` protocol the engine implements;
- ``_workers``, ``_alarm``: worker threads and the pacing of a rate; the one cancellable pause;
- ``_calls``: typed records of calls (``Step``, ``RetryPolicy``, ``WorkflowCall``, ``MapOptions``);
- ``_cache``: ``Cache`` (how a step's results are kept across runs), ``refresh_cache``.

The package exports nothing itself: the public names are :mod:`nbflow`'s.
"""
