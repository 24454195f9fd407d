"""``python -m nbflow``: the ``nbflow`` command."""

from __future__ import annotations

from nbflow.cli import main

raise SystemExit(main())
