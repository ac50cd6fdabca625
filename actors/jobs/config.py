"""Settings of the job engine's actors (seconds of the node's clocks)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..balancers import STRATEGIES
from ._retry import RetryPolicy


@dataclass(frozen=True, slots=True)
class JobsConfig:
    """How workers, the scheduler and the balancer behave.

    Attributes:
        worker_count: jobs one node's worker pool runs at once (``WORKER_COUNT``).
        heartbeat_interval: how often a worker reports and renews its leases (reference: 5 s).
        offline_after: a worker silent this long is offline (reference: 15 s).
        lease_seconds: how long a dispatch or renewal holds a job; None means
            ``offline_after + heartbeat_interval``, so a live worker never loses one.
        tick: the scheduler's dispatch period when idle (a safety net: submits, freed workers
            and due retries start a round at once).
        maintain_interval: how often the scheduler expires leases and promotes due jobs.
        batch: at most this many jobs per dispatch round.
        request_timeout: a store request unanswered this long is sent again.
        status_delay: a worker reports freed slots at most this often.
        lane_slots: jobs a node's worker pool runs at once, beyond ``worker_count``, that its
            gateway dispatched at submit (the fast lane, ``FAST_LANE_SLOTS``; 0 turns it off).
        strategy: the balancer's ``LOAD_BALANCER_STRATEGY``.
        policy: retry backoff used by the store.
    """

    worker_count: int = 4
    heartbeat_interval: float = 5.0
    offline_after: float = 15.0
    lease_seconds: float | None = None
    tick: float = 0.2
    maintain_interval: float = 0.5
    batch: int = 256
    request_timeout: float = 2.0
    status_delay: float = 0.01
    lane_slots: int = 2
    strategy: str = "least_loaded"
    policy: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.worker_count < 1:
            raise ValueError(f"worker_count must be >= 1, got {self.worker_count}")
        for name in ("heartbeat_interval", "offline_after", "tick", "maintain_interval", "request_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {getattr(self, name)}")
        if self.offline_after <= self.heartbeat_interval:
            beat = self.heartbeat_interval
            raise ValueError(f"offline_after ({self.offline_after}) must exceed heartbeat_interval ({beat})")
        if self.lease_seconds is not None and self.lease_seconds <= self.heartbeat_interval:
            raise ValueError(f"lease_seconds must exceed heartbeat_interval, got {self.lease_seconds}")
        if self.lane_slots < 0:
            raise ValueError(f"lane_slots must be >= 0, got {self.lane_slots}")
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")
        if self.strategy.strip().lower() not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}: use one of {', '.join(STRATEGIES)}")

    @property
    def lease(self) -> float:
        """Seconds one dispatch or renewal holds a job."""
        return (
            self.lease_seconds
            if self.lease_seconds is not None
            else self.offline_after + self.heartbeat_interval
        )
