"""The ``troupe sim`` and ``troupe bench sim`` commands, run through ``transport.cli.main``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from transport.cli import main

SCENARIOS = sorted((Path(__file__).parents[2] / "scenarios").glob("*.toml"))
KEYS = {"seed", "events", "sim_seconds", "wall_seconds", "trace_sha256", "violations", "scenario"}


def test_run_prints_summary_then_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    code = main(["sim", "run", str(SCENARIOS[0]), "--seed", "3", "--trace", str(trace)])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    last = json.loads(out[-1])
    assert set(last) >= KEYS
    assert last["seed"] == 3 and last["violations"] == 0 and last["sim_seconds"] > 0
    assert any(line.startswith("faults") for line in out)
    assert len(trace.read_text().splitlines()) == last["events"]


def test_run_without_codec_checks_gives_the_same_hash(capsys: pytest.CaptureFixture[str]) -> None:
    main(["sim", "run", str(SCENARIOS[0]), "--seed", "1"])
    a = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    main(["sim", "run", str(SCENARIOS[0]), "--seed", "1", "--no-codec-checks"])
    b = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert a["trace_sha256"] == b["trace_sha256"]


def test_bad_scenario_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "b"\nsystem = "heartbeat"\nnodes = 2\nduration = 5.0\n'
        '[[faults]]\nat = 1.0\naction = "crash"\nnode = "n9"\n'
    )
    assert main(["sim", "run", str(bad), "--seed", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{bad}: faults[0].node: unknown node 'n9' (nodes are n1..n2)"]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_check_determinism_passes_on_every_scenario(capsys: pytest.CaptureFixture[str], path: Path) -> None:
    assert main(["sim", "check-determinism", str(path), "--seed", "7"]) == 0
    out = capsys.readouterr().out
    hashes = [line.split()[-1] for line in out.splitlines() if line.startswith("run ")]
    assert len(hashes) == 2 and hashes[0] == hashes[1]


def test_bench_quick(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "sim", "--repeat", "1", "--quick"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"deliveries_per_s", "baseline_per_s", "ratio", "ping_pong_per_s"} <= set(last)
    assert last["deliveries_per_s"] > 0
