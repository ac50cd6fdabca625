"""The job lifecycle table: every legal move, every illegal one, retries, death and requeue.

Given / When / Expect; the table itself is the specification these tests read from.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.jobs import (
    CANCELLED,
    DEAD,
    EVENT_TYPES,
    FAILED,
    FAILURE_TARGETS,
    JOB_TRANSITIONS,
    LEASE_EXPIRED_ERROR,
    OUTCOME_CANCELLED,
    OUTCOME_FAILED,
    OUTCOME_LEASE_EXPIRED,
    OUTCOME_SUCCESS,
    PENDING,
    RETRYING,
    RUNNING,
    STATUSES,
    SUCCESS,
    Attempt,
    Cancelled,
    Dispatched,
    Failed,
    IllegalTransition,
    Job,
    LeaseExpired,
    LeaseRenewed,
    Requeued,
    Retry,
    RetryPolicy,
    Succeeded,
    allowed_events,
    apply,
    can_apply,
)

NO_JITTER = RetryPolicy(kind="exponential", base_delay=1.0, max_delay=60.0, jitter_factor=0.0)

SAMPLE_EVENTS: dict[type[Any], Any] = {
    Dispatched: Dispatched("w1", 5.0, 35.0),
    LeaseRenewed: LeaseRenewed(6.0, 40.0),
    Succeeded: Succeeded(7.0),
    Failed: Failed(7.0, "boom"),
    LeaseExpired: LeaseExpired(36.0),
    Retry: Retry(9.0),
    Cancelled: Cancelled(8.0, "user"),
    Requeued: Requeued(50.0),
}


def job_in(status: str, max_retries: int = 3) -> Job:
    """A job in ``status`` with a history consistent with it."""
    attempts: tuple[Attempt, ...] = ()
    if status == RUNNING:
        attempts = (Attempt(1, "w0", 1.0),)
    elif status in (RETRYING, DEAD, FAILED, SUCCESS):
        attempts = (Attempt(1, "w0", 1.0, 2.0, "err", OUTCOME_FAILED),)
    return Job("j1", "email", status=status, attempts=attempts, max_retries=max_retries)


def test_table_covers_every_status_and_only_known_events() -> None:
    assert set(JOB_TRANSITIONS) == set(STATUSES)
    for targets in JOB_TRANSITIONS.values():
        assert set(targets) <= set(EVENT_TYPES)
        assert set(targets.values()) <= set(STATUSES)


LEGAL = [(s, e) for s, row in JOB_TRANSITIONS.items() for e in row]
ILLEGAL = [(s, e) for s in STATUSES for e in EVENT_TYPES if e not in JOB_TRANSITIONS[s]]


@pytest.mark.parametrize(("status", "event_type"), LEGAL, ids=lambda v: getattr(v, "__name__", v))
def test_every_legal_transition_lands_where_the_table_says(status: str, event_type: type[Any]) -> None:
    # Given a job in a status and an event the table allows, when applied, expect the target
    # (or, for failures, one of the documented failure targets) and updated_at = event time.
    job = job_in(status)
    event = SAMPLE_EVENTS[event_type]
    after = apply(job, event, NO_JITTER)
    want = JOB_TRANSITIONS[status][event_type]
    assert after.status == want or after.status in FAILURE_TARGETS.get(event_type, frozenset())
    assert after.updated_at == event.at
    assert job.status == status  # the input is untouched


@pytest.mark.parametrize(("status", "event_type"), ILLEGAL, ids=lambda v: getattr(v, "__name__", v))
def test_every_illegal_transition_raises_naming_job_status_and_event(
    status: str, event_type: type[Any]
) -> None:
    # Given an event the table does not list for the status, expect IllegalTransition in one
    # line naming the job id, the status and the event.
    job = job_in(status)
    event = SAMPLE_EVENTS[event_type]
    assert not can_apply(job, event)
    with pytest.raises(IllegalTransition) as info:
        apply(job, event, NO_JITTER)
    text = str(info.value)
    assert "'j1'" in text and status in text and event_type.__name__ in text and "\n" not in text
    assert info.value.status == status and info.value.job_id == "j1"


def test_allowed_events_reads_the_table() -> None:
    assert allowed_events(PENDING) == {Dispatched, Cancelled}
    assert allowed_events(SUCCESS) == frozenset()


def test_dispatch_opens_an_attempt_and_success_closes_it() -> None:
    # Given a pending job, when dispatched then succeeded, expect one closed attempt.
    job = apply(Job.create("j1", "t", now=0.0), Dispatched("w1", 1.0, 31.0))
    assert job.status == RUNNING and job.lease_expires_at == 31.0 and job.worker == "w1"
    assert job.attempts == (Attempt(1, "w1", 1.0),)
    job = apply(job, LeaseRenewed(10.0, 40.0))
    assert job.lease_expires_at == 40.0 and job.status == RUNNING
    done = apply(job, Succeeded(12.0, attempt=1))
    assert done.status == SUCCESS and done.lease_expires_at is None and done.is_terminal
    assert done.attempts == (Attempt(1, "w1", 1.0, 12.0, None, OUTCOME_SUCCESS),)


def test_failure_schedules_retry_with_policy_delay() -> None:
    # Given a running job, when it fails, expect RETRYING at failure time + the policy's delay.
    job = apply(Job.create("j1", "t", now=0.0), Dispatched("w1", 1.0, 31.0))
    after = apply(job, Failed(2.0, "boom"), NO_JITTER)
    assert after.status == RETRYING and after.scheduled_at == 2.0 + 1.0
    assert after.attempts[-1] == Attempt(1, "w1", 1.0, 2.0, "boom", OUTCOME_FAILED)


def test_lease_expiry_counts_as_a_failed_attempt() -> None:
    job = apply(Job.create("j1", "t", now=0.0), Dispatched("w1", 1.0, 31.0))
    after = apply(job, LeaseExpired(31.0), NO_JITTER)
    assert after.status == RETRYING and after.scheduled_at == 32.0
    assert after.attempts[-1].outcome == OUTCOME_LEASE_EXPIRED
    assert after.attempts[-1].error == LEASE_EXPIRED_ERROR


def test_non_retryable_failure_goes_to_failed_at_once() -> None:
    job = apply(Job.create("j1", "t", now=0.0, max_retries=5), Dispatched("w1", 1.0, 31.0))
    after = apply(job, Failed(2.0, "bad payload", retryable=False))
    assert after.status == FAILED and after.last_error == "bad payload"
    assert apply(after, Requeued(3.0)).status == PENDING


def run_failing(job: Job, policy: RetryPolicy, rng: random.Random | None, lease_every: int = 0) -> Job:
    """Dispatch and fail ``job`` until it is dead; check each retry's schedule on the way."""
    t = job.updated_at
    k = 0
    while job.status != DEAD:
        if job.status == RETRYING:
            assert job.scheduled_at is not None
            t = job.scheduled_at
            job = apply(job, Retry(t))
        k += 1
        t += 1.0
        job = apply(job, Dispatched(f"w{k}", t, t + 30.0))
        t += 0.5
        before = job
        event: Any = LeaseExpired(t) if lease_every and k % lease_every == 0 else Failed(t, f"e{k}")
        job = apply(job, event, policy, rng)
        if job.status == RETRYING:
            n = before.budget_attempts
            assert job.scheduled_at is not None
            lo = policy.nominal_delay(n) * (1 - policy.jitter_factor)
            hi = policy.nominal_delay(n) * (1 + policy.jitter_factor)
            assert lo - 1e-9 <= job.scheduled_at - t <= hi + 1e-9
    return job


