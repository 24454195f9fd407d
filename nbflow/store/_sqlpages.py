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


_COLUMNS = '"offset", value_json, value_pickle, is_end'
_STREAM = "streams WHERE workflow_id = $1 AND key = $2"
#: The rows of offsets ``$3`` to ``$4 - 1``: no sort to pick them, and a DuckDB scan skips the
#: row groups whose offsets are all out of the range.
_RANGE = f'{_STREAM} AND "offset" >= $3 AND "offset" < $4'
#: The first ``$4`` rows from offset ``$3``, whatever offsets they have: DuckDB scans the whole
#: table and sorts to pick them (pages of 16,384 rows of a 1,000,000-item stream took 2.8 s
#: and 135 MB more at the peak, read by range 0.7 s and 32 MB).
_FIRST = f'(SELECT {_COLUMNS} FROM {_STREAM} AND "offset" >= $3 ORDER BY "offset" LIMIT $4) AS p'
#: Whether a row follows offset ``$3 - 1``.
_BEYOND = f'SELECT 1 FROM {_STREAM} AND "offset" >= $3 LIMIT 1'
# The end marker holds no value (both columns NULL): ``string_agg`` skips it, and so the items
# stored as pickles or Arrow containers, which ``count(value_pickle)`` counts.
_CHUNKS = (
    'SELECT count(*), min("offset"), max("offset"), bool_or(is_end), count(value_pickle), '
    "string_agg(value_json, ',' ORDER BY \"offset\") FROM {rows} "
    f'GROUP BY "offset" >> {CHUNK_BITS} ORDER BY "offset" >> {CHUNK_BITS}'
)


class PageQueries(abc.ABC):
    """A stream's pages, :meth:`read_stream` and :meth:`read_stream_json`, over a SQL store's
    :meth:`_fetchall`."""

    #: Whether a page is read by its range of offsets first (DuckDB: see :data:`_FIRST`).
    _range_pages: bool = False

    @abc.abstractmethod
    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query on a connection of this thread's and return its rows."""

    def read_stream(
        self, workflow_id: str, key: str, start: int, limit: int
    ) -> list[tuple[int, str | None, bytes | None, bool]]:
        ranged = f'SELECT {_COLUMNS} FROM {_RANGE} ORDER BY "offset"'
        first = f'SELECT {_COLUMNS} FROM {_STREAM} AND "offset" >= $3 ORDER BY "offset" LIMIT $4'
        return self._page(ranged, first, [workflow_id, key, start, limit])  # type: ignore[return-value]

    def read_stream_json(
        self, workflow_id: str, key: str, start: int, limit: int
    ) -> list[JsonChunk]:
        ranged, first = _CHUNKS.format(rows=_RANGE), _CHUNKS.format(rows=_FIRST)
        found = self._page(ranged, first, [workflow_id, key, start, limit], chunks=True)
        return [JsonChunk(*row) for row in found]

    def _page(
        self, ranged: str, first: str, params: list[Any], *, chunks: bool = False
    ) -> list[tuple[Any, ...]]:
        """The rows of query ``first`` over the first ``limit`` rows of the stream from
        ``start`` (``params``: workflow id, key, start, limit), or of ``ranged`` over the rows of
        offsets ``start`` to ``start + limit - 1`` where they are the same. A row's fourth column
        says whether it ends the stream; with ``chunks``, its first counts the rows it stands
        for."""
        if self._range_pages:
            # The range's rows are the first ``limit`` when there are ``limit`` of them, when
            # they reach the end marker, or when no row follows the range (the stream ends there
            # for now): as a stream's offsets follow each other, one query but for its tail.
            workflow_id, key, start, limit = params
            found = self._fetchall(ranged, [workflow_id, key, start, start + limit])
            rows = sum(row[0] for row in found) if chunks else len(found)
            if rows == limit or (found and found[-1][3]):
                return found
            if not self._fetchall(_BEYOND, [workflow_id, key, start + limit]):
                return found
        return self._fetchall(first, params)
