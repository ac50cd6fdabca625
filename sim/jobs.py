"""The job model: how long a simulated ``ExecuteJob`` takes and whether it fails.

No job code runs in the simulator. Each job type maps to a duration distribution and a failure
probability; the simulator draws both from its own ``jobs`` random stream and delivers a
:class:`actors.JobDone` to ``reply_to`` after ``min(duration, timeout)`` seconds, unless the
node crashed meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from random import Random

from .network import Constant, Latency


@dataclass(frozen=True, slots=True)
class JobSpec:
    """Duration distribution (seconds) and failure probability of one job type."""

    duration: Latency = field(default_factory=lambda: Constant(0.01))
    failure: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.failure <= 1.0:
            raise ValueError(f"job failure probability must be in [0, 1], got {self.failure}")


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What a job run came to: ``ok`` or an ``error``, after ``duration`` seconds."""

    ok: bool
    error: str
    duration: float


@dataclass(frozen=True, slots=True)
class JobModel:
    """Job type -> :class:`JobSpec`; types not listed use ``default``."""

    types: dict[str, JobSpec] = field(default_factory=dict)
    default: JobSpec = field(default_factory=JobSpec)

    def outcome(self, job_type: str, timeout: float, rng: Random) -> JobOutcome:
        """Draw one run's outcome of ``job_type`` given its ``timeout``."""
        spec = self.types.get(job_type, self.default)
        duration = spec.duration.sample(rng)
        failed = spec.failure > 0.0 and rng.random() < spec.failure
        if timeout > 0 and duration > timeout:
            return JobOutcome(False, f"timeout after {timeout}s", timeout)
        if failed:
            return JobOutcome(False, f"simulated failure of {job_type}", duration)
        return JobOutcome(True, "", duration)
