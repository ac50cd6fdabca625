"""Retry backoff: how long a failed job waits before it runs again.

How it works
------------
A :class:`RetryPolicy` is a frozen value; :meth:`RetryPolicy.delay` turns the number of the
attempt that just failed (1 for the first run) into seconds to wait:

- ``fixed``: always ``base_delay``;
- ``exponential``: ``min(max_delay, base_delay * multiplier ** (attempt - 1))``, so with the
  defaults 1 s, 2 s, 4 s, ... capped at 60 s.

Jitter then multiplies the delay by a factor drawn uniformly from
``[1 - jitter_factor, 1 + jitter_factor]`` with the random generator the caller passes (an
actor's ``ctx.random``, so a simulated run replays the same delays). The result is never
negative and never above ``max_delay * (1 + jitter_factor)``: the cap applies before jitter, so
jobs that all reached the cap still spread out instead of retrying in one herd.

Configuration names (the reference's environment variables; reading the environment is the
edge's job, :meth:`RetryPolicy.from_mapping` takes the values once read):

==================== ================= =========================================
variable             field             default
==================== ================= =========================================
RETRY_POLICY         ``kind``          ``exponential`` (or ``fixed``)
MAX_RETRIES          ``max_retries``   3 (default for jobs submitted without one)
RETRY_BASE_DELAY     ``base_delay``    1 s (``500ms``, ``5s``, ``1m``, ``2.5``)
RETRY_MAX_DELAY      ``max_delay``     60 s
RETRY_MULTIPLIER     ``multiplier``    2.0
RETRY_JITTER_FACTOR  ``jitter_factor`` 0.1 (0.0 to 1.0)
==================== ================= =========================================
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from .._context import Rng
from .._messages import message

FIXED: Final = "fixed"
EXPONENTIAL: Final = "exponential"
RETRY_KINDS: Final = (FIXED, EXPONENTIAL)

ENV_FIELDS: Final = {
    "RETRY_POLICY": "kind",
    "MAX_RETRIES": "max_retries",
    "RETRY_BASE_DELAY": "base_delay",
    "RETRY_MAX_DELAY": "max_delay",
    "RETRY_MULTIPLIER": "multiplier",
    "RETRY_JITTER_FACTOR": "jitter_factor",
}
"""Reference variable name -> :class:`RetryPolicy` field."""

_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a plain number of seconds (``"2.5"``) or Go style (``"1m30s"``).

    Units: ``ns``, ``us``, ``ms``, ``s``, ``m``, ``h``; parts add up (``"1h30m"``).

    Raises:
        ValueError: ``text`` is not a non-negative duration.
    """
    s = text.strip()
    try:
        value = float(s)
    except ValueError:
        pos, total = 0, 0.0
        for match in _PART.finditer(s):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos == 0 or pos != len(s):
            raise ValueError(f"{text!r} is not a duration (use e.g. 500ms, 5s, 1m or seconds)") from None
        return total
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{text!r} is not a duration (use a non-negative number of seconds)")
    return value