@given(
    max_retries=st.integers(min_value=0, max_value=8),
    seed=st.integers(min_value=0, max_value=2**32),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    lease_every=st.integers(min_value=0, max_value=3),
)
def test_job_dies_after_max_retries_plus_one_failed_attempts(
    max_retries: int, seed: int, jitter: float, lease_every: int
) -> None:
    # Given a job that always fails, when driven to the end, expect exactly max_retries + 1
    # attempts, all closed with their errors, numbered 1.., each retry scheduled per policy.
    policy = RetryPolicy(jitter_factor=jitter)
    job = Job.create("j1", "t", now=100.0, max_retries=max_retries)
    dead = run_failing(job, policy, random.Random(seed), lease_every)
    assert dead.status == DEAD and dead.retries_left == 0
    assert len(dead.attempts) == max_retries + 1
    assert [a.number for a in dead.attempts] == list(range(1, max_retries + 2))
    assert all(not a.is_open and a.error for a in dead.attempts)
    assert dead.retry_count == max_retries


@given(st.lists(st.sampled_from(["ok", "fail", "lease", "cancel"]), min_size=1, max_size=12))
def test_attempts_history_equals_attempts_made(outcomes: list[str]) -> None:
    # Given any sequence of run outcomes, expect one attempt per dispatch, closed as reported.
    job = Job.create("j1", "t", now=0.0, max_retries=20)
    made = 0
    for i, outcome in enumerate(outcomes):
        if job.status in (SUCCESS, CANCELLED):
            break
        if job.status == RETRYING:
            job = apply(job, Retry(float(i)))
        job = apply(job, Dispatched("w", float(i), float(i) + 1))
        made += 1
        event: Any = {
            "ok": Succeeded(i + 0.5),
            "fail": Failed(i + 0.5, "x"),
            "lease": LeaseExpired(i + 0.5),
            "cancel": Cancelled(i + 0.5),
        }[outcome]
        job = apply(job, event, NO_JITTER)
    assert len(job.attempts) == made
    assert all(not a.is_open for a in job.attempts)


