"""``troupe bench versus``: Troupe and Huey interleaved, each measured for real, compared per round."""

from __future__ import annotations

import json

import pytest

from transport.cli import main


def test_the_command_refuses_bad_numbers_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "versus", "--rounds", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "troupe bench versus: error: --rounds=0: must be >= 1"


@pytest.mark.slow
def test_two_rounds_alternate_the_systems_and_compare_them_per_round(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given two small rounds, When the command runs
    argv = ["bench", "versus", "--rounds", "2", "--n", "300", "--latency-jobs", "40", "--rate", "400"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    out = json.loads(lines[-1])
    # Expect each round to name who went first, in turn
    assert any(line.startswith("round 1 (troupe first)") for line in lines)
    assert any(line.startswith("round 2 (huey first)") for line in lines)
    # And both systems to have run every job once, with per-round comparisons within the spreads
    assert out["rounds"] == 2 and out["n"] == 300
    for system in ("troupe", "huey"):
        s = out[system]
        assert s["lost"] == 0 and s["duplicates"] == 0
        assert s["spread"]["jobs_per_s"][0] <= s["jobs_per_s"] <= s["spread"]["jobs_per_s"][1]
    ratio = out["ratio_jobs_per_s"]
    assert 0 < ratio["spread"][0] <= ratio["median"] <= ratio["spread"][1]
    t, h = out["troupe"]["spread"]["jobs_per_s"], out["huey"]["spread"]["jobs_per_s"]
    assert t[0] / h[1] - 0.01 <= ratio["spread"][0] and ratio["spread"][1] <= t[1] / h[0] + 0.01
    assert set(out["p50_ms_delta"]) == {"median", "spread"}
