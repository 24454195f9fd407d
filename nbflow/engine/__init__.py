"""What implements the workflow package: the runtime and everything a workflow runs on.

Modules, each importing only those listed after it (``lint-imports`` checks it):

- ``_runtime``: :class:`~nbflow.Runtime`, what a user calls; it composes the parts below and owns
  the private :class:`~nbflow.engine._core.RuntimeCore`, which implements the seam's
  ``Runner`` and the handles' ``Tracker``;
- ``_reads``: ``HistoryReads``, the runtime's filtered history reads (``list_workflows``,
  ``step_stats``, ``read_stream_frame``), a base of ``Runtime``; ``_removals``: ``Removals``,
  its deletes (``delete_workflow``, ``prune``, ``collect_value_files``), another base;
  ``_transfer``: ``Transfers``, moving workflows between databases (``export_workflow``,
  ``import_workflow``, ``copy_to``), another base;
- ``_core``: ``RuntimeCore``, the runtime's machinery;
- ``_rerun``, ``_why``: what changed in a workflow's code since it ran, and its re-run
  (``<id>.2``) that takes the old run's checkpoints wherever step, code and arguments still
  match; why a cached step's call ran (``nbflow.why``);
- ``_retention``: removing finished workflows (``delete_workflow``, ``prune``);
- ``_lifecycle``: begin, run, end, cancel, resume, recover, fork, enqueue and dequeue;
- ``_history``, ``_queues``, ``_reports``, ``_schedules``: reads and waits for workflows
  elsewhere; the queue thread and what an enqueue records (options, deduplication); what the
  committer and other processes report (durable ends, cancels, take-overs); the scheduler thread
  (a workflow per tick, its id naming the tick);
  ``_timelayout``: a timeline's rows (steps packed into lanes, streams as ticks) as a Gantt chart;
  ``_recovery``: a claim that recovers a workflow, counted and held to its
  ``max_recovery_attempts``; ``recover()``'s claim of every interrupted workflow in one
  transaction, their replays read in one query;
- ``_timeline``: a workflow and its children (bounded) as a timeline draws them
  (``TimelineData``);
- ``_workflows``: ``WorkflowRun``, the ``WorkflowContext`` of one body (the step loop, sync and
  async), running a body and concluding it;
- ``_messages``, ``_streams``, ``_children``, ``_parallel``: sleep, events and messages; streams
  read from a body; child workflows; ``nbflow.map`` inside a workflow;
- ``_waits``: ``wait_first`` (checkpointed in a body), and an event of a workflow or its end;
- ``_tracing``: spans through OpenTelemetry, when a tracer provider is set (a workflow, its step
  attempts, maps and their items, children);
- ``_steps``, ``_reader``: ``StepRun``, one attempt of a step with its retry policy and record;
  stream readers;
- ``_inflight``: cached calls with one key at once run once; cached calls outside a body;
- ``_cache``: the step cache (keys, freshness, the rows kept, why a call missed);
- ``_execution``: ``Execution``, the state machine of one run (function ids, replay, offsets);
- ``_code``: what a run knows of code (fingerprints once per run, replayed steps whose code
  changed, the old run's checkpoints a re-run takes);
- ``_engine``: ``Engine`` (store, write log, notifier, codec) and ``Watch``, the one wait loop;
- ``_writelog``, ``_notify``, ``_deadlines``, ``_loop``, ``_threads``, ``_queries``: the committer,
  waking readers, timeouts, nbflow's event loop, the threads workflows run in (an ended
  workflow's thread kept a while for the next); the history's filters checked and made store
  queries.

Each declaration and its implementation share a noun: ``workflow/_messages`` and
``engine/_messages``, ``workflow/_parallel`` and ``engine/_parallel``, ``workflow/_steps`` and
``engine/_steps``, ``workflow/_queues`` and ``engine/_queues``, ``workflow/_schedules`` and
``engine/_schedules``, ``workflow/_workflows`` and
``engine/_workflows``, ``workflow/_cache`` and ``engine/_cache``.
"""
