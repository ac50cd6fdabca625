"""The HTTP API's request and response bodies, as pydantic models (they make ``/openapi.json``).

Requests are strict: integers must be JSON integers (not ``true`` or ``"3"``), numbers finite,
strings bounded, and unknown fields are refused, so a typo such as ``max_retry`` is a 400
naming it rather than a silently ignored value. Responses follow the references: a job is
rendered with ``status`` in capitals (``PENDING``, ``RUNNING``, ``SUCCESS``, ``FAILED``,
``RETRYING``, ``DEAD``, ``CANCELLED``), ``retry_count``, ``worker_id`` and ``error`` (the last
one), and times as RFC 3339 UTC strings; see :func:`job_out`. Payloads are shown as stored,
except bytes (which only the Python API can store) as base64 text.
"""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from actors.jobs import PRIORITY_MAX, PRIORITY_MIN, parse_priority
from actors.jobs._plain import job_from_plain

MAX_RETRIES_LIMIT = 1000
MAX_TIMEOUT = 30 * 86400.0
MAX_DELAY = 10 * 365 * 86400.0
MAX_TEXT = 200
MAX_PAGE = 10_000
MAX_OFFSET = 1_000_000_000

Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT, pattern=r"\S", strict=True)]
"""A short non-blank string (names, ids, keys)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorOut(BaseModel):
    """Every error: one line naming what is wrong."""

    error: str = Field(examples=["priority: must be 1-10 or high/normal/low"])


# --- jobs ------------------------------------------------------------------------------------


class JobIn(_Strict):
    """A job to submit (``POST /api/v1/jobs``)."""

    type: Text = Field(description="The processor that runs it, such as email.")
    payload: Any = Field(None, description="The processor's input: any JSON value.")
    priority: Annotated[int, Field(ge=PRIORITY_MIN, le=PRIORITY_MAX)] | Literal["high", "normal", "low"] = (
        Field(5, description="1-10 (10 most urgent) or high (8), normal (5), low (2).")
    )
    max_retries: int | None = Field(
        None,
        ge=0,
        le=MAX_RETRIES_LIMIT,
        strict=True,
        description="Retries after the first attempt (default MAX_RETRIES).",
    )
    timeout_seconds: float | None = Field(
        None,
        gt=0,
        le=MAX_TIMEOUT,
        allow_inf_nan=False,
        strict=True,
        description="Longest run of one attempt (default 30).",
    )
    scheduled_at: datetime | None = Field(None, description="Do not run before this RFC 3339 time.")
    delay_seconds: float | None = Field(
        None,
        ge=0,
        le=MAX_DELAY,
        allow_inf_nan=False,
        strict=True,
        description="Or: do not run before this many seconds from now.",
    )
    idempotency_key: Text | None = Field(
        None, description="A second submit with the same key returns the first job."
    )

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: Any) -> int:
        try:
            return parse_priority(value)
        except (ValueError, TypeError):
            raise ValueError(f"priority: must be {PRIORITY_MIN}-{PRIORITY_MAX} or high/normal/low") from None

    @model_validator(mode="after")
    def _one_time(self) -> JobIn:
        if self.scheduled_at is not None and self.delay_seconds is not None:
            raise ValueError("scheduled_at: give scheduled_at or delay_seconds, not both")
        return self

    def scheduled_unix(self, now: float) -> float | None:
        """When the job may start, in UNIX seconds (None: now)."""
        if self.delay_seconds is not None:
            return now + self.delay_seconds
        if self.scheduled_at is None:
            return None
        at = self.scheduled_at if self.scheduled_at.tzinfo else self.scheduled_at.replace(tzinfo=UTC)
        try:
            return at.timestamp()
        except (OverflowError, ValueError, OSError):
            raise ValueError("scheduled_at: out of range") from None


class AttemptOut(BaseModel):
    """One run of a job."""

    number: int
    worker: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str = Field(description="RUNNING, SUCCESS, FAILED, LEASE_EXPIRED or CANCELLED")
    error: str | None


class JobOut(BaseModel):
    """A job and its history."""

    id: str
    type: str
    payload: Any
    priority: int
    status: str = Field(description="PENDING, RUNNING, SUCCESS, FAILED, RETRYING, DEAD or CANCELLED")
    max_retries: int
    retry_count: int
    attempt_count: int
    timeout_seconds: float
    scheduled_at: datetime | None
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime
    lease_expires_at: datetime | None
    worker_id: str | None = Field(description="The worker running it now")
    error: str | None = Field(description="The latest attempt's error")
    requeue_count: int
    attempts: list[AttemptOut]


class JobListOut(BaseModel):
    """A page of jobs in submission order."""

    jobs: list[JobOut]
    limit: int
    offset: int
    total: int | None = None


class CancelIn(_Strict):
    """Why a job is cancelled (optional)."""

    reason: str | None = Field(None, max_length=500, strict=True)


class IdsIn(_Strict):
    """Dead-lettered jobs to act on; leave ``ids`` out for all of them."""

    ids: list[Text] | None = Field(None, max_length=MAX_PAGE)


class RequeueOut(BaseModel):
    requeued: list[str]


class PurgeOut(BaseModel):
    purged: int
    ids: list[str]


class StatsOut(_Open):
    """Counts of the job store, and who answers."""

    by_status: dict[str, int]
    ready: int
    delayed: int
    running: int
    retrying: int | None = None
    dlq: int
    total: int
    epoch: int | None = None
    node_id: str
    leader: str | None


# --- cluster ---------------------------------------------------------------------------------


class WorkerOut(BaseModel):
    id: str
    node: str = Field(description="The node hosting the worker")
    capacity: int
    load: int = Field(description="Jobs it holds and jobs routed to it since its last status")
    held: list[str] = Field(description="Job ids it holds")
    state: Literal["ONLINE", "OFFLINE"]
    last_seen: datetime
    silent_seconds: float


class WorkersOut(BaseModel):
    leader: str
    strategy: str
    workers: list[WorkerOut]


class NodeOut(BaseModel):
    id: str
    address: str | None
    state: Literal["alive", "suspect", "dead"] = Field(description="This node's heartbeat detector's view")
    leader: bool
    self: bool


class NodesOut(BaseModel):
    node_id: str
    leader: str | None
    nodes: list[NodeOut]


class LeaderOut(BaseModel):
    leader: str | None
    epoch: int
    term: int | None = Field(description="The Raft term (Raft only)")
    algorithm: str
    node_id: str
    is_leader: bool


class AlgorithmOut(BaseModel):
    name: str
    description: str
    properties: dict[str, Any]
    defaults: dict[str, Any]
    in_use: bool


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    node_id: str
    leader: str | None
    store_reachable: bool
    uptime_seconds: float
    problems: list[str]


# --- auth ------------------------------------------------------------------------------------


class LoginIn(_Strict):
    username: str = Field(min_length=1, max_length=MAX_TEXT, strict=True)
    password: str = Field(min_length=1, max_length=1000, strict=True)


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int
    role: str


# --- pull workers ----------------------------------------------------------------------------


class RegisterIn(_Strict):
    worker_id: Text | None = Field(None, description="Keep this id (a re-registration); default: a new one")
    hostname: Text
    capacity: int = Field(1, ge=1, le=1000, strict=True)


class RegisterOut(_Open):
    worker_id: str
    status: str
    heartbeat_interval: float
    offline_after: float


class HeartbeatIn(_Strict):
    worker_id: Text
    load: int | None = Field(None, ge=0, le=1_000_000, strict=True)


class HeartbeatOut(_Open):
    worker_id: str
    status: str


class NextIn(_Strict):
    worker_id: Text
    wait: float = Field(
        0.0, ge=0, le=30, allow_inf_nan=False, strict=True, description="Seconds to wait for a job"
    )


class PulledJobOut(_Open):
    id: str
    type: str
    payload: Any
    attempt: int
    priority: int
    timeout_seconds: float


class ReportIn(_Strict):
    worker_id: Text
    job_id: Text
    attempt: int = Field(ge=1, le=1_000_000, strict=True)
    status: Literal["SUCCESS", "FAILED"]
    error: str | None = Field(None, max_length=10_000, strict=True)
    result: Any = None


class ReportOut(_Open):
    accepted: bool


class PullWorkersOut(BaseModel):
    workers: list[dict[str, Any]]


# --- rendering -------------------------------------------------------------------------------

_EARLIEST = datetime(1, 1, 2, tzinfo=UTC).timestamp()
_LATEST = datetime(9999, 12, 30, tzinfo=UTC).timestamp()


def utc(t: float) -> datetime:
    """UNIX seconds as an aware UTC datetime (clamped to years 1-9999)."""
    if not math.isfinite(t):
        t = _LATEST if t > 0 else _EARLIEST
    return datetime.fromtimestamp(min(max(t, _EARLIEST), _LATEST), UTC)


def _maybe(t: float | None) -> datetime | None:
    return None if t is None else utc(t)


def json_safe(value: Any, depth: int = 0) -> Any:
    """``value`` with every ``bytes`` as base64 text (only the Python API can store bytes in a
    payload; JSON has no bytes). Nesting past 256 levels is rendered as its ``repr``."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if depth > 256:
        return repr(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, depth + 1) for v in value]
    return value


def job_out(plain: Any) -> JobOut:
    """A store's plain job record as the API shows it.

    Raises:
        ValueError: the record is malformed.
    """
    job = job_from_plain(plain)
    return JobOut(
        id=job.id,
        type=job.type,
        payload=json_safe(job.payload),
        priority=job.priority,
        status=job.status,
        max_retries=job.max_retries,
        retry_count=job.retry_count,
        attempt_count=job.attempt_count,
        timeout_seconds=job.timeout_seconds,
        scheduled_at=_maybe(job.scheduled_at),
        idempotency_key=job.idempotency_key,
        created_at=utc(job.created_at),
        updated_at=utc(job.updated_at),
        lease_expires_at=_maybe(job.lease_expires_at),
        worker_id=job.worker,
        error=job.last_error,
        requeue_count=job.requeue_count,
        attempts=[
            AttemptOut(
                number=a.number,
                worker=a.worker,
                started_at=utc(a.started),
                finished_at=_maybe(a.finished),
                outcome=a.outcome,
                error=a.error,
            )
            for a in job.attempts
        ],
    )
