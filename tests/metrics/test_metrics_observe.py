"""NodeMetrics as a subscriber of a real EventLog: each event moves the counters it should, store
samples set the queue depths (a failed one keeps them), and every series carries the node id."""

from __future__ import annotations

from typing import Any

import pytest

import transport.metrics as metrics_module
from transport.events import EventLog
from transport.metrics import QUEUE_STATES, NodeMetrics


@pytest.fixture
def wired() -> tuple[NodeMetrics, EventLog]:
    metrics = NodeMetrics("n1")
    log = EventLog(keep=0)
    log.subscribe(metrics.observe)
    return metrics, log


def value(metrics: NodeMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"node": "n1", **labels})


def stats(**over: Any) -> dict[str, Any]:
    by_status = {
        "PENDING": 3,
        "RUNNING": 2,
        "SUCCESS": 7,
        "FAILED": 1,
        "RETRYING": 1,
        "DEAD": 2,
        "CANCELLED": 0,
    }
    base: dict[str, Any] = {
        "by_status": by_status,
        "ready": 2,
        "delayed": 1,
        "running": 2,
        "retrying": 1,
        "dlq": 2,
        "total": 16,
        "epoch": 3,
    }
    base.update(over)
    return base


def test_a_finished_attempt_counts_by_type_and_outcome_with_its_duration(
    wired: tuple[NodeMetrics, EventLog],
) -> None:
    metrics, log = wired
    # Given two attempts started on this node's worker
    log.emit("n1", "worker", "job.started", {"id": "a", "attempt": 1, "worker": "n1", "type": "email"})
    log.emit("n1", "worker", "job.started", {"id": "b", "attempt": 1, "worker": "n1", "type": "email"})
    started = log.emit(
        "n1", "worker", "job.started", {"id": "c", "attempt": 1, "worker": "n1", "type": "resize"}
    )
    # When they finish, one of them failing
    log.emit("n1", "worker", "job.finished", {"id": "a", "attempt": 1, "worker": "n1", "ok": True})
    log.emit("n1", "worker", "job.finished", {"id": "b", "attempt": 1, "worker": "n1", "ok": False})
    done = log.emit("n1", "worker", "job.finished", {"id": "c", "attempt": 1, "worker": "n1", "ok": True})
    # Expect one count per (type, outcome), typed by the start event, and the measured duration
    assert value(metrics, "troupe_jobs_total", type="email", outcome="success") == 1
    assert value(metrics, "troupe_jobs_total", type="email", outcome="failure") == 1
    assert value(metrics, "troupe_jobs_total", type="resize", outcome="success") == 1
    assert value(metrics, "troupe_jobs_started_total", type="email") == 2
    assert value(metrics, "job_processing_duration_seconds_count", type="resize", outcome="success") == 1
    took = value(metrics, "job_processing_duration_seconds_sum", type="resize", outcome="success")
    assert took == pytest.approx(done["mono"] - started["mono"])
    assert value(metrics, "troupe_job_retries_total", type="email") == 0


def test_attempts_after_the_first_are_retries_and_a_lost_lease_is_its_own_outcome(
    wired: tuple[NodeMetrics, EventLog],
) -> None:
    metrics, log = wired
    for attempt in (1, 2, 3):
        log.emit("n1", "worker", "job.started", {"id": "j", "attempt": attempt, "type": "flaky"})
        if attempt == 3:
            log.emit("n1", "worker", "job.lease_lost", {"id": "j", "attempt": 3, "worker": "n1"})
        log.emit("n1", "worker", "job.finished", {"id": "j", "attempt": attempt, "ok": False})
    assert value(metrics, "troupe_job_retries_total", type="flaky") == 2
    assert value(metrics, "troupe_jobs_total", type="flaky", outcome="failure") == 2
    assert value(metrics, "troupe_jobs_total", type="flaky", outcome="lost") == 1
    assert value(metrics, "troupe_job_leases_lost_total") == 1


