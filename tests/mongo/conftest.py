"""A private mongoeco wire server per test module (:class:`transport.mongo_server.MongoServer`),
a pymongo client to it, and ``records``: checks of what the MongoDB records wrote against the
job store (BSON dates keep milliseconds, so times compare to the millisecond)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import MongoClient

from transport.mongo_server import MongoServer


@pytest.fixture(scope="module")
def mongo_server() -> Iterator[MongoServer]:
    with MongoServer() as server:
        yield server


@pytest.fixture(scope="module")
def mongo_client(mongo_server: MongoServer) -> Iterator[MongoClient[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_server.uri, serverSelectionTimeoutMS=10_000)
    yield client
    client.close()


class RecordChecks:
    """Comparisons of ``jobs`` documents with the store's plain jobs."""

    @staticmethod
    def seconds(value: datetime | None) -> float | None:
        """A BSON date read back by pymongo (naive UTC) as UNIX seconds."""
        return None if value is None else value.replace(tzinfo=UTC).timestamp()

    def same_time(self, stored: datetime | None, expected: float | None) -> bool:
        """True if a stored date is ``expected`` UNIX seconds, to the millisecond."""
        if stored is None or expected is None:
            return stored is None and expected is None
        got = self.seconds(stored)
        return got is not None and abs(got - expected) < 0.0011

    def attempts_match(self, doc: dict[str, Any], job: dict[str, Any]) -> bool:
        """True if a ``jobs`` document's attempt history is the store's job's."""
        stored, expected = doc["attempts"], job["attempts"]
        return len(stored) == len(expected) and all(
            s["number"] == e["number"]
            and s["worker"] == e["worker"]
            and s["node"] == e["worker"].split("/")[0]
            and s["outcome"] == e["outcome"]
            and s["error"] == e["error"]
            and self.same_time(s["started"], e["started"])
            and self.same_time(s["finished"], e["finished"])
            for s, e in zip(stored, expected, strict=True)
        )

    def matches_store(self, doc: dict[str, Any] | None, job: dict[str, Any]) -> bool:
        """True if the ``jobs`` document is the store's current version of ``job``."""
        return (
            doc is not None
            and doc["id"] == job["id"]
            and doc["status"] == job["status"]
            and doc["type"] == job["type"]
            and doc["priority"] == job["priority"]
            and doc["max_retries"] == job["max_retries"]
            and doc["timeout"] == job["timeout_seconds"]
            and doc["payload"] == job["payload"]
            and self.same_time(doc["created_at"], job["created_at"])
            and self.same_time(doc["updated_at"], job["updated_at"])
            and self.attempts_match(doc, job)
        )

    def mismatches(self, docs: dict[str, dict[str, Any]], jobs: list[dict[str, Any]]) -> list[str]:
        """Ids of store jobs whose document is missing or differs (for assertion messages)."""
        return [j["id"] for j in jobs if not self.matches_store(docs.get(j["id"]), j)]


@pytest.fixture
def records() -> RecordChecks:
    return RecordChecks()
