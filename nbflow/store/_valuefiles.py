"""Large values in content-addressed files beside a DuckDB file, the rows holding references.

A stored value (an Arrow container or a pickle) of more than :data:`LARGE_VALUE_BYTES` bytes,
on a DuckDB file, is written to ``<file>.values/<sha256[:2]>/<sha256>.bin`` and its row holds a
reference blob instead: :data:`REF_MAGIC` (never the start of a pickle or a container), then the
SHA-256 in hex and the size in 16 hex digits (88 bytes in all). DuckDB then neither copies the
bytes through its buffer pool nor rewrites them at a checkpoint, and a read maps the file into
memory (Arrow reads its buffers in place). PostgreSQL keeps every value in its row (bytea).

A file is written to a temporary name, fsynced, renamed, and its folder fsynced, all before the
value is encoded into a row: the commit that refers to it comes after (the write log's order).
Equal values share one file.

Files no row refers to any more (after a prune or a deleted workflow) are removed by
:meth:`ValueFiles.collect` (or :meth:`ValueFiles.remove_unreferenced`, given the hashes the rows
refer to, :meth:`ValueFiles.referenced`): a file this process wrote whose row may not be committed
yet is never removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from pathlib import Path
from typing import Any

from nbflow._dberrors import DatabaseError
from nbflow.store._schema import BLOB, TABLES

__all__ = ["LARGE_VALUE_BYTES", "REF_MAGIC", "REF_SIZE", "ValueFiles", "parse_ref"]

#: Values of more encoded bytes than this go to a file (on a DuckDB file).
LARGE_VALUE_BYTES = 8 << 20
REF_MAGIC = b"\x00nbfref1"
REF_SIZE = len(REF_MAGIC) + 64 + 16


def parse_ref(blob: Any) -> tuple[str, int] | None:
    """``(sha256 hex, size)`` of a reference blob; None for any other blob."""
    if blob is None or len(blob) != REF_SIZE or bytes(blob[: len(REF_MAGIC)]) != REF_MAGIC:
        return None
    text = bytes(blob[len(REF_MAGIC) :]).decode("ascii")
    return text[:64], int(text[64:], 16)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ValueFiles:
    """The folder of large values beside one DuckDB file.

    Args:
        folder: The folder (created at the first large value).
        threshold: Values of more bytes than this go to a file (default: :data:`LARGE_VALUE_BYTES`
            when it is made).
    """

    def __init__(self, folder: str | os.PathLike[str], threshold: int | None = None) -> None:
        self.folder = Path(folder)
        self.threshold = LARGE_VALUE_BYTES if threshold is None else threshold
        self._lock = threading.Lock()
        # Hashes written (or found) by this process that no row was seen to refer to yet.
        self._pending: set[str] = set()

    def path(self, digest: str) -> Path:
        """The file of the value with this SHA-256 (hex)."""
        return self.folder / digest[:2] / f"{digest}.bin"

    def put(self, blob: Any) -> bytes:
        """Write ``blob`` to its file (durably) unless it is there; its reference blob."""
        view = memoryview(blob)
        digest = hashlib.sha256(view).hexdigest()
        target = self.path(digest)
        with self._lock:
            self._pending.add(digest)  # before looking: a collection running now keeps it
            if target.exists() and target.stat().st_size == view.nbytes:
                return self._ref(digest, view.nbytes)
        try:
            self._write(target, view)
        except OSError as exc:
            raise DatabaseError(
                f"Cannot write a large value to {str(target)!r} ({exc.strerror or exc}). Nothing "
                "was written. Check that the folder beside the database file is writable and "
                "the disk has room.",
                path=str(target),
            ) from exc
        return self._ref(digest, view.nbytes)

    @staticmethod
    def _ref(digest: str, size: int) -> bytes:
        return REF_MAGIC + digest.encode("ascii") + f"{size:016x}".encode("ascii")

    def _write(self, target: Path, view: memoryview) -> None:
        new_dirs = [p for p in (self.folder, target.parent) if not p.exists()]
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(temp, "wb") as file:
            file.write(view)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
        _fsync_dir(target.parent)
        for made in new_dirs:  # a new folder's entry is durable in its parent
            _fsync_dir(made.parent)

    def read(self, blob: Any, what: str) -> Any:
        """The stored bytes a reference blob names, memory-mapped (a ``pyarrow.Buffer`` when
        pyarrow is installed, else bytes)."""
        found = parse_ref(blob)
        assert found is not None
        digest, size = found
        path = self.path(digest)
        if not path.exists():
            raise DatabaseError(
                f"The stored value of {what} is kept in the file {str(path)!r}, which is missing. "
                "Restore the folder beside the database file from where it was copied (a copy "
                "of the database needs its '.values' folder too).",
                path=str(path),
            )
        try:
            import pyarrow as pa
        except ImportError:
            return path.read_bytes()
        return pa.memory_map(str(path)).read_buffer(size)

    @staticmethod
    def referenced(sql: Any) -> set[str]:
        """The hashes the rows refer to; ``sql``: the store's ``sql`` (DuckDB: a relation)."""
        blobs = [
            f"SELECT {column} AS v FROM {table}"
            for table, columns in TABLES.items()
            for column, kind in columns
            if kind == BLOB
        ]
        query = f"SELECT v FROM ({' UNION ALL '.join(blobs)}) WHERE octet_length(v) = {REF_SIZE}"
        found = set()
        for (blob,) in sql(query).fetchall():
            ref = parse_ref(blob)
            if ref is not None:
                found.add(ref[0])
        return found

    def collect(self, sql: Any, *, settled: bool = False) -> int:
        """Remove the files no row refers to (call it after rows were deleted and committed);
        returns how many were removed. ``sql``: the store's ``sql``. ``settled``: every file this
        process wrote so far has its row committed, or never will (nothing of this process is
        between writing a file and appending its row: no workflow runs, the log was flushed),
        so none is kept as pending."""
        if settled:
            with self._lock:
                self._pending.clear()  # (a put from now on is pending again, before its file)
        return self.remove_unreferenced(self.referenced(sql))

    def remove_unreferenced(self, referenced: set[str]) -> int:
        """Remove the files whose hash is not in ``referenced`` (the hashes the rows refer to,
        from ``Store.value_references()`` read after the rows were deleted); returns how many.

        A file this process wrote whose row was not seen referenced yet (its commit may still
        be on the way) is kept; one seen referenced now stops being pending.
        """
        removed = 0
        with self._lock:
            self._pending -= referenced
            if not self.folder.exists():
                return 0
            for path in self.folder.glob("*/*.bin"):
                digest = path.name[: -len(".bin")]
                if digest in referenced or digest in self._pending:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
            for path in self.folder.glob("*/*.tmp"):  # left by a crash mid-write
                if not any(d in path.name for d in self._pending):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
        return removed
