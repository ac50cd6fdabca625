"""The records' documents and buffers without MongoDB: job versions sort in lifecycle order,
the write buffer and the fetch queue coalesce, stay bounded and count what they drop.

Given / When / Expect. Jobs come from the real job machine, driven through a whole lifecycle."""

from __future__ import annotations

from typing import Any

from actors.jobs import Job, RetryPolicy
from actors.jobs._plain import job_to_plain
from actors.jobs.machine import JobMachine
from transport.mongo_docs import (
    JOBS,
    WriteBuffer,
    WriteOp,
    election_op,
    job_doc,
    job_op,
    job_rev,
    peer_op,
    with_payload_as_text,
)
from transport.mongo_records import FetchQueue, _recorded, _Want

T0 = 1_700_000_000.0


class Machine:
    def __init__(self) -> None:
        self.m = JobMachine(RetryPolicy(base_delay=1.0, max_delay=5.0, multiplier=2.0, jitter_factor=0.0))

    def do(self, **cmd: Any) -> dict[str, Any]:
        result = self.m.apply(self.m.last_index + 1, cmd)
        assert "error" not in result, result
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.do(op="get", id=job_id)["job"]
        return job

    def dispatch(self, job_id: str, worker: str, at: float) -> None:
        mark = self.do(op="ready", at=at, limit=10)["mark"]
        self.do(op="dispatch", epoch=1, at=at, lease_until=at + 30, mark=mark, assign=[[job_id, worker]])


def _lifecycle() -> list[dict[str, Any]]:
    """Every version of one job: submitted, failed twice (retried), dead, requeued, succeeded."""
    q = Machine()
    job = job_to_plain(Job.create("j1", "email", {"to": "a@example.com"}, now=T0, max_retries=1))
    q.do(op="submit", job=job)
    versions = [q.job("j1")]
    q.dispatch("j1", "n1/worker", T0 + 1)
    versions.append(q.job("j1"))
    q.do(op="report", id="j1", attempt=1, worker="n1/worker", ok=False, error="smtp down", at=T0 + 2)
    versions.append(q.job("j1"))  # RETRYING
    q.do(op="maintain", epoch=1, at=T0 + 10)
    versions.append(q.job("j1"))  # PENDING again
    q.dispatch("j1", "n2/worker", T0 + 11)
    versions.append(q.job("j1"))
    q.do(op="report", id="j1", attempt=2, worker="n2/worker", ok=False, error="smtp down", at=T0 + 12)
    versions.append(q.job("j1"))  # DEAD
    q.do(op="dlq_requeue", at=T0 + 20, ids=["j1"])
    versions.append(q.job("j1"))
    q.dispatch("j1", "n1/worker", T0 + 21)
    versions.append(q.job("j1"))
    q.do(op="report", id="j1", attempt=3, worker="n1/worker", ok=True, at=T0 + 22)
    versions.append(q.job("j1"))
    return versions


def test_a_jobs_versions_sort_in_lifecycle_order() -> None:
    # Given every version of a job through retries, the dead-letter queue and a requeue
    versions = _lifecycle()
    statuses = [v["status"] for v in versions]
    assert statuses == [
        "PENDING", "RUNNING", "RETRYING", "PENDING", "RUNNING", "DEAD", "PENDING", "RUNNING", "SUCCESS",
    ]  # fmt: skip
    # Expect each version's rev to sort strictly after the one before
    revs = [job_rev(v) for v in versions]
    assert revs == sorted(revs) and len(set(revs)) == len(revs), revs


def test_a_later_version_with_an_earlier_clock_still_sorts_later() -> None:
    # Given a worker whose clock is behind: its success report is stamped before the dispatch
    running = _lifecycle()[1]
    done = dict(running, status="SUCCESS", updated_at=running["updated_at"] - 5)
    done["attempts"] = [dict(running["attempts"][0], finished=running["updated_at"] - 5, outcome="SUCCESS")]
    # Expect the closed attempt to win over the open one anyway
    assert job_rev(done) > job_rev(running)


