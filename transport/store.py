"""Durable actor state on disk: one msgpack file per actor, replaced atomically on Sync.

``Persist(key, value)`` only updates an in-memory *pending* map; ``Sync`` folds the pending
writes into the durable map and writes it with the classic crash-safe sequence: write a temp
file in the same directory, ``fsync`` it, ``os.replace`` it over the old file, ``fsync`` the
directory. A crash (or a stop) before ``Sync`` therefore loses exactly the unsynced writes,
which is what the simulator models. The blocking file I/O runs in a worker thread
(``trio.to_thread.run_sync``) so the node's other actors keep running.

Layout: ``<data_dir>/<node_id>/<quoted actor name>.msgpack``. With ``data_dir=None`` the state
lives in memory only (it survives an actor stop/spawn, not a process restart).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgpack
import trio


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


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as e:
        raise StoreError(f"durable state {path} is corrupt ({e}); move it away to start empty") from None
    if not isinstance(obj, dict):
        raise StoreError(f"durable state {path} is not a map; move it away to start empty")
    return obj


class ActorStore:
    """The durable state of one actor.

    Args:
        path: the msgpack file, or None for memory only.
    """

    def __init__(self, path: Path | None):
        self.path = path
        self.durable: dict[str, Any] = {}
        self.pending: dict[str, Any] = {}
        self.syncs = 0
        # A stop runs on_stop's Sync while the actor's own Sync may still be in its thread:
        # syncs of one actor must not interleave (they share the file and its temp file).
        self._lock = trio.Lock()

    async def load(self) -> dict[str, Any]:
        """Read the synced state (empty if there is none) and forget pending writes.

        Raises:
            StoreError: the file exists but cannot be decoded.
        """
        self.pending = {}
        if self.path is not None:
            self.durable = await trio.to_thread.run_sync(_read, self.path)
        return dict(self.durable)

    def persist(self, key: str, value: Any) -> None:
        """Buffer a write (``None`` deletes ``key``); not durable until :meth:`sync`."""
        self.pending[key] = value

    async def sync(self) -> None:
        """Make the pending writes durable (no-op, no disk write, if there are none).

        Raises:
            StoreError: the file could not be written (disk full, permissions).
        """
        async with self._lock:
            await self._sync()

    async def _sync(self) -> None:
        if not self.pending:
            return
        merged = dict(self.durable)
        for k, v in self.pending.items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = v
        if self.path is not None:
            try:
                data = msgpack.packb(merged, use_bin_type=True)
            except (TypeError, ValueError, OverflowError) as e:
                raise StoreError(
                    f"cannot persist to {self.path}: value is not plain msgpack data ({e})"
                ) from None
            try:
                await trio.to_thread.run_sync(_write_atomic, self.path, data)
            except OSError as e:
                raise StoreError(f"cannot write durable state {self.path}: {e}") from None
        self.durable = merged
        self.pending = {}
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
            path = None if self.root is None else self.root / (quote(name, safe="") + ".msgpack")
            s = self._stores[name] = ActorStore(path)
        return s
