"""A page of a stream as JSON arrays, built by the database in one query (a part of
:class:`~nbflow.store._sql.SQLStore`).

A reader of a long stream would otherwise cost a row tuple and a text object per item before it
decodes anything. This query returns a row per chunk of :data:`CHUNK` offsets: the chunk's JSON
values joined into one array text (``string_agg`` in offset order, which both DuckDB and
PostgreSQL run), how many rows it read, the offsets of its first and last item, and whether it
reached the end marker. A reader decodes a chunk when it reaches it, so the values of the chunk
before it were let go and their memory is reused. A chunk that holds a pickled or Arrow-stored
item has no such text: its reader reads its rows (:meth:`Store.read_stream`).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, NamedTuple

__all__ = ["CHUNK_BITS", "JsonChunk", "PageQueries"]

#: A chunk holds the rows of ``2 ** CHUNK_BITS`` consecutive offsets (those stored).
CHUNK_BITS = 10


class JsonChunk(NamedTuple):
    """The rows of a stream's page from one chunk of offsets, as one JSON array.

    Attributes:
        rows: How many rows were read, the end marker included.
        first: The offset of the first item (None: no item, only the end marker).
        last: The offset of the last item (None: no item).
        ended: Whether the chunk's last row is the stream's end marker.
        text: The items' JSON texts, in offset order, as one JSON array (``[]`` when there is no
            item); None when one of them is not stored as JSON (read the rows instead).
    """

    rows: int
    first: int | None
    last: int | None
    ended: bool
    text: str | None


# The end marker holds no value (both columns NULL): ``string_agg`` skips it, ``count`` of
# ``value_pickle`` counts the items stored as pickles or Arrow containers.
_JSON_PAGE = (
    'SELECT count(*), min("offset") FILTER (WHERE NOT is_end), '
    'max("offset") FILTER (WHERE NOT is_end), coalesce(bool_or(is_end), false), '
    "CASE WHEN count(value_pickle) = 0 THEN "
    "'[' || coalesce(string_agg(value_json, ',' ORDER BY \"offset\"), '') || ']' END "
    'FROM (SELECT "offset", value_json, value_pickle, is_end FROM streams '
    'WHERE workflow_id = $1 AND key = $2 AND "offset" >= $3 ORDER BY "offset" LIMIT $4) AS page '
    f'GROUP BY "offset" >> {CHUNK_BITS} ORDER BY "offset" >> {CHUNK_BITS}'
)


class PageQueries(abc.ABC):
    """:meth:`read_stream_json`, over a SQL store's :meth:`_fetchall`."""

    @abc.abstractmethod
    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query on a connection of this thread's and return its rows."""

    def read_stream_json(
        self, workflow_id: str, key: str, start: int, limit: int
    ) -> list[JsonChunk]:
        rows = self._fetchall(_JSON_PAGE, [workflow_id, key, start, limit])
        return [JsonChunk(*row) for row in rows]
