"""The blocking MongoDB writer against a real mongoeco wire server: indexes, newest version
wins whatever the order of writes, a payload BSON cannot hold, an unreachable server, the
launcher's own errors.

Given / When / Expect."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import MongoClient

from actors.jobs import Job
from actors.jobs._plain import job_to_plain
from transport import mongo_server
from transport.mongo_docs import ELECTIONS, INDEXES, JOBS, METRICS, NODES, election_op, job_op
from transport.mongo_server import MongoServer, MongoServerError
from transport.mongo_writer import MongoUnavailable, MongoWriter
from transport.server_process import free_port

T0 = 1_700_000_000.0


def _job(job_id: str, **changes: Any) -> dict[str, Any]:
    job = job_to_plain(Job.create(job_id, "email", {"to": "a@example.com"}, now=T0))
    job.update(changes)
    return job


def _running(job_id: str, at: float) -> dict[str, Any]:
    attempt = {"number": 1, "worker": "n1/worker", "started": at, "finished": None, "error": None,
               "outcome": "RUNNING"}  # fmt: skip
    return _job(job_id, status="RUNNING", updated_at=at, attempts=[attempt])


def _done(job_id: str, at: float) -> dict[str, Any]:
    job = _running(job_id, at - 1)
    job["attempts"][0].update(finished=at, outcome="SUCCESS")
    return dict(job, status="SUCCESS", updated_at=at)


def test_indexes_are_created_and_creating_them_again_changes_nothing(
    mongo_client: MongoClient[dict[str, Any]], mongo_server: MongoServer
) -> None:
    writer = MongoWriter(mongo_server.uri, "idx", 5.0)
    writer.ensure_indexes()
    writer.ensure_indexes()
    db = mongo_client["idx"]
    for collection in (JOBS, NODES, ELECTIONS, METRICS):
        info = db[collection].index_information()
        assert len(info) == len(INDEXES[collection]) + 1, info  # and _id
    jobs = db[JOBS].index_information()
    assert jobs["id_1"].get("unique") is True
    assert jobs["status_1_priority_-1_created_at_1"]["key"] == [
        ("status", 1),
        ("priority", -1),
        ("created_at", 1),
    ]
    assert db[METRICS].index_information()["at_1"]["expireAfterSeconds"] == 7 * 24 * 3600
    writer.close()


def test_the_newest_version_of_a_job_wins_whatever_the_order_of_writes(
    mongo_client: MongoClient[dict[str, Any]], mongo_server: MongoServer
) -> None:
    # Given two nodes' writers
    a = MongoWriter(mongo_server.uri, "order", 5.0)
    b = MongoWriter(mongo_server.uri, "order", 5.0)
    # When node a writes the finished job and then node b a stale running version
    first = a.write([job_op(_done("j1", T0 + 2), "a", T0 + 3)])
    second = b.write(
        [job_op(_running("j1", T0 + 1), "b", T0 + 4), job_op(_running("j2", T0 + 1), "b", T0 + 4)]
    )
    # Expect the finished version to stay, the stale write counted, the other job written
    assert (first.written, first.stale) == (1, 0)
    assert (second.written, second.stale, second.rejected) == (1, 1, [])
    col = mongo_client["order"][JOBS]
    doc = col.find_one({"_id": "j1"})
    assert doc is not None and doc["status"] == "SUCCESS" and doc["recorded_by"] == "a"
    # And a repeated write of the same version changes nothing either
    assert b.write([job_op(_done("j1", T0 + 2), "b", T0 + 5)]).stale == 1
    assert col.count_documents({}) == 2
    a.close()
    b.close()


def test_a_payload_bson_cannot_hold_is_kept_as_json_text(
    mongo_client: MongoClient[dict[str, Any]], mongo_server: MongoServer
) -> None:
    writer = MongoWriter(mongo_server.uri, "payload", 5.0)
    huge = _job("big", payload={"n": 2**70})
    elections = [election_op({"time": T0, "node": "n1", "leader": "n1", "epoch": 1}, "raft")]
    result = writer.write([job_op(huge, "n1", T0), job_op(_job("ok"), "n1", T0), *elections])
    assert (result.written, result.rejected) == (3, [])
    doc = mongo_client["payload"][JOBS].find_one({"_id": "big"})
    assert (
        doc is not None and doc["payload"] is None and doc["payload_text"] == '{"n": 1180591620717411303424}'
    )
    assert mongo_client["payload"][ELECTIONS].count_documents({}) == 1
    writer.close()


def test_an_unreachable_server_raises_one_line_and_writes_nothing() -> None:
    writer = MongoWriter(f"mongodb://127.0.0.1:{free_port()}", "down", 0.5)
    with pytest.raises(MongoUnavailable) as info:
        writer.write([job_op(_job("j1"), "n1", T0)])
    assert "\n" not in str(info.value) and str(info.value)
    writer.close()


def test_the_launcher_says_run_make_setup_without_mongoeco(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setattr(mongo_server, "MONGO_PYTHON", tmp_path / "no-such-python")
    with pytest.raises(MongoServerError, match="run make setup"):
        MongoServer().start()
