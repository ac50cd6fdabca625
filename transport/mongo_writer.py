"""The blocking half of the MongoDB records: one pymongo client, used by one thread at a time.

How it works
------------
:class:`MongoWriter` is called from a worker thread (``trio.to_thread.run_sync`` with a
limiter of one, see :mod:`transport.mongo_records`); nothing here touches trio. The client is
made on first use with the node's ``MONGODB_TIMEOUT`` as its server-selection, connect and
socket timeouts, and the indexes of :data:`~transport.mongo_docs.INDEXES` are created (again
after every reconnection; ``create_index`` is idempotent) before the first write.

:meth:`MongoWriter.write` sends a batch of :class:`~transport.mongo_docs.WriteOp` as one
unordered ``bulk_write`` per collection and returns a :class:`WriteResult`:

- an unreachable server (``ConnectionFailure`` and its kin, or any error that is not about
  one document) raises :class:`MongoUnavailable` with one line, having written nothing it
  knows of: the caller puts the batch back and retries it (every op is an idempotent upsert);
- a duplicate ``_id`` on an op marked ``stale_ok`` means MongoDB holds a newer version of that
  job: counted as ``stale``;
- a document BSON cannot hold (an integer beyond 64 bits, a key with a NUL) fails the whole
  bulk before it is sent: the batch is then written op by op, a job whose payload is at fault
  is written with its payload as JSON text, and anything still refused is ``rejected`` with
  its error (the caller logs one line each and drops it).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from bson.errors import BSONError, InvalidDocument
from pymongo import MongoClient, UpdateOne
from pymongo.errors import BulkWriteError, ConfigurationError, DuplicateKeyError, PyMongoError, WriteError

from .mongo_docs import INDEXES, JOBS, WriteOp, with_payload_as_text

DUPLICATE_KEY = 11000
_NOT_ENCODABLE = (InvalidDocument, BSONError, OverflowError, TypeError, ValueError)


class MongoUnavailable(Exception):
    """MongoDB could not be reached or refused the batch as a whole (one line)."""


class MongoConfigError(Exception):
    """The URI cannot be used at all (retrying will not help; one line)."""


@dataclass(slots=True)
class WriteResult:
    """What became of one batch."""

    written: int = 0
    stale: int = 0
    rejected: list[tuple[WriteOp, str]] = field(default_factory=list)


def _one_line(e: BaseException) -> str:
    """The gist of a pymongo error: its first line, without the timeouts and topology dump
    that server-selection errors append."""
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    for tail in (" (configured timeouts", ", Timeout: "):
        text = text.split(tail, 1)[0]
    return text if len(text) <= 300 else text[:297] + "..."


class MongoWriter:
    """Writes record batches to one database (see the module docstring)."""

    def __init__(self, uri: str, database: str, timeout: float, app_name: str = "troupe") -> None:
        self.uri = uri
        self.database = database
        self.timeout = timeout
        self.app_name = app_name
        self._client: MongoClient[dict[str, Any]] | None = None
        self._indexed = False

    def _db(self) -> Any:
        if self._client is None:
            ms = max(1, int(self.timeout * 1000))
            try:
                self._client = MongoClient(
                    self.uri,
                    serverSelectionTimeoutMS=ms,
                    connectTimeoutMS=ms,
                    socketTimeoutMS=ms,
                    appname=self.app_name,
                )
            except (ConfigurationError, ValueError) as e:  # InvalidURI, a bad port, no dnspython
                raise MongoConfigError(f"MONGODB_URI cannot be used: {_one_line(e)}") from None
        return self._client[self.database]

    def ensure_indexes(self) -> None:
        """Create every index of :data:`INDEXES` (idempotent).

        Raises:
            MongoUnavailable: the server cannot be reached.
        """
        db = self._db()
        try:
            for collection, specs in INDEXES.items():
                for keys, options in specs:
                    db[collection].create_index(keys, **options)
        except PyMongoError as e:
            self._reset()
            raise MongoUnavailable(_one_line(e)) from None
        self._indexed = True

    def write(self, ops: list[WriteOp]) -> WriteResult:
        """Write ``ops`` (see the module docstring).

        Raises:
            MongoUnavailable: nothing could be written; retry the batch later.
            MongoConfigError: the URI is unusable.
        """
        if not self._indexed:
            self.ensure_indexes()
        db = self._db()
        result = WriteResult()
        by_collection: dict[str, list[WriteOp]] = defaultdict(list)
        for op in ops:
            by_collection[op.collection].append(op)
        for collection, group in by_collection.items():
            try:
                self._bulk(db[collection], group, result)
            except _NOT_ENCODABLE:
                for op in group:
                    self._single(db[collection], op, result)
        return result

    def _bulk(self, coll: Any, group: list[WriteOp], result: WriteResult) -> None:
        requests = [UpdateOne(op.filter, op.update, upsert=True) for op in group]
        try:
            coll.bulk_write(requests, ordered=False)
            result.written += len(group)
        except BulkWriteError as e:
            errors = e.details.get("writeErrors", [])
            if e.details.get("writeConcernErrors"):
                raise MongoUnavailable(_one_line(e)) from None
            failed = {int(err["index"]): err for err in errors}
            result.written += len(group) - len(failed)
            for index, err in sorted(failed.items()):
                op = group[index]
                if err.get("code") == DUPLICATE_KEY and op.stale_ok:
                    result.stale += 1
                else:
                    result.rejected.append((op, f"{err.get('code')}: {err.get('errmsg', '')}"[:300]))
        except PyMongoError as e:
            self._reset()
            raise MongoUnavailable(_one_line(e)) from None

    def _single(self, coll: Any, op: WriteOp, result: WriteResult) -> None:
        attempt = op
        for _ in range(2):
            try:
                coll.update_one(attempt.filter, attempt.update, upsert=True)
                result.written += 1
                return
            except DuplicateKeyError:
                if op.stale_ok:
                    result.stale += 1
                else:
                    result.rejected.append((op, "duplicate key"))
                return
            except WriteError as e:
                result.rejected.append((op, _one_line(e)))
                return
            except _NOT_ENCODABLE as e:
                if op.collection != JOBS or attempt is not op:
                    result.rejected.append((op, _one_line(e)))
                    return
                attempt = with_payload_as_text(op)
            except PyMongoError as e:
                self._reset()
                raise MongoUnavailable(_one_line(e)) from None

    def _reset(self) -> None:
        """Forget the indexes' state: they are made again once the server answers."""
        self._indexed = False

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
