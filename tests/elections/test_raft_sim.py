"""Raft in the simulator: elections, replication, faults, membership, snapshots, transfer.

Given / When / Expect, citing the Raft paper (§) and Ongaro's thesis.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import sim
from actors import Actor, ActorRef
from actors.elections import NAME
from actors.elections.raft import (
    LEADER,
    ChangeMembership,
    Raft,
    RaftConfig,
    TransferLeadership,
)
from sim.checkers_raft import check_raft
from sim.system_raft import CLIENT, ProposalClient

SCENARIOS = sorted((Path(__file__).parents[2] / "scenarios").glob("raft-*.toml"))
CFG = RaftConfig(election_timeout=0.15, interval=0.05, snapshot_threshold=0)
NET = sim.NetworkConfig(latency=sim.Uniform(0.005, 0.015))


def cluster(
    nodes: tuple[str, ...],
    *,
    cfg: RaftConfig = CFG,
    members: tuple[str, ...] | None = None,
    proposals: float = 5.0,
    seed: int = 1,
) -> sim.Simulation:
    boot = members or nodes

    def build(node: str) -> dict[str, Actor]:
        actors: dict[str, Actor] = {NAME: Raft(node, boot if node in boot else (), cfg)}
        if proposals:
            actors[CLIENT] = ProposalClient(boot, proposals, 0.6)
        return actors

    return sim.Simulation(build, nodes, seed=seed, network=NET)


def raft(s: sim.Simulation, node: str) -> Raft:
    actor = s.actor(node, NAME)
    assert isinstance(actor, Raft)
    return actor


def leaders(s: sim.Simulation) -> list[str]:
    return [n for n in s.nodes if s.node_state(n) == "up" and raft(s, n).role == LEADER]


def only_leader(s: sim.Simulation) -> str:
    found = leaders(s)
    assert len(found) == 1, found
    return found[0]


def kinds(res: sim.RunResult, kind: str) -> list[sim.Emitted]:
    return [e for e in res.emitted if e.kind == kind]


@pytest.mark.parametrize("n", [3, 5])
def test_5_2_one_leader_is_elected_and_every_node_follows_it(n: int) -> None:
    nodes = tuple(f"n{i}" for i in range(1, n + 1))
    s = cluster(nodes, proposals=0)
    res = s.run(2.0)
    leader = only_leader(s)
    assert {raft(s, m).leader for m in nodes} == {leader}
    assert check_raft(res, proposals=False) == []


def test_5_3_commands_commit_and_every_node_applies_them_in_order() -> None:
    s = cluster(("n1", "n2", "n3"))
    res = s.run(5.0)
    acks = kinds(res, "raft.ack")
    assert len(acks) > 30
    machines = [raft(s, n).machine for n in ("n1", "n2", "n3")]
    items = [m.snapshot()["items"] for m in machines]
    shortest = min(len(i) for i in items)
    assert shortest > 30 and all(i[:shortest] == items[0][:shortest] for i in items)
    assert check_raft(res) == []


def test_5_2_a_crashed_leader_is_replaced_and_commits_resume() -> None:
    s = cluster(("n1", "n2", "n3", "n4", "n5"))
    s.run(2.0)
    old = only_leader(s)
    s.schedule(sim.Fault(2.0, "crash", node=old))
    res = s.run(6.0)
    new = only_leader(s)
    assert new != old
    elected = [e for e in kinds(res, "leader.elected") if e.t > 2.0]
    assert elected and elected[0].t < 3.0
    assert any(e.t > 3.0 for e in kinds(res, "raft.ack"))
    assert check_raft(res) == []


def test_5_4_a_leader_cut_off_in_a_minority_commits_nothing_and_the_majority_moves_on() -> None:
    nodes = ("n1", "n2", "n3", "n4", "n5")
    s = cluster(nodes)
    s.run(2.0)
    old = only_leader(s)
    minority = (old, next(n for n in nodes if n != old))
    s.schedule(sim.Fault(2.0, "partition", groups=(minority, tuple(n for n in nodes if n not in minority))))
    res = s.run(4.0)
    assert not [e for e in kinds(res, "raft.ack") if e.node == old and e.t > 2.1]
    majority_leader = [n for n in leaders(s) if n not in minority]
    assert len(majority_leader) == 1
    s.schedule(sim.Fault(4.0, "heal"))
    res = s.run(7.0)
    assert only_leader(s) == majority_leader[0] or raft(s, old).role != LEADER
    assert check_raft(res) == []


@pytest.mark.parametrize("pre_vote", [True, False])
def test_9_6_pre_vote_keeps_a_partitioned_node_from_inflating_its_term(pre_vote: bool) -> None:
    nodes = ("n1", "n2", "n3")
    cfg = RaftConfig(election_timeout=0.15, interval=0.05, pre_vote=pre_vote, snapshot_threshold=0)
    s = cluster(nodes, cfg=cfg, proposals=0)
    s.run(1.0)
    leader = only_leader(s)
    lonely = next(n for n in nodes if n != leader)
    term = raft(s, leader).term
    s.schedule(sim.Fault(1.0, "partition", groups=((lonely,), tuple(n for n in nodes if n != lonely))))
    s.run(4.0)
    if pre_vote:
        assert raft(s, lonely).term == term  # it never got a pre-vote, so never campaigned
    else:
        assert raft(s, lonely).term > term + 5
    s.schedule(sim.Fault(4.0, "heal"))
    res = s.run(6.0)
    # With pre-vote, healing does not disturb the leader; without, the inflated term deposes it.
    if pre_vote:
        assert only_leader(s) == leader and raft(s, leader).term == term
    else:
        assert raft(s, only_leader(s)).term > term + 5
    assert check_raft(res, proposals=False) == []


def test_check_quorum_an_isolated_leader_steps_down() -> None:
    nodes = ("n1", "n2", "n3")
    s = cluster(nodes, proposals=0)
    s.run(1.0)
    leader = only_leader(s)
    s.schedule(sim.Fault(1.0, "partition", groups=((leader,), tuple(n for n in nodes if n != leader))))
    res = s.run(2.0)
    down = [e for e in kinds(res, "raft.stepdown") if e.node == leader]
    assert down and down[0].t < 1.0 + 2 * 0.15 + 0.05 + 1e-6
    assert raft(s, leader).role != LEADER


def test_3_10_leadership_transfer_hands_over_to_the_target() -> None:
    nodes = ("n1", "n2", "n3")
    s = cluster(nodes)
    s.run(2.0)
    leader = only_leader(s)
    target = next(n for n in nodes if n != leader)
    s.inject(ActorRef(leader, NAME), TransferLeadership(target), at=2.0)
    res = s.run(2.5)
    assert only_leader(s) == target
    assert [e.fields["target"] for e in kinds(res, "raft.transfer")] == [target]
    res = s.run(4.0)
    assert check_raft(res) == []


def test_4_1_a_node_joins_then_the_leader_removes_itself() -> None:
    # Given n1..n3 as the bootstrap voters and n4 running with an empty configuration
    nodes = ("n1", "n2", "n3", "n4")
    s = cluster(nodes, members=("n1", "n2", "n3"))
    s.run(2.0)
    leader = only_leader(s)
    assert raft(s, "n4").voters == ()
    # When n4 is added: it catches up, applies everything and counts as a voter
    s.inject(ActorRef(leader, NAME), ChangeMembership(add="n4"), at=2.0)
    res = s.run(3.0)
    assert all(raft(s, n).voters == nodes for n in nodes)
    assert raft(s, "n4").applied >= raft(s, leader).applied - 2
    # When the leader removes itself: it steps down once the change commits, and another leads
    s.inject(ActorRef(leader, NAME), ChangeMembership(remove=leader), at=3.0)
    res = s.run(5.0)
    new = only_leader(s)
    assert new != leader and leader not in raft(s, new).voters
    assert [e.node for e in kinds(res, "raft.removed")] == [leader]
    assert len(kinds(res, "raft.ack")) > 0
    assert check_raft(res, members=tuple(n for n in nodes if n != leader), settle=4.0) == []


def test_7_a_lagging_node_gets_a_snapshot_and_state_survives_restarts() -> None:
    nodes = ("n1", "n2", "n3")
    cfg = RaftConfig(election_timeout=0.15, interval=0.05, snapshot_threshold=20)
    s = cluster(nodes, cfg=cfg, proposals=10.0)
    s.run(1.0)
    leader = only_leader(s)
    lagging = next(n for n in nodes if n != leader)
    s.schedule(sim.Fault(1.0, "crash", node=lagging))
    s.schedule(sim.Fault(5.0, "restart", node=lagging))
    res = s.run(7.0)
    installs = [e for e in kinds(res, "raft.install") if e.node == lagging]
    assert installs, "the restarted node was behind the leader's first index"
    assert [e for e in kinds(res, "raft.snapshot") if e.node == leader]
    lag = raft(s, lagging)
    assert lag.applied > installs[0].fields["index"]
    assert lag.machine.snapshot()["items"][:50] == raft(s, leader).machine.snapshot()["items"][:50]
    assert check_raft(res) == []


def test_figure_2_term_vote_and_log_survive_a_crash() -> None:
    nodes = ("n1", "n2", "n3")
    s = cluster(nodes)
    s.run(2.0)
    node = next(n for n in nodes if raft(s, n).role != LEADER)
    before = raft(s, node)
    term, vote, last = before.term, before.vote, before.log.last_index
    s.schedule(sim.Fault(2.0, "crash", node=node))
    s.schedule(sim.Fault(2.0, "restart", node=node))
    s.run(2.0)
    after = raft(s, node)
    assert after is not before
    assert (after.term, after.vote) == (term, vote)
    assert after.log.last_index == last
    res = s.run(4.0)
    assert check_raft(res) == []


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenarios_have_no_violations(path: Path) -> None:
    res = sim.run_scenario(path, 1)
    assert res.violations == [], [str(v) for v in res.violations]
    assert kinds(res, "raft.ack")


def test_a_raft_scenario_is_deterministic() -> None:
    report = sim.check_determinism(SCENARIOS[0], 3)
    assert report.identical
