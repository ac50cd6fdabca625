"""What a job store backend is, and how to build one by name.

How it works
------------
A backend holds the job queue behind :class:`actors.jobs.machine.JobMachine`'s commands (plain
dicts such as ``{"op": "submit", "job": {...}}``) and answers each with the dict the machine
would. :class:`JobStoreBackend` is the whole contract: ``open`` once, ``execute`` batches of
commands, ``close``. :class:`transport.store_service.StoreService` hosts any backend as the
actor named ``store`` inside a node, so actors reach every backend the same way.

Members of the family (``make_backend(kind, ...)``):

- ``memory``: the machine in memory, nothing durable (tests, one-process runs);
- ``sqlite``: the machine in memory and every change in an embedded SQLite file (the default);
- ``redis``: Lua scripts on a Redis server implementing the same commands.

``raft`` is a store too, but not a backend: the machine is Raft's replicated state machine and
the store is an actor (:class:`actors.jobs.stores.RaftStore`), so ``make_backend`` refuses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

from actors.jobs import RetryPolicy

STORE_KINDS = ("memory", "sqlite", "redis", "raft")
"""Every store kind a node can be configured with (``raft`` is an actor, not a backend)."""

SQLITE_FILE = "jobs.sqlite3"
"""The SQLite store's file name, under ``<data_dir>/<node_id>/``."""


class StoreUnavailable(Exception):
    """The store's backend cannot be reached; the command did not apply (retry later)."""


class JobStoreBackend(Protocol):
    """A place the job queue lives: applies :class:`~actors.jobs.machine.JobMachine` commands."""

    async def open(self) -> None:
        """Connect and load what the store holds; call once before :meth:`execute`.

        Raises:
            StoreUnavailable: the backend cannot be reached or read (one line saying why).
        """
        ...

    async def execute(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apply ``commands`` in order, each atomically, and return one result per command.

        Each result is shaped as ``JobMachine.apply`` returns it (``{"error": ...}`` for a
        malformed or impossible command, which changes nothing). Every change is durable
        before this returns, so an acknowledged command survives a crash.

        Raises:
            StoreUnavailable: the backend could not make the batch durable; none of its
                commands counts as applied (resending them is safe: commands are idempotent).
        """
        ...

    async def close(self) -> None:
        """Release connections and files; the store may be opened again later."""
        ...


@runtime_checkable
class BeginningBackend(Protocol):
    """A backend that can also send a batch from synchronous code and answer it later (the
    ``redis`` store): the store service then sends a lone request as it is delivered."""

    def begin(self, commands: list[dict[str, Any]]) -> Any | None:
        """Send ``commands`` now if the backend is free (None, with nothing sent, if not); the
        caller owes the value returned a :meth:`finish`."""
        ...

    async def finish(self, begun: Any) -> list[dict[str, Any]]:
        """The results of what :meth:`begin` sent, as ``execute`` would have answered."""
        ...


def sqlite_path(data_dir: Path | str, node_id: str) -> Path:
    """Where the SQLite store of ``node_id`` lives under ``data_dir``."""
    return Path(data_dir) / quote(node_id, safe="") / SQLITE_FILE


def make_backend(
    kind: str,
    *,
    data_dir: Path | str | None = None,
    node_id: str = "node",
    policy: RetryPolicy | None = None,
    redis_host: str = "127.0.0.1",
    redis_port: int = 6379,
    redis_db: int = 0,
    redis_password: str | None = None,
) -> JobStoreBackend:
    """The backend called ``kind``, not yet opened.

    Args:
        kind: ``"memory"``, ``"sqlite"`` or ``"redis"`` (see the module docstring).
        data_dir: for ``sqlite``, the node data directory; the file is
            ``<data_dir>/<node_id>/jobs.sqlite3``.
        node_id: the node the store serves (names the SQLite file's directory).
        policy: retry backoff applied to failed jobs.
        redis_host, redis_port, redis_db, redis_password: where the ``redis`` store lives.

    Raises:
        ValueError: ``kind`` is ``raft`` (an actor, not a backend), unknown, or ``sqlite``
            without a ``data_dir`` (one line saying what to use instead).
    """
    if kind == "memory":
        from .memory_store import MemoryJobStore

        return MemoryJobStore(policy)
    if kind == "sqlite":
        if data_dir is None:
            raise ValueError("the sqlite job store needs a data directory: set --data-dir, or use memory")
        from .sqlite_store import SqliteJobStore

        return SqliteJobStore(sqlite_path(data_dir, node_id), policy)
    if kind == "redis":
        from .redis_store import RedisJobStore

        return RedisJobStore(
            host=redis_host, port=redis_port, db=redis_db, password=redis_password, policy=policy
        )
    if kind == "raft":
        raise ValueError(
            "the raft job store is an actor replicated by Raft, not a backend: run it with the raft "
            "blueprint, or pick memory, sqlite or redis"
        )
    raise ValueError(f"unknown job store {kind!r}: use one of {', '.join(STORE_KINDS)}")
