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
    """The rows of a stream's page from one chunk of offsets, their JSON values joined.

    Attributes:
        rows: How many rows were read, the end marker included.
        first: The offset of the first row.
        last: The offset of the last row.
        ended: Whether the last row is the stream's end marker.
        pickled: How many items are stored as pickles or Arrow containers (not in ``text``).
        text: The items' JSON texts, in offset order, joined by commas (``"[" + text + "]"`` is
            their JSON array); None when no item is stored as JSON.
    """

    rows: int
    first: int
    last: int
    ended: bool
    pickled: int
    text: str | None


# The end marker holds no value (both columns NULL): ``string_agg`` skips it, and so the items
# stored as pickles or Arrow containers, which ``count(value_pickle)`` counts.
_CHUNKS = (
    'SELECT count(*), min("offset"), max("offset"), bool_or(is_end), count(value_pickle), '
    "string_agg(value_json, ',' ORDER BY \"offset\") FROM {rows} "
    f'GROUP BY "offset" >> {CHUNK_BITS} ORDER BY "offset" >> {CHUNK_BITS}'
)
#: The rows of offsets ``$3`` to ``$4 - 1``: no sort to pick them, and a DuckDB scan skips the
#: row groups whose offsets are all out of the range.
_RANGE = _CHUNKS.format(
    rows='streams WHERE workflow_id = $1 AND key = $2 AND "offset" >= $3 AND "offset" < $4'
)
#: The first ``limit`` rows from ``start``, whatever offsets they have.
_FIRST = _CHUNKS.format(
    rows='(SELECT "offset", value_json, value_pickle, is_end FROM streams WHERE workflow_id = $1 '
    'AND key = $2 AND "offset" >= $3 ORDER BY "offset" LIMIT $4) AS page'
)


class PageQueries(abc.ABC):
    """:meth:`read_stream_json`, over a SQL store's :meth:`_fetchall`."""

    @abc.abstractmethod
    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query on a connection of this thread's and return its rows."""

    def read_stream_json(
        self, workflow_id: str, key: str, start: int, limit: int
    ) -> list[JsonChunk]:
        # A stream's offsets follow each other, so the range's rows are the first ``limit``
        # when there are ``limit`` of them or they reach the end marker. Otherwise the stream
        # ends there for now, or (were offsets ever missing) more rows follow: read the first.
        found = self._fetchall(_RANGE, [workflow_id, key, start, start + limit])
        if sum(row[0] for row in found) < limit and not (found and found[-1][3]):
            found = self._fetchall(_FIRST, [workflow_id, key, start, limit])
        return [JsonChunk(*row) for row in found]
