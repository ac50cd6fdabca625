"""Retry backoff: fixed and exponential growth, the cap, jitter bounds and configuration.

Given / When / Expect; randomness comes from ``random.Random(seed)``, as ``ctx.random`` would.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.jobs import ENV_FIELDS, RetryPolicy, parse_duration


def test_defaults_match_the_reference() -> None:
    p = RetryPolicy()
    assert (p.kind, p.max_retries, p.base_delay, p.max_delay, p.multiplier, p.jitter_factor) == (
        "exponential",
        3,
        1.0,
        60.0,
        2.0,
        0.1,
    )


def test_fixed_waits_the_base_every_time() -> None:
    p = RetryPolicy(kind="fixed", base_delay=5.0, jitter_factor=0.0)
    assert [p.delay(n) for n in range(1, 6)] == [5.0] * 5


def test_exponential_doubles_then_caps() -> None:
    # Given base 1 s, x2, cap 10 s, expect 1, 2, 4, 8, 10, 10 (and no overflow far out).
    p = RetryPolicy(base_delay=1.0, multiplier=2.0, max_delay=10.0, jitter_factor=0.0)
    assert [p.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert p.delay(100_000) == 10.0


policies = st.builds(
    RetryPolicy,
    kind=st.sampled_from(["fixed", "exponential"]),
    base_delay=st.floats(min_value=0.0, max_value=30.0),
    max_delay=st.floats(min_value=30.0, max_value=3600.0),
    multiplier=st.floats(min_value=1.0, max_value=10.0),
    jitter_factor=st.floats(min_value=0.0, max_value=1.0),
)


@given(policy=policies, attempt=st.integers(min_value=1, max_value=2000), seed=st.integers(0, 2**32))
def test_delay_is_within_bounds_for_every_attempt_and_jitter(
    policy: RetryPolicy, attempt: int, seed: int
) -> None:
    # Given any valid policy, attempt and seed, expect 0 <= delay <= max*(1+j) and the delay
    # within the jitter band around the nominal one.
    d = policy.delay(attempt, random.Random(seed))
    nominal = policy.nominal_delay(attempt)
    j = policy.jitter_factor
    assert 0.0 <= d <= policy.max_delay * (1 + j)
    assert nominal * (1 - j) - 1e-9 <= d <= nominal * (1 + j) + 1e-9
    assert nominal <= policy.max_delay


@given(policy=policies, seed=st.integers(0, 2**32))
def test_same_seed_gives_same_delays(policy: RetryPolicy, seed: int) -> None:
    a = [policy.delay(n, random.Random(seed)) for n in range(1, 8)]
    b = [policy.delay(n, random.Random(seed)) for n in range(1, 8)]
    assert a == b


@given(policy=policies)
def test_nominal_exponential_never_shrinks(policy: RetryPolicy) -> None:
    delays = [policy.nominal_delay(n) for n in range(1, 40)]
    assert delays == sorted(delays)


def test_jitter_spreads_delays() -> None:
    p = RetryPolicy(kind="fixed", base_delay=10.0, jitter_factor=0.5)
    rng = random.Random(7)
    seen = {round(p.delay(1, rng), 6) for _ in range(50)}
    assert len(seen) > 40 and min(seen) >= 5.0 and max(seen) <= 15.0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "linear"}, "kind"),
        ({"max_retries": -1}, "max_retries"),
        ({"base_delay": -1.0}, "base_delay"),
        ({"max_delay": 0.5}, "max_delay"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"jitter_factor": 1.5}, "jitter_factor"),
        ({"base_delay": float("inf")}, "base_delay"),
    ],
)
def test_invalid_policy_is_one_line_error_naming_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"RetryPolicy.{field} ") as info:
        RetryPolicy(**fields)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_attempt_below_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="attempt must be >= 1"):
        RetryPolicy().delay(0)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("500ms", 0.5), ("1m", 60.0), ("1m30s", 90.0), ("2.5", 2.5), ("1h", 3600.0), ("0", 0.0)],
)
def test_durations_parse_go_style_or_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5x", "s", "-1", "1s2", "nan", "5 s"])
def test_bad_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_from_mapping_reads_the_reference_variables() -> None:
    # Given the reference's variables as an environment would hold them, expect each field set.
    env = {
        "RETRY_POLICY": "Fixed",
        "MAX_RETRIES": "5",
        "RETRY_BASE_DELAY": "500ms",
        "RETRY_MAX_DELAY": "2m",
        "RETRY_MULTIPLIER": "3",
        "RETRY_JITTER_FACTOR": "0.25",
        "UNRELATED": "x",
    }
    assert RetryPolicy.from_mapping(env) == RetryPolicy("fixed", 5, 0.5, 120.0, 3.0, 0.25)
    assert RetryPolicy.from_mapping({}) == RetryPolicy()
    assert set(ENV_FIELDS.values()) == set(RetryPolicy.__dataclass_fields__)


@pytest.mark.parametrize(
    ("var", "value", "words"),
    [
        ("RETRY_POLICY", "linear", "must be one of fixed, exponential"),
        ("MAX_RETRIES", "three", "not a whole number"),
        ("MAX_RETRIES", "-1", "not a whole number"),
        ("RETRY_BASE_DELAY", "soon", "is not a duration"),
        ("RETRY_MAX_DELAY", "0.5s", "must be finite and >= base_delay"),
        ("RETRY_MULTIPLIER", "x2", "not a number"),
        ("RETRY_MULTIPLIER", "0.5", "must be a finite number >= 1.0"),
        ("RETRY_JITTER_FACTOR", "2", "between 0.0 and 1.0"),
        ("RETRY_BASE_DELAY", "120s", "must not exceed RETRY_MAX_DELAY"),
    ],
)
def test_from_mapping_errors_name_the_variable(var: str, value: str, words: str) -> None:
    # Given one bad variable, expect a one-line error that starts with it and says what to use.
    with pytest.raises(ValueError) as info:
        RetryPolicy.from_mapping({var: value})
    text = str(info.value)
    assert text.startswith(f"{var}={value!r}: ") and words in text and "\n" not in text