@pytest.mark.parametrize("status", [PENDING, RETRYING, RUNNING])
def test_cancel_from_pending_retrying_or_running(status: str) -> None:
    # Given a cancellable job, when cancelled, expect CANCELLED, terminal, history kept
    # (a running attempt closes as cancelled with the reason).
    job = job_in(status)
    after = apply(job, Cancelled(9.0, "user asked"))
    assert after.status == CANCELLED and after.is_terminal
    assert len(after.attempts) == len(job.attempts)
    if status == RUNNING:
        assert after.attempts[-1].outcome == OUTCOME_CANCELLED
        assert after.attempts[-1].error == "cancelled: user asked"
    with pytest.raises(IllegalTransition):
        apply(after, Requeued(10.0))


def test_requeue_from_dead_resets_to_pending_keeping_history() -> None:
    # Given a dead job, when requeued, expect PENDING with all attempts kept and a fresh budget.
    dead = run_failing(Job.create("j1", "t", now=0.0, max_retries=1), NO_JITTER, None)
    again = apply(dead, Requeued(100.0))
    assert again.status == PENDING and again.attempts == dead.attempts
    assert again.requeue_count == 1 and again.retries_left == 2 and again.retry_count == 0
    assert again.scheduled_at is None
    # When it fails again, expect the budget counted afresh: retries at base delay, then dead.
    dead2 = run_failing(again, NO_JITTER, None)
    assert len(dead2.attempts) == 4 and dead2.attempts[2].number == 3
    assert dead2.requeue_count == 1


def test_stale_report_for_another_attempt_is_illegal() -> None:
    # Given attempt 1 expired and attempt 2 running elsewhere, when worker 1 reports late,
    # expect the report rejected.
    job = apply(Job.create("j1", "t", now=0.0), Dispatched("w1", 1.0, 2.0))
    job = apply(apply(job, LeaseExpired(2.0), NO_JITTER), Retry(3.0))
    job = apply(job, Dispatched("w2", 3.0, 33.0))
    late = Succeeded(4.0, attempt=1)
    assert not can_apply(job, late)
    with pytest.raises(IllegalTransition, match="reports attempt 1 but attempt 2 is running"):
        apply(job, late)
    assert apply(job, Succeeded(5.0, attempt=2)).status == SUCCESS


def test_default_policy_is_used_when_none_given() -> None:
    job = apply(Job.create("j1", "t", now=0.0), Dispatched("w1", 1.0, 2.0))
    after = apply(job, Failed(2.0, "x"))
    assert after.scheduled_at == 3.0  # RetryPolicy() nominal first delay: 1 s, no rng, no jitter