def test_the_type_comes_from_the_resolver_when_the_event_has_none(
    wired: tuple[NodeMetrics, EventLog],
) -> None:
    metrics, log = wired
    seen: list[str] = []

    def resolve(rec: dict[str, Any]) -> str | None:
        seen.append(rec["actor"])
        return "sleep" if rec["id"] == "known" else None

    metrics.type_of = resolve  # what attach() installs for a running node
    log.emit("n1", "pull-w1", "job.started", {"id": "known", "attempt": 1})
    log.emit("n1", "worker", "job.started", {"id": "other", "attempt": 1})
    log.emit("n1", "pull-w1", "job.finished", {"id": "known", "attempt": 1, "ok": True})
    log.emit("n1", "worker", "job.finished", {"id": "other", "attempt": 1, "ok": True})
    assert seen == ["pull-w1", "worker"]
    assert value(metrics, "troupe_jobs_total", type="sleep", outcome="success") == 1
    assert value(metrics, "troupe_jobs_total", type="unknown", outcome="success") == 1


def test_in_flight_starts_and_job_types_are_bounded(
    wired: tuple[NodeMetrics, EventLog], monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics, log = wired
    monkeypatch.setattr(metrics_module, "MAX_IN_FLIGHT", 5)
    monkeypatch.setattr(metrics_module, "MAX_TYPES", 3)
    # Given more running attempts than are remembered, of more types than get series
    for i in range(8):
        log.emit("n1", "worker", "job.started", {"id": f"j{i}", "attempt": 1, "type": f"t{i}"})
    # When the oldest and the newest finish
    log.emit("n1", "worker", "job.finished", {"id": "j0", "attempt": 1, "ok": True})
    log.emit("n1", "worker", "job.finished", {"id": "j7", "attempt": 1, "ok": True})
    # Expect both counted, the forgotten one without a duration; types past the cap as "other"
    assert value(metrics, "troupe_jobs_total", type="unknown", outcome="success") == 1
    assert value(metrics, "job_processing_duration_seconds_count", type="unknown", outcome="success") == 0
    assert value(metrics, "troupe_jobs_total", type="other", outcome="success") == 1
    assert value(metrics, "job_processing_duration_seconds_count", type="other", outcome="success") == 1
    assert value(metrics, "troupe_jobs_started_total", type="t2") == 1
    assert value(metrics, "troupe_jobs_started_total", type="other") == 5


def test_elections_maintenance_and_failures_are_counted(wired: tuple[NodeMetrics, EventLog]) -> None:
    metrics, log = wired
    log.emit("n1", "election", "leader.changed", {"leader": "n2", "epoch": 4})
    assert value(metrics, "troupe_is_leader") == 0
    log.emit("n1", "election", "leader.changed", {"leader": "n1", "epoch": 5})
    log.emit("n1", "scheduler", "scheduler.maintained", {"expired": 3, "retried": 2})
    log.emit("n1", "heartbeat", "peer.suspect", {"peer": "n3", "silence": 1.0})
    log.emit("n1", "heartbeat", "peer.dead", {"peer": "n3", "silence": 2.0})
    log.emit("n1", "balancer", "worker.offline", {"worker": "n3", "silent": 3.0})
    log.emit("n1", "store", "store.unavailable", {"level": "error", "error": "redis down"})
    log.emit("n1", "scheduler", "scheduler.store_error", {"purpose": "ready", "error": "timeout"})
    log.emit("n1", "", "tcp.connect_failed", {"level": "warning", "peer": "n3", "error": "refused"})
    log.emit("n1", "", "tcp.link_up", {"peer": "n2"})
    assert value(metrics, "election_leader_changes_total") == 2
    assert value(metrics, "troupe_is_leader") == 1
    assert value(metrics, "troupe_election_epoch") == 5
    assert value(metrics, "troupe_lease_expiries_total") == 3
    assert value(metrics, "troupe_jobs_requeued_total") == 2
    assert value(metrics, "troupe_peer_transitions_total", state="dead") == 1
    assert value(metrics, "troupe_worker_transitions_total", state="offline") == 1
    assert value(metrics, "troupe_store_unavailable_total") == 1
    assert value(metrics, "troupe_store_errors_total", source="scheduler") == 1
    assert value(metrics, "troupe_transport_errors_total", kind="tcp.connect_failed") == 1
    assert value(metrics, "troupe_log_events_total", kind="store.unavailable", level="error") == 1
    assert value(metrics, "troupe_log_events_total", kind="tcp.link_up", level="warning") is None


def test_a_store_sample_sets_queue_depths_and_a_failed_one_keeps_them(
    wired: tuple[NodeMetrics, EventLog],
) -> None:
    metrics, _ = wired
    assert metrics.apply_stats(stats())
    depths = {s: value(metrics, "queue_depth_gauge", state=s) for s in QUEUE_STATES}
    expected = {"pending": 2, "delayed": 1, "running": 2, "retrying": 1, "dead": 2, "success": 7, "failed": 1}
    assert depths == {**expected, "cancelled": 0}
    for bad in ({"error": "store unavailable: no answer in time"}, {"by_status": {}}, stats(ready=-1), None):
        assert not metrics.apply_stats(bad)
    assert value(metrics, "troupe_metrics_sample_errors_total") == 4
    assert {s: value(metrics, "queue_depth_gauge", state=s) for s in QUEUE_STATES} == depths


def test_the_leader_counts_new_dead_letters_and_submissions_from_samples(
    wired: tuple[NodeMetrics, EventLog],
) -> None:
    metrics, log = wired
    # A follower's samples count nothing
    metrics.apply_stats(stats(dlq=2, total=16))
    metrics.apply_stats(stats(dlq=5, total=20))
    assert value(metrics, "troupe_dead_letters_total") == 0
    # The leader counts rises between its samples, never falls (a purge)
    log.emit("n1", "election", "leader.changed", {"leader": "n1", "epoch": 1})
    metrics.apply_stats(stats(dlq=6, total=25))
    metrics.apply_stats(stats(dlq=1, total=21))
    metrics.apply_stats(stats(dlq=3, total=22))
    assert value(metrics, "troupe_dead_letters_total") == 3
    assert value(metrics, "troupe_jobs_submitted_total") == 6
    # Once gateways report submissions as events, only the events count
    log.emit("n1", "jobs", "job.submitted", {"id": "x", "type": "noop"})
    metrics.apply_stats(stats(dlq=3, total=40))
    assert value(metrics, "troupe_jobs_submitted_total") == 7


def test_every_series_carries_the_node_id(wired: tuple[NodeMetrics, EventLog]) -> None:
    metrics, log = wired
    log.emit("n1", "worker", "job.started", {"id": "a", "attempt": 1, "type": "noop"})
    log.emit("n1", "worker", "job.finished", {"id": "a", "attempt": 1, "ok": True})
    log.emit("n1", "", "tcp.bad_frame", {"level": "warning"})
    metrics.apply_stats(stats())
    samples = [s for family in metrics.registry.collect() for s in family.samples]
    assert len(samples) > 40
    assert all(s.labels.get("node") == "n1" for s in samples), [s for s in samples if "node" not in s.labels]
    text = metrics.render().decode()
    assert "# TYPE job_processing_duration_seconds histogram" in text
    assert "_created" not in text


def test_a_failing_collector_gets_a_500_answer_not_a_crash() -> None:
    from transport.metrics_http import _answer

    class Broken:
        def collect(self) -> Any:
            raise KeyError("worker")

    metrics = NodeMetrics("n1")
    status, body, _, _ = _answer(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", metrics)
    assert status == "200 OK" and b"node=" in body
    metrics.add_collector(Broken())
    status, body, _, _ = _answer(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", metrics)
    assert status == "500 Internal Server Error"
    assert body == b"metrics not rendered: KeyError: 'worker'\n"
