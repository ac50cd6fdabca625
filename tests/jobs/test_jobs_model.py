"""The job record: priorities, field validation, derived views and the wire round trip.

Given / When / Expect, one behaviour per test.
"""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

import actors.jobs as jobs
from actors.jobs import (
    PENDING,
    PRIORITY_HIGH,
    PRIORITY_LOW,
    PRIORITY_NORMAL,
    RUNNING,
    STATUSES,
    Attempt,
    Dispatched,
    Failed,
    Job,
    Retry,
    RetryPolicy,
    apply,
    parse_priority,
)
from transport.codec import CodecError, decode, encode, to_wire


def test_priority_aliases_map_to_documented_numbers() -> None:
    # Given the reference's named priorities, expect the documented numbers, any case.
    assert parse_priority("low") == PRIORITY_LOW == 2
    assert parse_priority("Normal") == PRIORITY_NORMAL == 5
    assert parse_priority(" HIGH ") == PRIORITY_HIGH == 8


@given(st.integers(min_value=1, max_value=10))
def test_numeric_priorities_in_range_are_accepted(n: int) -> None:
    # Given 1..10 as int or numeric string, expect the same number back.
    assert parse_priority(n) == n
    assert parse_priority(str(n)) == n


@pytest.mark.parametrize("bad", [0, 11, -3, "urgent", "", "5.5", True, "1e1"])
def test_bad_priority_is_one_line_error_saying_what_to_use(bad: object) -> None:
    # Given a priority outside 1..10 or an unknown alias, expect a one-line ValueError.
    with pytest.raises(ValueError, match=r"use 1\.\.10 or one of low, normal, high") as info:
        parse_priority(bad)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_create_gives_a_pending_job_stamped_now() -> None:
    # Given a submission, when created, expect PENDING, no attempts and both stamps at now.
    job = Job.create("j1", "email", {"to": "a@b"}, now=1000.0, priority="high", max_retries=2)
    assert (job.status, job.attempts, job.priority) == (PENDING, (), 8)
    assert job.created_at == job.updated_at == 1000.0
    assert job.retries_left == 3 and job.retry_count == 0 and job.worker is None


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"id": ""}, "id must not be empty"),
        ({"type": ""}, "type must not be empty"),
        ({"priority": 0}, "priority must be 1..10"),
        ({"max_retries": -1}, "max_retries must be >= 0"),
        ({"timeout_seconds": 0.0}, "timeout_seconds must be a positive number"),
        ({"scheduled_at": float("nan")}, "scheduled_at must be a finite"),
        ({"status": "DONE"}, "unknown status 'DONE'"),
        ({"status": RUNNING}, "status RUNNING with 0 open attempt"),
    ],
)
def test_invalid_job_fields_are_rejected_in_one_line(fields: dict[str, object], words: str) -> None:
    # Given a field out of range, when a Job is built, expect a one-line error naming it.
    base: dict[str, object] = {"id": "j1", "type": "email"}
    with pytest.raises(ValueError, match=words) as info:
        Job(**{**base, **fields})  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_create_with_bad_priority_names_the_job() -> None:
    with pytest.raises(ValueError, match="job 'j9': invalid job priority 'asap'"):
        Job.create("j9", "email", now=0.0, priority="asap")


def test_bad_attempt_outcome_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown attempt outcome"):
        Attempt(1, "w1", 0.0, outcome="MAYBE")
    with pytest.raises(ValueError, match="attempt number must be >= 1"):
        Attempt(0, "w1", 0.0)


def test_is_due_compares_scheduled_at_with_now() -> None:
    # Given a job scheduled at 50, expect it not due before 50 and due from 50 on.
    job = Job.create("j1", "t", now=0.0, scheduled_at=50.0)
    assert not job.is_due(49.9)
    assert job.is_due(50.0)
    assert Job.create("j2", "t", now=0.0).is_due(0.0)


def _history_job() -> Job:
    job = Job.create("j1", "email", {"to": ["a", "b"], "n": 3}, now=10.0, idempotency_key="k-1")
    job = apply(job, Dispatched("w1", 11.0, 41.0))
    job = apply(job, Failed(12.0, "smtp down"), RetryPolicy(jitter_factor=0.0))
    return job


def test_views_follow_the_history() -> None:
    # Given one failed attempt, expect the views to reflect it.
    job = _history_job()
    assert job.attempt_count == 1 and job.retry_count == 0 and job.retries_left == 3
    assert job.last_error == "smtp down"
    assert job.attempts[0].duration == 1.0
    assert not job.is_terminal
    # When it runs again, expect the open attempt and its worker to show.
    running = apply(apply(job, Retry(20.0)), Dispatched("w2", 20.0, 50.0))
    assert running.worker == "w2" and running.current_attempt is running.attempts[-1]
    assert running.attempts[-1].duration is None and running.retry_count == 1


def test_job_with_attempts_survives_the_codec() -> None:
    # Given a job with payload, idempotency key and a closed attempt, when encoded and
    # decoded, expect an equal Job (attempts decoded as Attempt messages, not lists).
    job = _history_job()
    back = decode(encode(job))
    assert back == job
    assert isinstance(back.attempts[0], Attempt)
    running = apply(Job.create("j2", "t", None, now=0.0), Dispatched("w", 1.0, 2.0))
    assert decode(encode(running)) == running


@pytest.mark.parametrize("status", STATUSES)
def test_every_status_survives_the_codec(status: str) -> None:
    attempts = (Attempt(1, "w", 0.0),) if status == RUNNING else ()
    job = Job("j", "t", status=status, attempts=attempts)
    assert decode(encode(job)) == job


def test_decoded_job_is_validated() -> None:
    # Given a frame claiming a job of unknown status, expect the decode to fail, not a bad Job.
    wire = to_wire(Job("j", "t"))
    wire[9] = "DONE"
    with pytest.raises((CodecError, ValueError)):
        decode(msgpack.packb(wire))


def test_public_api_is_explicit_reexports() -> None:
    # Given actors.jobs, expect each public name to come from a private module.
    names = [n for n in dir(jobs) if not n.startswith("_")]
    assert {"Job", "Attempt", "apply", "ReadyQueue", "RetryPolicy", "JOB_TRANSITIONS"} <= set(names)
    for name in names:
        obj = getattr(jobs, name)
        module = getattr(obj, "__module__", "actors.jobs._")
        assert module.startswith(("actors.jobs._", "builtins", "typing", "types")), name
