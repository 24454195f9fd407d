"""Text for people, shared by the CLI, the notebook and the errors (the bottom layer: it imports
nothing else of nbflow).

- ``_format``: one style for times, durations, status words, values and ids;
- ``_status``: the words a person types for a status (``failed`` or ``ERROR``) and what each means;
- ``_tables``: tables of records for a terminal and for HTML;
- ``_calls``: a step call's arguments in a few characters (the steps table's ``argument``);
- ``_options``: the history's filters as the command line and the magics take them, and the
  step statistics table;
- ``_svg``, ``_gantt``: a small SVG writer (every text escaped); a Gantt chart drawn with it;
- ``_hints``: a command as the front end in use names it (``nbflow.recover()``,
  ``%nbflow recover``, ``nbflow recover``);
- ``_locked``: what a process refused a DuckDB file is told (who holds it, what to do);
- ``_refusals``: what a refused enqueue is told (which workflow holds its deduplication id).
"""
