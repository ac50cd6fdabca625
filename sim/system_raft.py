"""Simulation of Raft: scenario parameters, the blueprint (Raft plus a proposing client on every
node) and the checkers (registered in :data:`sim.systems.SYSTEMS` under ``"raft"``).

Scenario table (seconds; every key optional)::

    [raft]
    election_timeout = 0.15      # randomised in [t, 2t)
    interval = 0.05              # heartbeat / tick
    pre_vote = true
    check_quorum = true
    snapshot_threshold = 100     # 0: never snapshot
    max_entries_per_append = 64
    proposals = 5.0              # client proposals per second per node (0: none)
    members = ["n1", "n2", "n3"] # bootstrap voters (default: every node); others wait to join
    settle = 3.0                 # liveness: time after the last fault by which all agree

The client (actor ``raft-client``) proposes a unique string command every ``1/proposals``
seconds to the node it believes leads (starting with its own), follows ``leader_hint`` on a
refusal and tries a random node after a timeout; one proposal is outstanding at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from actors import Actor, ActorRef, Context, NodeBlueprint, message
from actors.elections import NAME
from actors.elections.raft import Propose, ProposeResult, Raft, RaftConfig

from .checkers_raft import check_raft
from .result import RunResult, Violation
from .scenario import Fields
from .systems import System, register_system

CLIENT = "raft-client"


@dataclass(frozen=True, slots=True)
class RaftSimConfig:
    """The ``[raft]`` table: the actor's config plus the simulated workload and checks."""

    raft: RaftConfig = field(default_factory=lambda: RaftConfig(election_timeout=0.15, interval=0.05))
    proposals: float = 5.0
    members: tuple[str, ...] | None = None
    settle: float = 3.0

    def __post_init__(self) -> None:
        if self.proposals < 0:
            raise ValueError(f"proposals must be >= 0 (per second per node), got {self.proposals}")
        if self.settle <= 0:
            raise ValueError(f"settle must be > 0, got {self.settle}")


@message("raftsim.ClientTick")
@dataclass(frozen=True, slots=True)
class ClientTick:
    """The client's timer."""


class ProposalClient(Actor):
    """Proposes ``"<node>.<nonce>.<seq>"`` every ``1 / rate`` seconds (see module docstring)."""

    def __init__(self, nodes: tuple[str, ...], rate: float, timeout: float) -> None:
        self.nodes = nodes
        self.period = 1.0 / rate
        self.timeout = timeout

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        self.target = ctx.node_id
        self.nonce = ctx.random.getrandbits(24)
        self.seq = 0
        self.outstanding: int | None = None
        self.sent_at = 0.0
        ctx.set_timer("propose", self.period * ctx.random.uniform(0.5, 1.5), ClientTick())

    def receive(self, ctx: Context, msg: Any) -> None:
        if type(msg) is ClientTick:
            if self.outstanding is not None and ctx.now - self.sent_at >= self.timeout:
                self.outstanding = None
                self.target = ctx.random.choice(self.nodes)
            if self.outstanding is None:
                self.seq += 1
                self.outstanding = self.seq
                self.sent_at = ctx.now
                cmd = f"{ctx.node_id}.{self.nonce:06x}.{self.seq}"
                ctx.send(ActorRef(self.target, NAME), Propose(cmd, self.seq))
            ctx.set_timer("propose", self.period, ClientTick())
        elif type(msg) is ProposeResult and msg.request == self.outstanding:
            self.outstanding = None
            if not msg.ok:
                self.target = msg.leader_hint or ctx.random.choice(self.nodes)


def parse(f: Fields) -> RaftSimConfig:
    """Read the ``[raft]`` table (see the module docstring)."""
    d = RaftSimConfig()
    r = d.raft
    kw: dict[str, Any] = {
        "election_timeout": f.number("election_timeout", r.election_timeout),
        "interval": f.number("interval", r.interval),
        "pre_vote": f.get("pre_vote", bool, r.pre_vote),
        "check_quorum": f.get("check_quorum", bool, r.check_quorum),
        "snapshot_threshold": f.get("snapshot_threshold", int, r.snapshot_threshold),
        "max_entries_per_append": f.get("max_entries_per_append", int, r.max_entries_per_append),
    }
    proposals = f.number("proposals", d.proposals)
    settle = f.number("settle", d.settle)
    members = f.get("members", list, None)
    if members is not None and (not members or not all(type(m) is str for m in members)):
        raise f.error("members", "expected a non-empty array of node ids")
    f.done()
    try:
        return RaftSimConfig(RaftConfig(**kw), proposals, tuple(members) if members else None, settle)
    except ValueError as e:
        raise f.error("", str(e)) from None


def blueprint(config: RaftSimConfig, nodes: tuple[str, ...]) -> NodeBlueprint:
    """Raft on every node, plus a proposing client when ``proposals > 0``."""
    members = config.members if config.members is not None else nodes
    timeout = 4 * config.raft.election_timeout

    def build(node_id: str) -> dict[str, Actor]:
        actors: dict[str, Actor] = {NAME: Raft(node_id, members if node_id in members else (), config.raft)}
        if config.proposals > 0:
            actors[CLIENT] = ProposalClient(nodes, config.proposals, timeout)
        return actors

    return build


def check(result: RunResult, config: RaftSimConfig) -> list[Violation]:
    """Every Raft checker (see :mod:`sim.checkers_raft`)."""
    return check_raft(result, config.members, config.settle, config.proposals > 0)


register_system(System("raft", parse, blueprint, check))
