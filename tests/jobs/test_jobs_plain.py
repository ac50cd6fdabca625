"""Jobs as plain data: every field crosses, and the fast reading of a new job is the careful one's."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.jobs import Job
from actors.jobs._plain import job_from_plain, job_to_plain
from actors.jobs._transitions import Dispatched, apply


def test_job_to_plain_names_every_field_of_job_in_order() -> None:
    job = Job.create("a", "t", {"x": 1}, now=1.0)
    assert list(job_to_plain(job)) == [f.name for f in dataclasses.fields(Job)]


@given(
    priority=st.integers(1, 10),
    retries=st.integers(0, 50),
    timeout=st.floats(0.001, 1e6) | st.integers(1, 1000),
    scheduled=st.none() | st.floats(0, 2e9),
    key=st.none() | st.text(min_size=1, max_size=5),
    payload=st.none() | st.integers() | st.text() | st.lists(st.integers(), max_size=3),
)
def test_a_new_job_reads_back_as_itself(
    priority: int, retries: int, timeout: float, scheduled: float | None, key: str | None, payload: Any
) -> None:
    job = Job.create(
        "a", "t", payload, now=1.5, priority=priority, max_retries=retries, timeout_seconds=float(timeout),
        scheduled_at=scheduled, idempotency_key=key,
    )  # fmt: skip
    plain = job_to_plain(job)
    assert job_from_plain(plain) == job
    plain["timeout_seconds"] = timeout  # an int where a float is kept: still read as a float
    assert job_from_plain(plain) == job


def test_a_job_with_attempts_reads_back_as_itself() -> None:
    job = apply(Job.create("a", "t", None, now=1.0), Dispatched(worker="w", at=2.0, lease_expires_at=9.0))
    assert job_from_plain(job_to_plain(job)) == job


class _Int(int):
    pass


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("priority", True, "priority"),
        ("priority", 1.5, "priority"),
        ("max_retries", "3", "max_retries"),
        ("created_at", "now", "created_at"),
        ("scheduled_at", "soon", "scheduled_at"),
        ("idempotency_key", 7, "idempotency_key"),
        ("status", "LOST", "status"),
        ("priority", 11, "priority"),
    ],
)
def test_a_bad_field_is_refused_in_one_line_as_before(field: str, value: Any, words: str) -> None:
    plain = job_to_plain(Job.create("a", "t", None, now=1.0))
    plain[field] = value
    with pytest.raises(ValueError, match=words) as e:
        job_from_plain(plain)
    assert "\n" not in str(e.value)


def test_a_missing_field_is_named_and_an_int_subclass_is_still_accepted() -> None:
    plain = job_to_plain(Job.create("a", "t", None, now=1.0))
    del plain["requeue_count"]
    with pytest.raises(ValueError, match="requeue_count"):
        job_from_plain(plain)
    ok = job_to_plain(Job.create("a", "t", None, now=1.0))
    ok["priority"] = _Int(7)
    assert job_from_plain(ok).priority == 7
