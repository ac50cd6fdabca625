"""The embedded job store: the job machine in memory, every change committed to SQLite first.

How it works
------------
:class:`SqliteJobStore` keeps a :class:`~actors.jobs.machine.JobMachine` in memory for the
logic (queue order, leases, retries, fencing) and a SQLite file as the durable record:

- ``jobs(id, seq, status, type, priority, created_at, updated_at, data)``: one row per job,
  ``data`` the msgpack of the plain job (``job_to_plain``), the other columns copies of its
  fields for ad hoc queries (indexed on ``status``, ``type`` and ``seq``);
- ``meta(key, value)``: the scheduler epoch (the fencing token) and the next sequence number.

``open()`` reads every row back into the machine (``JobMachine.load``). ``execute(batch)``
applies each command of the batch to the machine, then writes what changed
(``take_changes()``: upserts, deletes, meta) in **one** transaction and commits it before
returning: one fsync covers the whole batch (group commit), and a reply sent after
``execute`` returns is about a change already on disk. The file runs in WAL mode with
``synchronous=FULL``, so a commit survives power loss, not only a process crash (``NORMAL``
would trade the last commits on power loss for speed, which breaks "acknowledged means kept").

The rule it keeps: **memory never runs ahead of disk**. If the commit fails (disk full, I/O
error, read-only file) the transaction is rolled back, the machine is rebuilt from the file and
:class:`StoreUnavailable` is raised: nothing of the batch was applied, and a later batch can
succeed once the disk recovers. If even the rebuild fails, every later ``execute`` retries it
first and answers unavailable until it works. A command that makes the machine raise (a bug;
bad input is answered ``{"error": ...}`` by the machine) is isolated the same way: the machine
is rebuilt, the batch's earlier commands re-applied, and that one command answered with an error.

Every SQLite call runs in a worker thread (``trio.to_thread.run_sync``) on one connection
(``check_same_thread=False``) used by one batch at a time (a ``trio.Lock``), so an fsync never
blocks the event loop. The file is opened with ``locking_mode=EXCLUSIVE``: a second process
cannot open the same store while this one holds it (its machine would silently diverge), and
is told so in one line.

Known limit: the ready order within one priority is rebuilt from submission order when the
file is loaded (a job that was retried rejoins the queue at its submission place), because the
row holds the job, not its place in the queue.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgpack
import trio

from actors.jobs import RetryPolicy
from actors.jobs.machine import JobMachine

from .base import StoreUnavailable

SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS jobs(
        id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        status TEXT NOT NULL,
        type TEXT NOT NULL,
        priority INTEGER NOT NULL,
        created_at REAL,
        updated_at REAL,
        data BLOB NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status)",
    "CREATE INDEX IF NOT EXISTS jobs_type ON jobs(type)",
    "CREATE INDEX IF NOT EXISTS jobs_seq ON jobs(seq)",
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)

_UPSERT = (
    "INSERT INTO jobs(id, seq, status, type, priority, created_at, updated_at, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, "
    "status = excluded.status, type = excluded.type, priority = excluded.priority, "
    "created_at = excluded.created_at, updated_at = excluded.updated_at, data = excluded.data"
)
_SET_META = "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"

_Row = tuple[str, int, str, str, int, float, float, bytes]


def _pack(value: Any) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def _row(job_id: str, seq: int, plain: dict[str, Any]) -> _Row:
    return (
        job_id,
        seq,
        plain["status"],
        plain["type"],
        plain["priority"],
        plain["created_at"],
        plain["updated_at"],
        _pack(plain),
    )


class SqliteJobStore:
    """A :class:`~transport.stores.base.JobStoreBackend` in one SQLite file (see module docstring).

    Args:
        path: the database file (its directory is created if missing).
        policy: retry backoff applied to failed jobs (default ``RetryPolicy()``).
        busy_timeout: seconds to wait for a file another process holds before giving up.

    Attributes:
        machine: the in-memory machine; read it only between batches.
        commits: transactions committed (one per batch that changed something).
    """

    def __init__(self, path: Path | str, policy: RetryPolicy | None = None, *, busy_timeout: float = 2.0):
        self.path = Path(path)
        self.machine = JobMachine(policy)
        self.busy_timeout = busy_timeout
        self.commits = 0
        self._conn: sqlite3.Connection | None = None
        self._lock = trio.Lock()
        self._meta_on_disk = (0, 1)
        self._stale = False  # the machine could not be rebuilt after a failed commit

    # ------------------------------------------------------------------ the backend protocol

    async def open(self) -> None:
        """Open (or create) the file and load every job into the machine; no-op if open.

        Raises:
            StoreUnavailable: the file cannot be opened or read, another process holds it, or
                a row is not a job (one line naming the file).
        """
        async with self._lock:
            if self._conn is None:
                await trio.to_thread.run_sync(self._open_sync)

    async def execute(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apply ``commands`` in order, commit their changes in one transaction, return results.

        Raises:
            StoreUnavailable: the store is closed or the commit failed; nothing of the batch
                was applied (see the module docstring).
        """
        async with self._lock:
            if self._conn is None:
                raise StoreUnavailable(f"sqlite job store {self.path} is not open; call open() first")
            return await trio.to_thread.run_sync(self._execute_sync, commands)

    async def close(self) -> None:
        """Close the file (the machine keeps its state until the next ``open``)."""
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await trio.to_thread.run_sync(conn.close)

    # ------------------------------------------------------------------ in the worker thread

    def _open_sync(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
        except (sqlite3.Error, OSError) as e:
            raise StoreUnavailable(f"cannot open sqlite job store {self.path}: {e}") from None
        try:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")  # before WAL: no shared-memory index
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreUnavailable(
                    f"sqlite job store {self.path} has schema {version}, newer than this Troupe's "
                    f"{SCHEMA_VERSION}; upgrade Troupe or use another data directory"
                )
            conn.execute("BEGIN IMMEDIATE")  # the first write takes the exclusive lock for good
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
            self._conn = conn
            self._reload_sync()
        except StoreUnavailable:
            self._conn = None
            conn.close()
            raise
        except sqlite3.Error as e:
            self._conn = None
            conn.close()
            if "locked" in str(e):
                raise StoreUnavailable(
                    f"sqlite job store {self.path} is in use by another process; stop it or use "
                    "another data directory"
                ) from None
            raise StoreUnavailable(f"cannot open sqlite job store {self.path}: {e}") from None

    def _reload_sync(self) -> None:
        """Rebuild the machine from the file (raises StoreUnavailable, keeping ``_stale`` set)."""
        assert self._conn is not None
        self._stale = True
        try:
            rows = self._conn.execute("SELECT id, seq, data FROM jobs").fetchall()
            meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error as e:
            raise StoreUnavailable(f"sqlite job store {self.path}: cannot read jobs ({e})") from None
        records: list[tuple[int, Any]] = []
        for job_id, seq, data in rows:
            try:
                records.append((int(seq), msgpack.unpackb(data, raw=False, strict_map_key=False)))
            except Exception as e:
                raise StoreUnavailable(
                    f"sqlite job store {self.path}: row {job_id!r} is not a job ({e}); restore a backup"
                ) from None
        epoch, next_seq = int(meta.get("epoch", 0)), int(meta.get("next_seq", 1))
        try:
            self.machine.load(records, epoch, next_seq)
        except ValueError as e:
            raise StoreUnavailable(f"sqlite job store {self.path}: {e}; restore a backup") from None
        self._meta_on_disk = (epoch, next_seq)
        self._stale = False

    def _execute_sync(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self._stale:
            self._reload_sync()
        results = self._apply_all(commands)
        changed, deleted = self.machine.take_changes()
        meta = (self.machine.epoch, self.machine.next_seq)
        if changed or deleted or meta != self._meta_on_disk:
            try:
                self._commit(((i, s, p) for i, (s, p) in changed.items()), deleted, meta)
            except (sqlite3.Error, OSError, TypeError, ValueError, OverflowError) as e:
                # If the rebuild fails too, the next batch retries it; until then all are refused.
                with contextlib.suppress(StoreUnavailable):
                    self._reload_sync()
                raise StoreUnavailable(
                    f"sqlite job store {self.path}: commit failed ({e}); the batch was not applied"
                ) from None
        return results

    def _apply_all(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        applied: list[dict[str, Any]] = []
        for command in commands:
            refused = _not_storable(command)
            if refused is not None:
                results.append(refused)
                continue
            try:
                results.append(self._apply(command))
            except Exception as e:
                # The machine may be half-changed: rebuild it and re-apply the batch so far.
                self._reload_sync()
                for earlier in applied:
                    self._apply(earlier)
                op = command.get("op") if isinstance(command, dict) else None
                results.append({"error": f"{op}: internal store error ({type(e).__name__}: {e})"})
            else:
                applied.append(command)
        return results

    def _apply(self, command: Any) -> dict[str, Any]:
        return self.machine.apply(self.machine.last_index + 1, command)

    def _commit(
        self, changed: Iterable[tuple[str, int, dict[str, Any]]], deleted: set[str], meta: tuple[int, int]
    ) -> None:
        conn = self._conn
        assert conn is not None
        rows = [_row(job_id, seq, plain) for job_id, seq, plain in changed]
        conn.execute("BEGIN IMMEDIATE")
        try:
            if deleted:
                conn.executemany("DELETE FROM jobs WHERE id = ?", [(i,) for i in deleted])
            if rows:
                conn.executemany(_UPSERT, rows)
            if meta != self._meta_on_disk:
                conn.executemany(_SET_META, [("epoch", meta[0]), ("next_seq", meta[1])])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already
                    conn.execute("ROLLBACK")
            raise
        self._meta_on_disk = meta
        self.commits += 1


def _not_storable(command: Any) -> dict[str, Any] | None:
    """An error result if ``command`` submits a job the file cannot hold, else None."""
    if not isinstance(command, dict) or command.get("op") != "submit":
        return None
    try:
        _pack(command.get("job"))
    except (TypeError, ValueError, OverflowError) as e:
        return {
            "error": f"submit: job is not plain data ({e}); use maps, lists, strings, numbers, "
            "bytes, booleans and null"
        }
    return None
