"""Swarm testing: random fault mixes per seed, deterministic, replayable, and able to find bugs."""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path
from typing import Any

import pytest

import sim
from actors import Actor, Context, Emit
from actors import heartbeat as hb
from sim.systems import SYSTEMS
from transport.cli import main

SCENARIOS = Path(__file__).parents[2] / "scenarios"
CRASH_RESTART = SCENARIOS / "heartbeat-crash-restart.toml"
MEMBERSHIP = SCENARIOS / "heartbeat-membership.toml"


class NeverDead(hb.HeartbeatDetector):
    """Broken: suspects but never declares anyone dead."""

    def _tick(self, ctx: Context) -> None:
        super()._tick(ctx)
        ctx.effects[:] = [e for e in ctx.effects if not (type(e) is Emit and e.kind == "peer.dead")]


def _never_dead_blueprint(cfg: hb.HeartbeatConfig, nodes: tuple[str, ...]) -> Any:
    def build(node: str) -> dict[str, Actor]:
        return {hb.NAME: NeverDead(tuple(p for p in nodes if p != node), cfg)}

    return build


BROKEN = dataclasses.replace(SYSTEMS["heartbeat"], blueprint=_never_dead_blueprint)


def test_swarm_over_crash_restart_finds_no_violations() -> None:
    # Given the correct detector and 20 seeds of random faults
    result = sim.swarm(CRASH_RESTART, range(1, 21))
    # Expect every seed checked and no broken promise
    assert [o.seed for o in result.outcomes] == list(range(1, 21))
    assert result.violations == 0 and result.failing_seeds == []
    assert all(o.faults > 0 for o in result.outcomes)
    assert len(set(result.hashes().values())) == 20


def test_swarm_is_deterministic_in_and_across_processes() -> None:
    one = sim.swarm(CRASH_RESTART, range(5, 9), "heavy")
    again = sim.swarm(CRASH_RESTART, range(5, 9), "heavy")
    parallel = sim.swarm(CRASH_RESTART, range(5, 9), "heavy", jobs=2)
    assert one.outcomes == again.outcomes == parallel.outcomes
    assert one.hashes() != sim.swarm(CRASH_RESTART, range(5, 9), "light").hashes()


def test_broken_detector_fails_and_jobs_do_not_change_which_seeds() -> None:
    # Given a detector that never declares anyone dead
    result = sim.swarm(CRASH_RESTART, range(1, 11), system=BROKEN)
    # Expect failing seeds, all for completeness
    assert len(result.failing_seeds) >= 5
    assert {v.checker for o in result.outcomes for v in o.violations} == {"heartbeat.completeness"}
    assert result.summary_json()["failing_seeds"] == result.failing_seeds


def test_generated_faults_are_well_formed_and_end_in_a_quiet_world() -> None:
    sc = sim.load_scenario(MEMBERSHIP)
    actions: set[str] = set()
    for seed in range(1, 31):
        swarmed = sim.swarm_scenario(sc, seed, "heavy")
        assert swarmed == sim.swarm_scenario(sc, seed, "heavy")  # a pure function of the seed
        assert swarmed.duration > sc.duration and swarmed.late == sc.late
        state = {n: n not in sc.late for n in sc.nodes}  # up?
        for f in swarmed.faults:
            assert 0.0 <= f.at <= sc.duration
            actions.add(f.action)
            if f.action in ("restart", "start"):
                assert f.node is not None and not state[f.node], (seed, f)
                state[f.node] = True
            elif f.action in ("crash", "stop"):
                assert f.node is not None and state[f.node], (seed, f)
                state[f.node] = False
        res = sim.run_scenario(swarmed, seed)
        last = res.timeline.snapshots[-1]
        assert last.at <= sc.duration  # the repair (if anything needed it) came at the boundary
        assert last.down <= set(sc.late) and not last.paused and not last.obstructed and not last.lossy
    assert {"start", "stop", "crash", "restart", "partition", "clog", "set_loss", "clock_jump"} <= actions


def test_unknown_fault_level_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown fault level 'wild'"):
        sim.swarm(CRASH_RESTART, [1], "wild")


def last_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return out


def test_cli_swarm_reports_failing_seeds_with_replays_that_reproduce_them(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the registered heartbeat system is broken (jobs=1 runs here, so the patch holds)
    monkeypatch.setitem(SYSTEMS, "heartbeat", BROKEN)
    expected = sim.swarm(CRASH_RESTART, range(1, 6), "light")
    # When swarming from the command line
    code = main(["sim", "swarm", str(CRASH_RESTART), "--seeds", "1-5", "--faults", "light"])
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    # Expect exit 1, one FAIL line per failing seed and the JSON summary last
    assert code == 1
    assert summary["failing_seeds"] == expected.failing_seeds != []
    assert summary["seeds"] == 5 and summary["violations"] == expected.violations
    assert summary["system"] == "heartbeat" and summary["scenario"] == str(CRASH_RESTART)
    fails = [line for line in out if line.startswith("FAIL")]
    assert len(fails) == len(expected.failing_seeds)
    # And each printed replay command reproduces the seed's trace byte for byte
    hashes = expected.hashes()
    for line in fails:
        argv = shlex.split(line.split("| replay: ", 1)[1])
        assert argv[:3] == ["troupe", "sim", "run"] and "--swarm" in argv
        assert main(argv[1:]) == 1
        replay = last_json(capsys)
        assert replay["trace_sha256"] == hashes[replay["seed"]]


def test_cli_replay_matches_the_api_for_a_passing_seed(capsys: pytest.CaptureFixture[str]) -> None:
    result = sim.swarm(MEMBERSHIP, [4], "heavy")
    argv = shlex.split(result.replay_command(4))
    assert main(argv[1:]) == 0
    assert last_json(capsys)["trace_sha256"] == result.hashes()[4]


def test_cli_swarm_passes_and_rejects_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "swarm", str(CRASH_RESTART), "--seeds", "1-3", "--jobs", "1"]) == 0
    summary = last_json(capsys)
    assert summary["seeds"] == 3 and summary["failing_seeds"] == [] and summary["wall_seconds"] > 0
    assert main(["sim", "swarm", str(CRASH_RESTART), "--seeds", "5-1"]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert main(["sim", "run", str(CRASH_RESTART), "--seed", "1", "--faults", "heavy"]) == 2
    assert "need --swarm" in capsys.readouterr().err


def test_liveness_override_lengthens_the_quiet_phase() -> None:
    sc = sim.load_scenario(CRASH_RESTART)
    assert sim.swarm_scenario(sc, 1).duration == sc.duration + 20.0  # heartbeat: 5 * (D + I)
    assert sim.swarm_scenario(sc, 1, liveness=7.5).duration == sc.duration + 7.5


def test_swarm_seed_56_heavy_stale_pong_no_longer_revives_a_crashed_peer() -> None:
    # Found by this swarm: n5's pongs were held on a clogged link while it crashed; released
    # 3.2 s later they revived it at n2, whose next DEAD verdict then came after the deadline.
    result = sim.swarm(CRASH_RESTART, [56], "heavy")
    assert result.violations == 0
