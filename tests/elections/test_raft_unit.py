"""Raft's state machine fed messages directly through a Context (no simulator).

Each test reads as a specification: Given a node in some state, When a message arrives,
Expect these effects. References are to the Raft paper (Ongaro & Ousterhout 2014) and
Ongaro's thesis (2014).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from actors import ActorRef, Context, Emit, Persist, Send, Sync
from actors.elections import NAME, GetLeader, Leader
from actors.elections.raft import (
    CANDIDATE,
    FOLLOWER,
    LEADER,
    PRE_CANDIDATE,
    AppendEntries,
    AppendResponse,
    Entry,
    KVMachine,
    Propose,
    ProposeResult,
    Raft,
    RaftConfig,
    RequestVote,
    Tick,
    VoteResponse,
)

CFG = RaftConfig(election_timeout=1.0, interval=0.1)
NODES = ("n1", "n2", "n3")


def ref(node: str) -> ActorRef:
    return ActorRef(node, NAME)


class Node:
    """A Raft actor with its own Context and a clock the test moves."""

    def __init__(self, node: str = "n1", durable: dict[str, Any] | None = None, cfg: RaftConfig = CFG):
        self.raft = Raft(node, NODES, cfg)
        self.ctx = Context(ref(node), random.Random(1), now=100.0)
        self.raft.on_start(self.ctx, durable or {})
        self.ctx.take_effects()

    def deliver(self, msg: Any, frm: str = "n2", now: float | None = None) -> list[Any]:
        if now is not None:
            self.ctx.now = now
        self.ctx.sender = ref(frm) if frm != "$client" else ActorRef(self.raft.id, "$client")
        self.raft.receive(self.ctx, msg)
        return self.ctx.take_effects()

    def tick_until(self, now: float) -> list[Any]:
        self.ctx.sender = self.ctx.self_ref
        self.ctx.now = now
        self.raft.receive(self.ctx, Tick())
        return self.ctx.take_effects()


def sends(effects: list[Any]) -> list[tuple[str, Any]]:
    return [(e.to.node, e.msg) for e in effects if isinstance(e, Send)]


def emitted(effects: list[Any], kind: str) -> list[dict[str, Any]]:
    return [e.fields for e in effects if isinstance(e, Emit) and e.kind == kind]


def make_leader(node: Node) -> None:
    """Drive ``node`` through pre-vote and vote to leadership of term 1."""
    node.tick_until(110.0)
    assert node.raft.role == PRE_CANDIDATE
    node.deliver(VoteResponse(1, True, pre_vote=True), frm="n2", now=110.01)
    assert node.raft.role == CANDIDATE
    node.deliver(VoteResponse(1, True), frm="n2", now=110.02)
    assert node.raft.role == LEADER


def test_config_errors_are_one_line_value_errors() -> None:
    with pytest.raises(ValueError, match=r"interval .* must be < election_timeout"):
        RaftConfig(election_timeout=0.1, interval=0.2)
    with pytest.raises(ValueError, match="snapshot_threshold"):
        RaftConfig(snapshot_threshold=-1)
    with pytest.raises(ValueError, match="max_entries_per_append"):
        RaftConfig(max_entries_per_append=0)


def test_5_2_follower_grants_one_vote_per_term_and_syncs_it_before_answering() -> None:
    # Given a fresh follower, When two candidates ask for term 1 votes
    n = Node()
    first = n.deliver(RequestVote(1, 0, 0), frm="n2")
    second = n.deliver(RequestVote(1, 0, 0), frm="n3")
    # Expect the vote durable (persist, sync) before the grant is sent, and no second grant
    persist = next(i for i, e in enumerate(first) if isinstance(e, Persist) and e.value == [1, "n2"])
    sync = max(i for i, e in enumerate(first) if isinstance(e, Sync))
    send = next(i for i, e in enumerate(first) if isinstance(e, Send))
    assert persist < sync < send
    assert sends(first) == [("n2", VoteResponse(1, True))]
    assert sends(second) == [("n3", VoteResponse(1, False))]
    # and the same candidate asking again gets the same answer
    assert sends(n.deliver(RequestVote(1, 0, 0), frm="n2")) == [("n2", VoteResponse(1, True))]


def test_5_4_1_vote_denied_to_a_candidate_with_a_less_up_to_date_log() -> None:
    n = Node(durable={"meta": [2, None], "log/1": [2, "cmd", "a"]})
    assert sends(n.deliver(RequestVote(3, 5, 1), frm="n2")) == [("n2", VoteResponse(3, False))]
    assert n.raft.term == 3  # the higher term is still adopted (§5.1)
    assert sends(n.deliver(RequestVote(3, 1, 2), frm="n3")) == [("n3", VoteResponse(3, True))]


def test_5_1_a_stale_term_is_rejected_and_a_higher_term_adopted_durably() -> None:
    n = Node(durable={"meta": [5, None]})
    out = n.deliver(AppendEntries(4, 0, 0, (), 0), frm="n2")
    assert sends(out) == [("n2", AppendResponse(5, False))]
    out = n.deliver(AppendEntries(7, 0, 0, (), 0), frm="n3")
    assert Persist("meta", [7, None]) in out
    assert n.raft.term == 7 and n.raft.leader == "n3"


def test_9_6_pre_vote_changes_no_term_and_is_ignored_within_a_leader_lease() -> None:
    # Given a follower that just heard from leader n2 in term 1
    n = Node()
    n.deliver(AppendEntries(1, 0, 0, (), 0), frm="n2", now=100.0)
    # When n3 asks for a pre-vote for term 2 within the lease: ignored
    assert n.deliver(RequestVote(2, 0, 0, pre_vote=True), frm="n3", now=100.5) == []
    # After the lease, the pre-vote is granted but the term does not move
    out = n.deliver(RequestVote(2, 0, 0, pre_vote=True), frm="n3", now=101.5)
    assert sends(out) == [("n3", VoteResponse(2, True, pre_vote=True))]
    assert n.raft.term == 1
    assert not [e for e in out if isinstance(e, Persist)]


def test_9_6_an_election_timeout_starts_a_pre_vote_at_term_plus_one() -> None:
    n = Node()
    out = n.tick_until(110.0)
    assert n.raft.role == PRE_CANDIDATE and n.raft.term == 0
    assert sorted(sends(out)) == [(p, RequestVote(1, 0, 0, pre_vote=True)) for p in ("n2", "n3")]


def test_5_2_majority_of_votes_makes_a_leader_that_appends_a_noop_and_replicates_it() -> None:
    n = Node()
    make_leader(n)
    assert n.raft.term == 1 and n.raft.log.last_index == 1
    assert n.raft.log.entry(1) == Entry(1, 1, "noop", None)
    out = n.deliver(AppendResponse(1, True, 1), frm="n2")
    assert n.raft.commit == 1
    assert emitted(out, "raft.commit") == [{"term": 1, "first": 1, "entries": [[1, None]]}]


def test_5_3_follower_rejects_a_gap_with_a_hint_and_the_leader_jumps_back() -> None:
    # Given a follower with entries of terms 1, 1, 2 at indexes 1..3
    durable = {
        "meta": [3, None],
        "log/1": [1, "cmd", "a"],
        "log/2": [1, "cmd", "b"],
        "log/3": [2, "cmd", "c"],
    }
    n = Node(durable=durable)
    # When a leader of term 3 sends entries after (3, term 3)
    out = n.deliver(AppendEntries(3, 3, 3, (), 0), frm="n2")
    # Expect a reject naming the conflicting term 2 and its first index 3
    assert sends(out) == [("n2", AppendResponse(3, False, 0, 3, 3, 2))]
    # When it sends past the end: the hint is last index + 1
    out = n.deliver(AppendEntries(3, 9, 3, (), 0), frm="n2")
    assert sends(out) == [("n2", AppendResponse(3, False, 0, 9, 4, 0))]


def test_5_3_conflicting_suffix_is_truncated_and_replaced_durably_before_the_answer() -> None:
    durable = {
        "meta": [3, None],
        "log/1": [1, "cmd", "a"],
        "log/2": [2, "cmd", "b"],
        "log/3": [2, "cmd", "c"],
    }
    n = Node(durable=durable)
    out = n.deliver(AppendEntries(3, 1, 1, (Entry(2, 3, "cmd", "x"),), 2), frm="n2")
    assert Persist("log/3", None) in out and Persist("log/2", [3, "cmd", "x"]) in out
    assert [type(e) for e in out].index(Sync) < [type(e) for e in out].index(Send)
    assert n.raft.log.last_index == 2 and n.raft.log.entry(2).data == "x"
    assert sends(out)[0] == ("n2", AppendResponse(3, True, 2))
    assert n.raft.commit == 2 and n.raft.applied == 2
    assert isinstance(n.raft.machine, KVMachine) and n.raft.machine.items == ["a", "x"]


def test_5_4_2_leader_never_commits_an_old_term_entry_by_counting_replicas() -> None:
    # Figure 8: a leader of term 3 holding an uncommitted entry of term 1 replicated on a majority
    n = Node(durable={"meta": [2, None], "log/1": [1, "cmd", "old"]})
    n.tick_until(110.0)
    n.deliver(VoteResponse(3, True, pre_vote=True), frm="n2")
    n.deliver(VoteResponse(3, True), frm="n2")
    assert n.raft.role == LEADER and n.raft.term == 3
    n.deliver(AppendResponse(3, True, 1), frm="n2")  # n2 has index 1 (term 1) only
    assert n.raft.commit == 0
    n.deliver(AppendResponse(3, True, 2), frm="n2")  # now the term-3 no-op is on a majority
    assert n.raft.commit == 2


def test_propose_on_a_follower_is_refused_with_a_leader_hint() -> None:
    n = Node()
    n.deliver(AppendEntries(1, 0, 0, (), 0), frm="n2")
    out = n.deliver(Propose("x", request=7), frm="$client")
    assert [e.msg for e in out if isinstance(e, Send)] == [
        ProposeResult(False, 0, 1, "n2", 7, None, "not leader")
    ]
    assert [e.msg for e in n.deliver(GetLeader(), frm="$client") if isinstance(e, Send)] == [
        Leader("n2", 1, "n1")
    ]


def test_propose_on_the_leader_answers_after_commit_and_apply() -> None:
    n = Node()
    make_leader(n)
    n.deliver(AppendResponse(1, True, 1), frm="n2")
    out = n.deliver(Propose(["set", "k", 1], request=3), frm="$client")
    assert Persist("log/2", [1, "cmd", ["set", "k", 1]]) in out
    assert not [e for e in out if isinstance(e, Send) and isinstance(e.msg, ProposeResult)]
    out = n.deliver(AppendResponse(1, True, 2), frm="n3")
    assert [e.msg for e in out if isinstance(e, Send) and e.to.name == "$client"] == [
        ProposeResult(True, 2, 1, "n1", 3, None)
    ]


def test_check_quorum_leader_steps_down_without_a_majority() -> None:
    n = Node()
    make_leader(n)
    n.tick_until(110.5)
    assert n.raft.role == LEADER
    out = n.tick_until(111.2)
    assert n.raft.role == FOLLOWER
    assert emitted(out, "raft.stepdown")[0]["reason"] == "check-quorum"


def test_durable_state_is_restored_on_start() -> None:
    durable = {
        "meta": [4, "n3"],
        "snapshot": {"index": 2, "term": 1, "voters": ["n1", "n2", "n3"], "data": KVMachine().snapshot()},
        "log/3": [4, "cmd", "c"],
    }
    n = Node(durable=durable)
    r = n.raft
    assert (r.term, r.vote) == (4, "n3")
    assert (r.log.first_index, r.log.last_index, r.log.last_term) == (3, 3, 4)
    assert r.commit == r.applied == 2
    # the restored vote still binds: another candidate of term 4 is refused
    assert sends(n.deliver(RequestVote(4, 9, 9), frm="n2")) == [("n2", VoteResponse(4, False))]
