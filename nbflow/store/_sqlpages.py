"""A page of a stream as one JSON text, built by the database in one query (a part of
:class:`~nbflow.store._sql.SQLStore`).

A reader of a long stream would otherwise cost a row tuple and a text object per item before it
decodes anything. This query returns one row: the page's JSON values joined by commas in offset
order (``string_agg``, which both DuckDB and PostgreSQL run), each whose offset is a multiple of
:data:`CHUNK` marked, how many rows it read, its first and last offsets, whether it reached the
end marker and how many of its items are pickled. A reader splits the text at the marks and
decodes a chunk when it reaches it, so the values of the chunk before it were let go and their
memory is reused. A page that holds a pickled or Arrow-stored item is read as rows
(:meth:`Store.read_stream`).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, NamedTuple

__all__ = ["CHUNK", "CHUNK_MARK", "JsonPage", "PageQueries"]

#: The text of a page marks each item whose offset is a multiple of this.
CHUNK = 1024
#: The mark, put before such an item's JSON text: a control character, which JSON text never
#: holds (in a string it is escaped, ``\u001e``).
CHUNK_MARK = "\x1e"


class JsonPage(NamedTuple):
    """The first rows of a stream from an offset, their JSON values joined.

    Attributes:
        rows: How many rows were read, the end marker included (0: none).
        first: The offset of the first row (None: none).
        last: The offset of the last row (None: none).
        ended: Whether the last row is the stream's end marker.
        pickled: How many items are stored as pickles or Arrow containers (not in ``text``).
        text: The items' JSON texts, in offset order, joined by commas, with :data:`CHUNK_MARK`
            before each whose offset is a multiple of :data:`CHUNK`; None when no item is
            stored as JSON.
    """

    rows: int
    first: int | None
    last: int | None
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
_JOINED = (
    'SELECT count(*), min("offset"), max("offset"), coalesce(bool_or(is_end), false), '
    f'count(value_pickle), string_agg(CASE WHEN "offset" % {CHUNK} = 0 THEN chr(30) || '
    "value_json ELSE value_json END, ',' ORDER BY \"offset\") FROM {rows}"
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

    def read_stream_json(self, workflow_id: str, key: str, start: int, limit: int) -> JsonPage:
        ranged, first = _JOINED.format(rows=_RANGE), _JOINED.format(rows=_FIRST)
        found = self._page(ranged, first, [workflow_id, key, start, limit], joined=True)
        return JsonPage(*found[0])

    def _page(
        self, ranged: str, first: str, params: list[Any], *, joined: bool = False
    ) -> list[tuple[Any, ...]]:
        """The rows of query ``first`` over the first ``limit`` rows of the stream from
        ``start`` (``params``: workflow id, key, start, limit), or of ``ranged`` over the rows of
        offsets ``start`` to ``start + limit - 1`` where they are the same. A row's fourth column
        says whether it ends the stream; with ``joined``, the one row counts the rows first."""
        if self._range_pages:
            # The range's rows are the first ``limit`` when there are ``limit`` of them, when
            # they reach the end marker, or when no row follows the range (the stream ends there
            # for now): as a stream's offsets follow each other, one query but for its tail.
            workflow_id, key, start, limit = params
            found = self._fetchall(ranged, [workflow_id, key, start, start + limit])
            rows = found[0][0] if joined else len(found)
            if rows == limit or (found and found[-1][3]):
                return found
            if not self._fetchall(_BEYOND, [workflow_id, key, start + limit]):
                return found
        return self._fetchall(first, params)