def test_the_job_document_holds_the_history_with_dates() -> None:
    final = _lifecycle()[-1]
    doc = job_doc(final, "n3", T0 + 30)
    assert doc["status"] == "SUCCESS" and doc["attempt_count"] == 3 and doc["requeue_count"] == 1
    assert [a["node"] for a in doc["attempts"]] == ["n1", "n2", "n1"]
    assert [a["outcome"] for a in doc["attempts"]] == ["FAILED", "FAILED", "SUCCESS"]
    assert doc["attempts"][0]["error"] == "smtp down"
    assert doc["attempts"][0]["started"].timestamp() == T0 + 1
    assert doc["created_at"].timestamp() == T0 and doc["recorded_by"] == "n3"
    op = job_op(final, "n3", T0 + 30)
    assert op.filter == {"_id": "j1", "rev": {"$lt": doc["rev"]}} and op.stale_ok


def test_a_payload_bson_cannot_hold_becomes_json_text() -> None:
    job = dict(_lifecycle()[0], payload={"n": 2**80})
    op = with_payload_as_text(job_op(job, "n1", T0))
    assert op.update["$set"]["payload"] is None
    assert op.update["$set"]["payload_text"] == '{"n": 1208925819614629174706176}'


def test_node_ids_with_dots_are_safe_field_names() -> None:
    op = peer_op("n.1", "n2", "dead", T0, leader=True)
    assert "views.n_1" in op.update["$set"] and op.update["$set"]["status"] == "dead"
    assert peer_op("n1", "n2", "alive", T0, leader=False).update["$set"].get("status") is None


def test_one_election_document_per_leader_change_event() -> None:
    rec = {"time": T0, "node": "n1", "kind": "leader.changed", "leader": "n2", "epoch": 3}
    op = election_op(rec, "raft")
    assert op.update["$setOnInsert"]["term"] == 3 and op.update["$setOnInsert"]["leader"] == "n2"
    assert election_op(dict(rec, time=T0 + 1), "raft").key != op.key


def _op(key: str, value: int = 0) -> WriteOp:
    return WriteOp(JOBS, key, {"_id": key}, {"$set": {"v": value}})


def test_the_write_buffer_coalesces_by_key_and_drops_the_oldest_when_full() -> None:
    # Given a buffer of 3
    buf = WriteBuffer(capacity=3)
    buf.put(_op("a"))
    buf.put(_op("b"))
    buf.put(_op("a", 2))  # a newer version of a replaces it where it waits
    assert len(buf) == 2 and buf.dropped == 0
    buf.put(_op("c"))
    buf.put(_op("d"))  # full: a (the oldest) goes
    assert buf.dropped == 1
    assert [o.key for o in buf.take(10)] == ["b", "c", "d"]


def test_a_failed_batch_goes_back_in_front_unless_a_newer_version_came() -> None:
    buf = WriteBuffer(capacity=10)
    for k in "abc":
        buf.put(_op(k))
    batch = buf.take(2)  # a, b in flight
    buf.put(_op("b", 9))  # meanwhile a newer b
    buf.put_back(batch)
    ops = buf.take(10)
    assert [o.key for o in ops] == ["a", "c", "b"]
    assert ops[2].update == {"$set": {"v": 9}}


def test_the_fetch_queue_coalesces_per_id_and_keeps_the_highest_expectation() -> None:
    q = FetchQueue(capacity=2)
    q.want("j1", 1, False, due=1.0)
    q.want("j1", 1, True, due=5.0)  # coalesced: due stays 1.0, must now be closed
    assert q.take_due(0.5, 10) == []
    [(job_id, want)] = q.take_due(1.0, 10)
    assert job_id == "j1" and (want.attempt, want.closed) == (1, True)
    q.want("j2", 1, False, due=2.0)
    q.want("j3", 1, False, due=2.0)
    q.want("j4", 1, False, due=2.0)  # full: j2 dropped
    assert q.dropped == 1
    assert sorted(i for i, _ in q.take_due(3.0, 10)) == ["j3", "j4"]


def test_a_fetch_waits_until_the_store_holds_the_attempt_the_event_spoke_of() -> None:
    versions = _lifecycle()
    running, retrying = versions[1], versions[2]
    assert _recorded(running, _Want(0, 1, closed=False))
    assert not _recorded(running, _Want(0, 1, closed=True))  # the report has not landed yet
    assert _recorded(retrying, _Want(0, 1, closed=True))
    assert not _recorded(retrying, _Want(0, 2, closed=False))
