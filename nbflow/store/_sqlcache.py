"""The step cache's queries, written once in SQL both DuckDB and PostgreSQL run (a part of
:class:`~nbflow.store._sql.SQLStore`)."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from nbflow.store._ops import CacheRow
from nbflow.store._schema import column_list

__all__ = ["CACHE_COLUMNS", "CacheQueries"]

CACHE_COLUMNS = column_list("step_cache")
#: Runs one statement in the caller's transaction and returns its rows.
Execute = Callable[[str, list[Any]], list[tuple[Any, ...]]]


class CacheQueries(abc.ABC):
    """The step cache's reads and its clearing, over a SQL store's :meth:`_fetchall` and
    :meth:`_queue_transaction`."""

    #: The backend's test that ``entry`` is in the list ``$1``.
    _entry_in: str

    @abc.abstractmethod
    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query on a connection of this thread's and return its rows."""

    @abc.abstractmethod
    def _queue_transaction(self, queue_name: str) -> contextlib.AbstractContextManager[Execute]:
        """A transaction, one per name at a time; yields how to run a statement in it."""

    def find_cached(self, entries: Sequence[str]) -> dict[str, CacheRow]:
        if not entries:
            return {}
        rows = self._fetchall(
            f"SELECT {CACHE_COLUMNS} FROM step_cache WHERE {self._entry_in}", [list(entries)]
        )
        return {row[0]: CacheRow(*row) for row in rows}

    def cached_rows(self, name: str, code: str, limit: int) -> list[CacheRow] | None:
        rows = self._fetchall(
            f"SELECT {CACHE_COLUMNS} FROM step_cache WHERE name = $1 AND code = $2 LIMIT $3",
            [name, code, limit + 1],
        )
        return None if len(rows) > limit else [CacheRow(*row) for row in rows]

    def last_cached(self, name: str, args_hash: str | None = None) -> CacheRow | None:
        rows = self._fetchall(
            f"SELECT {CACHE_COLUMNS} FROM step_cache WHERE name = $1 "
            "ORDER BY args_hash IS NOT DISTINCT FROM $2 DESC, created_at DESC LIMIT 1",
            [name, args_hash],
        )
        return CacheRow(*rows[0]) if rows else None

    def clear_cache(self, name: str | None, older_than: float | None) -> int:
        where, params = ["TRUE"], []
        for test, value in (("name = ${}", name), ("created_at < ${}", older_than)):
            if value is not None:
                params.append(value)
                where.append(test.format(len(params)))
        with self._queue_transaction("nbflow.cache") as execute:
            rows = execute(
                f"DELETE FROM step_cache WHERE {' AND '.join(where)} RETURNING entry", params
            )
        return len(rows)
