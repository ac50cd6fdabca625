"""The same job scenario and seed give the same trace in two separate processes (each with its
own string-hash seed): nothing in the job engine may depend on set or dict-of-str iteration order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _sha(scenario: str, hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    run = subprocess.run(
        [sys.executable, "-m", "transport.cli", "sim", "run", scenario, "--seed", "3"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, env=env, check=True,
    )  # fmt: skip
    return str(json.loads(run.stdout.strip().splitlines()[-1])["trace_sha256"])


@pytest.mark.parametrize(
    "scenario", ["scenarios/jobs-store-crash.toml", "scenarios/jobs-raft-leader-crash.toml"]
)
def test_a_job_trace_does_not_depend_on_the_process_hash_seed(scenario: str) -> None:
    assert _sha(scenario, "1") == _sha(scenario, "2")
