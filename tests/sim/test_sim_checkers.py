"""Heartbeat checkers: silent on the shipped scenarios, loud on broken detectors."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import sim
from actors import Actor, Context
from actors import heartbeat as hb

SCENARIOS = sorted((Path(__file__).parents[2] / "scenarios").glob("heartbeat-*.toml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_scenarios_have_no_violations(path: Path, seed: int) -> None:
    res = sim.run_scenario(path, seed)
    assert res.violations == [], [str(v) for v in res.violations]
    assert sim.detections(res)["peer.dead"] > 0


class NeverDead(hb.HeartbeatDetector):
    """Broken: suspects but never declares anyone dead."""

    def _tick(self, ctx: Context) -> None:
        super()._tick(ctx)
        ctx.effects[:] = [e for e in ctx.effects if not (isinstance(e, sim_emit()) and e.kind == "peer.dead")]


def sim_emit() -> type[Any]:
    from actors import Emit

    return Emit


def run_with(
    detector: type[hb.HeartbeatDetector], scenario: str, actor_cfg: hb.HeartbeatConfig | None = None
) -> list[sim.Violation]:
    sc = sim.load_scenario(Path(__file__).parents[2] / "scenarios" / scenario)
    nodes = sc.nodes
    cfg = actor_cfg or sc.params

    def build(node: str) -> dict[str, Actor]:
        return {hb.NAME: detector(tuple(p for p in nodes if p != node), cfg)}

    s = sim.Simulation(build, nodes, seed=1, network=sc.network, clocks=sc.clocks)
    for f in sc.faults:
        s.schedule(f)
    return sim.check_heartbeat(s.run(sc.duration), sc.params)


def test_detector_that_never_declares_dead_breaks_completeness() -> None:
    violations = run_with(NeverDead, "heartbeat-crash-restart.toml")
    assert violations
    assert {v.checker for v in violations} == {"heartbeat.completeness"}
    assert "n5 crashed" in violations[-1].description


def test_detector_that_declares_dead_too_early_breaks_accuracy() -> None:
    # The actors use dead_after 0.005 s while the promise is checked for 3 s.
    hasty = hb.HeartbeatConfig(interval=1.0, suspect_after=0.004, dead_after=0.005)
    violations = run_with(hb.HeartbeatDetector, "heartbeat-partition.toml", hasty)
    assert any(v.checker == "heartbeat.accuracy" for v in violations)


class StaysDead(hb.HeartbeatDetector):
    """Broken: once dead, pongs never bring a peer back."""

    def receive(self, ctx: Context, msg: Any) -> None:
        if type(msg) is hb.Pong and ctx.sender is not None:
            peer = self._view.get(ctx.sender.node)
            if peer is not None and peer.state == hb.DEAD:
                return
        super().receive(ctx, msg)


def test_detector_that_never_revives_breaks_recovery() -> None:
    violations = run_with(StaysDead, "heartbeat-crash-restart.toml")
    assert {v.checker for v in violations} == {"heartbeat.recovery"}


def test_loss_means_no_accuracy_promise() -> None:
    sc = sim.load_scenario(Path(__file__).parents[2] / "scenarios" / "heartbeat-crash-restart.toml")
    lossy = dataclasses.replace(sc, network=dataclasses.replace(sc.network, loss=0.6), faults=())
    res = sim.run_scenario(lossy, 1)
    assert sim.detections(res)["peer.dead"] > 0  # false suspicions happen...
    assert res.violations == []  # ...and are not flagged
