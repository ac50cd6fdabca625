"""The Raft checkers catch deliberately broken Rafts (and stay silent on the real one).

Each variant breaks one rule of Figure 2 and runs in a shipped fault scenario; the checker
guarding the matching property of Figure 3 must report it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sim
from actors import Actor, Context
from actors.elections import NAME
from actors.elections.raft import LEADER, Raft, RequestVote, VoteResponse
from sim.system_raft import CLIENT, ProposalClient, RaftSimConfig

SCENARIOS = Path(__file__).parents[2] / "scenarios"


class VotesForEveryone(Raft):
    """Broken §5.2: grants a vote to every candidate with an up-to-date log, even after voting."""

    def _on_request_vote(self, ctx: Context, m: RequestVote, frm: str) -> None:
        up_to_date = (m.last_term, m.last_index) >= (self.log.last_term, self.log.last_index)
        if not m.pre_vote and up_to_date:
            ctx.reply(VoteResponse(m.term, True))
        else:
            super()._on_request_vote(ctx, m, frm)


class CommitsWithoutMajority(Raft):
    """Broken §5.4.2: a leader commits whatever it has appended, replicated or not."""

    def _maybe_commit(self, ctx: Context) -> None:
        if self.role == LEADER and self.log.last_index > self.commit:
            for pr in self.progress.values():
                pr.match = max(pr.match, self.log.last_index)
            super()._maybe_commit(ctx)


class ForgetsItsLog(Raft):
    """Broken Figure 2 durability: after a restart only term and vote come back, not the log."""

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        super().on_start(ctx, {k: v for k, v in durable.items() if k == "meta"})


class CampaignsOnlyOnce(Raft):
    """Broken liveness: nobody campaigns again once a first leader was elected."""

    def campaign(self, ctx: Context, pre_vote: bool, transfer: bool = False) -> None:
        if self.term < 2:
            super().campaign(ctx, pre_vote, transfer)
        else:
            self._reset_election_timer(ctx)


def run_variant(cls: type[Raft], scenario: str, seed: int) -> list[sim.Violation]:
    sc = sim.load_scenario(SCENARIOS / scenario)
    params: RaftSimConfig = sc.params
    nodes = sc.nodes

    def build(node: str) -> dict[str, Actor]:
        return {
            NAME: cls(node, nodes, params.raft),
            CLIENT: ProposalClient(nodes, params.proposals, 4 * params.raft.election_timeout),
        }

    s = sim.Simulation(build, nodes, seed=seed, network=sc.network, clocks=sc.clocks, codec_checks=False)
    for f in sc.faults:
        s.schedule(f)
    return sim.SYSTEMS["raft"].check(s.run(sc.duration), params)


def first_caught(cls: type[Raft], scenario: str, seeds: range) -> set[str]:
    for seed in seeds:
        found = run_variant(cls, scenario, seed)
        if found:
            return {v.checker for v in found}
    return set()


def test_the_real_raft_passes_where_the_variants_fail() -> None:
    assert run_variant(Raft, "raft-partition-minority.toml", 1) == []


def test_double_votes_break_election_safety() -> None:
    caught = first_caught(VotesForEveryone, "raft-partition-majority.toml", range(1, 30))
    assert "raft.election_safety" in caught


def test_committing_without_a_majority_breaks_state_machine_safety_and_completeness() -> None:
    caught = first_caught(CommitsWithoutMajority, "raft-partition-minority.toml", range(1, 10))
    assert {"raft.state_machine_safety", "raft.leader_completeness", "raft.durability"} <= caught


def test_forgetting_the_log_on_restart_loses_acknowledged_commands() -> None:
    caught = first_caught(ForgetsItsLog, "raft-restart-unsynced.toml", range(1, 10))
    assert "raft.durability" in caught


def test_a_cluster_that_stops_campaigning_breaks_liveness() -> None:
    assert "raft.liveness" in first_caught(CampaignsOnlyOnce, "raft-leader-crash.toml", range(1, 10))