@message("jobs.RetryPolicy")
@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How failed jobs are retried: backoff kind, bounds and jitter.

    Attributes:
        kind: ``"fixed"`` or ``"exponential"``.
        max_retries: retries after the first attempt for jobs submitted without their own
            ``max_retries`` (a job's own value wins; see ``Job.max_retries``).
        base_delay: seconds before the first retry (and every retry if ``fixed``).
        max_delay: cap on the delay before jitter, seconds; at least ``base_delay``.
        multiplier: growth per failed attempt for ``exponential``; at least 1.
        jitter_factor: 0..1, the relative spread of the random factor applied to each delay.

    Raises:
        ValueError: a field is out of range (one line naming the field).
    """

    kind: str = EXPONENTIAL
    max_retries: int = 3
    base_delay: float = 1.0
    max_delay: float = 60.0
    multiplier: float = 2.0
    jitter_factor: float = 0.1

    def __post_init__(self) -> None:
        problem = _policy_problem(self)
        if problem is not None:
            raise _FieldError(*problem)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str]) -> RetryPolicy:
        """A policy from the reference's variables (``RETRY_POLICY``, ``MAX_RETRIES``, ...).

        Args:
            mapping: variable name -> string value, e.g. ``os.environ`` read by an edge.
                Missing variables keep their defaults; other keys are ignored.

        Raises:
            ValueError: a value does not parse or is out of range; the one-line message names
                the variable and says what to use.
        """
        values: dict[str, Any] = {}
        for var, name in ENV_FIELDS.items():
            raw = mapping.get(var)
            if raw is None:
                continue
            try:
                values[name] = _parse_field(name, raw)
            except ValueError as e:
                raise ValueError(f"{var}={raw!r}: {e}") from None
        try:
            return cls(**values)
        except _FieldError as e:
            var = next(v for v, f in ENV_FIELDS.items() if f == e.field)
            if var not in mapping and e.field == "max_delay":
                # Only the base was given: blame it, not the default cap it exceeds.
                base = mapping["RETRY_BASE_DELAY"]
                raise ValueError(
                    f"RETRY_BASE_DELAY={base!r}: must not exceed RETRY_MAX_DELAY ({cls().max_delay}s)"
                ) from None
            raise ValueError(f"{var}={mapping.get(var)!r}: {e.text}") from None

    def delay(self, attempt: int, rng: Rng | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 for the first run).

        Args:
            attempt: the failed attempt's number within the job's retry budget, >= 1.
            rng: the generator jitter draws from (``ctx.random``); None gives the nominal
                delay without jitter.

        Returns:
            A delay in ``[0, max_delay * (1 + jitter_factor)]``.

        Raises:
            ValueError: ``attempt`` is below 1.
        """
        nominal = self.nominal_delay(attempt)
        if rng is None or self.jitter_factor == 0.0 or nominal == 0.0:
            return nominal
        j = self.jitter_factor
        jittered = nominal * rng.uniform(1.0 - j, 1.0 + j)
        # uniform() may round a hair past its bounds; keep the documented ones exact.
        return min(max(jittered, 0.0), self.max_delay * (1.0 + j))

    def nominal_delay(self, attempt: int) -> float:
        """The delay after failed attempt ``attempt`` before jitter (see :meth:`delay`)."""
        if isinstance(attempt, bool) or attempt < 1:
            raise ValueError(f"retry delay: attempt must be >= 1, got {attempt!r}")
        if self.kind == FIXED:
            return self.base_delay
        try:
            raw = self.base_delay * self.multiplier ** (attempt - 1)
        except OverflowError:
            return self.max_delay
        return min(self.max_delay, raw)


class _FieldError(ValueError):
    """A :class:`RetryPolicy` field out of range; ``field`` says which."""

    def __init__(self, field: str, text: str) -> None:
        super().__init__(f"RetryPolicy.{field} {text}")
        self.field = field
        self.text = text


def _parse_field(name: str, raw: str) -> object:
    """``raw`` converted to the type of field ``name`` (ValueError says what to use)."""
    text = raw.strip()
    if name == "kind":
        return text.lower()
    if name == "max_retries":
        if not text.isdigit():
            raise ValueError("not a whole number of retries (use e.g. 3)")
        return int(text)
    if name in ("base_delay", "max_delay"):
        return parse_duration(text)
    try:
        return float(text)
    except ValueError:
        raise ValueError("not a number (use e.g. 2.0)") from None


def _policy_problem(p: RetryPolicy) -> tuple[str, str] | None:
    """(field, what is wrong) for the first out-of-range field of ``p``, or None."""
    if p.kind not in RETRY_KINDS:
        return "kind", f"must be one of {', '.join(RETRY_KINDS)}, got {p.kind!r}"
    if isinstance(p.max_retries, bool) or not isinstance(p.max_retries, int) or p.max_retries < 0:
        return "max_retries", f"must be a whole number >= 0, got {p.max_retries!r}"
    if not (math.isfinite(p.base_delay) and p.base_delay >= 0):
        return "base_delay", f"must be a finite number of seconds >= 0, got {p.base_delay!r}"
    if not (math.isfinite(p.max_delay) and p.max_delay >= p.base_delay):
        return "max_delay", f"must be finite and >= base_delay ({p.base_delay}), got {p.max_delay!r}"
    if not (math.isfinite(p.multiplier) and p.multiplier >= 1.0):
        return "multiplier", f"must be a finite number >= 1.0, got {p.multiplier!r}"
    if not 0.0 <= p.jitter_factor <= 1.0:
        return "jitter_factor", f"must be between 0.0 and 1.0, got {p.jitter_factor!r}"
    return None
