"""The gossip election in the simulator: its scenarios pass, and its checkers catch broken
variants of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import sim
from actors import Actor, ActorRef, Context
from actors.elections import NAME, Leave
from actors.elections._swim_messages import Ack, SuspicionTimeout, Update
from actors.elections.gossip import GossipConfig, GossipElection, blueprint
from sim.checkers_gossip import agreement_deadline, check_gossip, completeness_bound

SCENARIOS = sorted((Path(__file__).parents[2] / "scenarios").glob("gossip-*.toml"))
LAN = sim.NetworkConfig(latency=sim.Uniform(0.001, 0.010))


def test_every_listed_scenario_exists() -> None:
    names = {p.stem for p in SCENARIOS}
    assert {
        "gossip-leader-crash",
        "gossip-partition",
        "gossip-flapping",
        "gossip-clock-skew",
        "gossip-leader-pause",
        "gossip-loss",
    } <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_scenarios_have_no_violations_and_reach_agreement(path: Path, seed: int) -> None:
    sc = sim.load_scenario(path)
    res = sim.run_scenario(sc, seed)
    assert res.violations == [], [str(v) for v in res.violations]
    # The agreement promise was actually due inside the run
    assert agreement_deadline(res, sc.params) is not None
    assert "gossip.false_positives" in res.stats


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenarios_are_deterministic(path: Path) -> None:
    assert sim.check_determinism(path, 5).identical


def run(
    actor: type[GossipElection],
    nodes: tuple[str, ...],
    until: float,
    faults: tuple[sim.Fault, ...] = (),
    config: GossipConfig | None = None,
    seed: int = 1,
) -> sim.RunResult:
    cfg = config or GossipConfig()

    def build(node: str) -> dict[str, Actor]:
        return {NAME: actor(nodes, cfg)}

    s = sim.Simulation(build, list(nodes), seed=seed, network=LAN)
    for f in faults:
        s.schedule(f)
    return s.run(until)


FIVE = ("n1", "n2", "n3", "n4", "n5")


def kinds(res: sim.RunResult, kind: str, member: str | None = None) -> list[sim.Emitted]:
    return [e for e in res.emitted if e.kind == kind and (member is None or e.fields.get("member") == member)]


def test_indirect_probes_rescue_a_member_behind_a_one_way_block() -> None:
    # Given n1 -> n3 blocked for the whole run (n1's pings to n3 are lost)
    faults = (sim.Fault(0.5, "block", src="n1", dst="n3"),)
    # When n1 probes n3, expect helpers to relay n3's acks: nobody ever suspects n3
    res = run(GossipElection, FIVE, 60.0, faults)
    assert kinds(res, "member.suspect") == []
    # And without helpers (k = 0), expect n1 to suspect n3 first; n3 refutes and stays alive
    res = run(GossipElection, FIVE, 60.0, faults, GossipConfig(indirect_checks=0))
    suspicions = kinds(res, "member.suspect", "n3")
    assert suspicions and suspicions[0].node == "n1"
    assert kinds(res, "member.refute", "n3") and kinds(res, "member.dead", "n3") == []


def test_crashed_member_is_declared_dead_by_all_within_the_bound() -> None:
    cfg = GossipConfig()
    res = run(GossipElection, FIVE, 80.0, (sim.Fault(20.0, "crash", node="n4"),), cfg)
    dead = {e.node: e.t for e in kinds(res, "member.dead", "n4")}
    assert set(dead) == {"n1", "n2", "n3", "n5"}
    assert max(dead.values()) - 20.0 < completeness_bound(cfg, 5)
    # Lifeguard: several accusers shorten the wait to about the minimum suspicion (4 s)
    assert max(dead.values()) - 20.0 < cfg.suspicion_min(5) + 4 * cfg.interval
    assert check_gossip(res, cfg) == []


def test_leader_agreement_after_convergence_with_priorities() -> None:
    cfg = GossipConfig(leader_rule="highest_priority", priorities={"n3": 9, "n5": 4})
    res = run(GossipElection, FIVE, 60.0, (sim.Fault(10.0, "crash", node="n3"),), cfg)
    final = {
        n: [e for e in res.emitted if e.node == n and e.kind == "leader.changed"][-1]
        for n in FIVE
        if n != "n3"
    }
    assert {e.fields["leader"] for e in final.values()} == {"n5"}
    assert len({e.fields["epoch"] for e in final.values()}) == 1


def test_join_via_seed_spreads_the_new_member_to_everyone() -> None:
    # Given n5 started late (down until t=20) and joining through seed n1 only
    cfg = GossipConfig(seeds=("n1",))
    faults = (sim.Fault(0.0, "crash", node="n5"), sim.Fault(20.0, "restart", node="n5"))
    res = run(GossipElection, FIVE, 40.0, faults, cfg)
    known = {e.node: e.t for e in kinds(res, "member.alive", "n5") if e.t >= 20.0}
    assert set(known) == {"n1", "n2", "n3", "n4"}
    assert max(known.values()) - 20.0 < 5.0


def test_graceful_leave_is_known_to_all_and_not_a_false_positive() -> None:
    cfg = GossipConfig()
    s = sim.Simulation(blueprint(FIVE, cfg), list(FIVE), seed=3, network=LAN)
    s.inject(ActorRef("n1", NAME), Leave(), at=15.0)
    res = s.run(60.0)
    assert {e.node for e in kinds(res, "member.left", "n1")} == set(FIVE)
    assert kinds(res, "member.dead", "n1") == []
    leaders = {n: [e for e in res.emitted if e.node == n and e.kind == "leader.changed"][-1] for n in FIVE}
    assert leaders["n1"].fields["leader"] is None
    assert {leaders[n].fields["leader"] for n in FIVE if n != "n1"} == {"n2"}


# -- broken variants, each caught by its checker ----------------------------------------------------


class NeverDead(GossipElection):
    """Broken: suspicions never end."""

    def receive(self, ctx: Context, msg: Any) -> None:
        if type(msg) is not SuspicionTimeout:
            super().receive(ctx, msg)


class DeafToAcks(GossipElection):
    """Broken: ignores acks, so every probe fails."""

    def receive(self, ctx: Context, msg: Any) -> None:
        if type(msg) is not Ack:
            super().receive(ctx, msg)


class NoRefute(GossipElection):
    """Broken: never raises its incarnation to refute an accusation (nor to re-advertise)."""

    def _about_me(self, ctx: Context, u: Update) -> None:
        return

    def _readvertise(self, ctx: Context, epoch: int) -> None:
        self.epoch = epoch
        self._announce(ctx)


def run_scenario_with(actor: type[GossipElection], name: str, seed: int = 1) -> list[sim.Violation]:
    sc = sim.load_scenario(Path(__file__).parents[2] / "scenarios" / f"{name}.toml")

    def build(node: str) -> dict[str, Actor]:
        return {NAME: actor(sc.nodes, sc.params)}

    s = sim.Simulation(build, list(sc.nodes), seed=seed, network=sc.network, clocks=sc.clocks)
    for f in sc.faults:
        s.schedule(f)
    return check_gossip(s.run(sc.duration), sc.params)


def test_detector_that_never_declares_dead_breaks_completeness() -> None:
    violations = run_scenario_with(NeverDead, "gossip-leader-crash")
    assert "gossip.completeness" in {v.checker for v in violations}
    assert any("n1 crashed" in v.description for v in violations)


def test_detector_deaf_to_acks_breaks_accuracy() -> None:
    violations = run_scenario_with(DeafToAcks, "gossip-leader-crash")
    assert "gossip.accuracy" in {v.checker for v in violations}


def test_member_that_never_refutes_breaks_agreement() -> None:
    # After its pause n1 believes it leads, but the others hold it dead forever
    violations = run_scenario_with(NoRefute, "gossip-leader-pause")
    assert {v.checker for v in violations} == {"gossip.agreement"}
    assert any(v.node == "n1" or "rule picks n1" in v.description for v in violations)
