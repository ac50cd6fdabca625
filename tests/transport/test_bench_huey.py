"""``troupe bench huey``: the peer comparison runs Huey for real and counts what it measures."""

from __future__ import annotations

import json

import pytest

from transport.bench_huey import HueyBenchSpec, run_once
from transport.cli import main


@pytest.mark.slow
def test_a_small_huey_run_starts_every_task_once_and_times_them() -> None:
    # Given a private redis-server and a consumer with two worker processes, When 300 tasks
    # are enqueued and 40 more at 400/s, Expect every one started once and sane timings
    out = run_once(HueyBenchSpec(n=300, latency_jobs=40, rate=400.0))
    assert out["lost"] == 0 and out["duplicates"] == 0
    assert out["jobs_per_s"] > 10 and out["submit_per_s"] >= out["jobs_per_s"]
    assert 0 < out["p50_ms"] <= out["p99_ms"] < 5_000


def test_the_command_refuses_bad_numbers_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "huey", "--n", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "troupe bench huey: error: --n=0: must be >= 1"


@pytest.mark.slow
def test_the_command_prints_one_json_line_last(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "huey", "--n", "100", "--latency-jobs", "20", "--rate", "400"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["system"] == "huey" and last["n"] == 100 and last["lost"] == 0
    assert set(last) >= {"store", "jobs_per_s", "p50_ms", "p99_ms", "lost", "duplicates"}
