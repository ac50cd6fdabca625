"""Durable actor state on disk: an append-only log of synced writes per actor.

``Persist(key, value)`` only updates an in-memory *pending* map. ``Sync`` appends the pending
writes as one record to the actor's log file and ``fsync``s it, so a sync costs what it
writes, not the size of the whole state (a Raft log of thousands of entries syncs one entry at
a time). A record is ``length (4 bytes) | crc32 (4 bytes) | msgpack map of key -> value``
(``None`` deletes the key). Loading replays the records in order; a torn or corrupt tail, a
sync that never returned, is cut off, which is exactly "unsynced writes are lost", what the
simulator models. When the log grows past four times its size after the last compaction
(and past ``compact_bytes``), it is rewritten as one record with the classic crash-safe
sequence: temp file, ``fsync``, ``os.replace``, ``fsync`` of the directory.

The blocking file I/O runs in a worker thread (``trio.to_thread.run_sync``) so the node's
other actors keep running. Syncs of one actor are serialised.

Layout: ``<data_dir>/<node_id>/<quoted actor name>.wal``. With ``data_dir=None`` the state
lives in memory only (it survives an actor stop/spawn, not a process restart).
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgpack
import trio

_HEADER = struct.Struct(">II")
COMPACT_BYTES = 1 << 20


class StoreError(OSError):
    """Durable state could not be read or written; the message names the file."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _record(writes: dict[str, Any]) -> bytes:
    body = msgpack.packb(writes, use_bin_type=True)
    return _HEADER.pack(len(body), zlib.crc32(body)) + body


def _append(path: Path, record: bytes) -> int:
    """Append one record and fsync; returns the file size after it."""
    new = not path.exists()
    if new:
        path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        f.write(record)
        f.flush()
        os.fsync(f.fileno())
        size = f.tell()
    if new:
        _fsync_dir(path.parent)
    return size


def _rewrite(path: Path, state: dict[str, Any]) -> int:
    """Replace the log by one record holding ``state``; returns its size."""
    tmp = path.with_name(path.name + ".tmp")
    data = _record(state)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return len(data)


def replay(path: Path) -> tuple[dict[str, Any], int, int]:
    """The state a log file holds, the offset where its good records end, and its size.

    Raises:
        StoreError: a record with a valid checksum does not hold a map (not our file).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}, 0, 0
    state: dict[str, Any] = {}
    pos = 0
    while len(data) - pos >= _HEADER.size:
        size, crc = _HEADER.unpack_from(data, pos)
        body = data[pos + _HEADER.size : pos + _HEADER.size + size]
        if len(body) < size or zlib.crc32(body) != crc:
            break  # a torn tail: that sync never completed
        try:
            writes = msgpack.unpackb(body, raw=False, strict_map_key=False)
        except Exception as e:
            raise StoreError(f"durable state {path} is corrupt ({e}); move it away to start empty") from None
        if not isinstance(writes, dict):
            raise StoreError(f"durable state {path} is not a Troupe log; move it away to start empty")
        for k, v in writes.items():
            if v is None:
                state.pop(k, None)
            else:
                state[k] = v
        pos += _HEADER.size + size
    return state, pos, len(data)


def _load(path: Path) -> tuple[dict[str, Any], int]:
    state, good, size = replay(path)
    if good < size:  # cut the torn tail so the next append follows a good record
        with open(path, "r+b") as f:
            f.truncate(good)
            f.flush()
            os.fsync(f.fileno())
    return state, good


class ActorStore:
    """The durable state of one actor.

    Args:
        path: the log file, or None for memory only.
        compact_bytes: do not compact a log smaller than this.
    """

    def __init__(self, path: Path | None, compact_bytes: int = COMPACT_BYTES):
        self.path = path
        self.compact_bytes = compact_bytes
        self.durable: dict[str, Any] = {}
        self.pending: dict[str, Any] = {}
        self.sealed: dict[str, Any] = {}
        self.syncs = 0
        self.compactions = 0
        self._size = 0
        self._compacted_size = 0
        # A stop runs on_stop's Sync while the actor's own Sync may still be in its thread:
        # syncs of one actor must not interleave (they share the file).
        self._lock = trio.Lock()

    async def load(self) -> dict[str, Any]:
        """Read the synced state (empty if there is none) and forget pending writes.

        Raises:
            StoreError: the file exists but is not a readable log.
        """
        self.pending = {}
        self.sealed = {}
        if self.path is not None:
            try:
                self.durable, self._size = await trio.to_thread.run_sync(_load, self.path)
            except OSError as e:
                if isinstance(e, StoreError):
                    raise
                raise StoreError(f"cannot read durable state {self.path}: {e}") from None
            self._compacted_size = self._size
        return dict(self.durable)

    def persist(self, key: str, value: Any) -> None:
        """Buffer a write (``None`` deletes ``key``); not durable until :meth:`sync`."""
        self.pending[key] = value

    def seal(self) -> bool:
        """Mark every pending write for the next :meth:`flush`; True if there were any.

        Writes persisted after the seal wait for the next seal: a Sync covers exactly what was
        persisted before it, even when its disk write happens later (group commit).
        """
        if not self.pending:
            return False
        self.sealed.update(self.pending)
        self.pending = {}
        return True

    async def sync(self) -> None:
        """Make the pending writes durable (no-op, no disk write, if there are none).

        Raises:
            StoreError: the file could not be written (disk full, permissions) or a value is
                not plain msgpack data; the writes are kept for the next sync.
        """
        self.seal()
        await self.flush()

    async def flush(self) -> None:
        """Write every sealed write durably, in one fsync.

        Raises:
            StoreError: as :meth:`sync`; the sealed writes are kept for the next flush.
        """
        async with self._lock:
            await self._flush()

    async def _flush(self) -> None:
        if not self.sealed:
            return
        # Take the sealed writes now: seals made while the write is in its thread belong to
        # the next flush.
        pending, self.sealed = self.sealed, {}
        merged = dict(self.durable)
        for k, v in pending.items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = v
        if self.path is not None:
            try:
                record = _record(pending)
            except (TypeError, ValueError, OverflowError) as e:
                self.sealed = {**pending, **self.sealed}
                raise StoreError(
                    f"cannot persist to {self.path}: value is not plain msgpack data ({e})"
                ) from None
            try:
                if self._size > max(self.compact_bytes, 4 * self._compacted_size):
                    self._size = await trio.to_thread.run_sync(_rewrite, self.path, merged)
                    self._compacted_size = self._size
                    self.compactions += 1
                else:
                    self._size = await trio.to_thread.run_sync(_append, self.path, record)
            except OSError as e:
                self.sealed = {**pending, **self.sealed}
                raise StoreError(f"cannot write durable state {self.path}: {e}") from None
        self.durable = merged
        self.syncs += 1


class NodeStore:
    """Hands out one :class:`ActorStore` per actor name, kept across actor restarts."""

    def __init__(self, data_dir: Path | str | None, node_id: str):
        self.root = None if data_dir is None else Path(data_dir) / quote(node_id, safe="")
        self._stores: dict[str, ActorStore] = {}

    def for_actor(self, name: str) -> ActorStore:
        """The store of actor ``name`` (created on first use)."""
        s = self._stores.get(name)
        if s is None:
            path = None if self.root is None else self.root / (quote(name, safe="") + ".wal")
            s = self._stores[name] = ActorStore(path)
        return s
