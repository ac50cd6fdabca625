"""Gossip (SWIM) election: its configuration and wire messages.

Every message that crosses the network carries ``updates`` (membership rumours piggybacked
from the sender's broadcast queue) and ``hint`` (the highest leader epoch the sender knows, see
``gossip.py``). Member states are the strings below; an :class:`Update` is one member's record
as the sender knows it, and the same record travels in full state exchanges (:class:`PushPull`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._messages import message
from ._common import ElectionConfig

ALIVE = "alive"
SUSPECT = "suspect"
DEAD = "dead"
LEFT = "left"
STATES = (ALIVE, SUSPECT, DEAD, LEFT)

LEADER_RULES = ("lowest_id", "highest_priority")


@dataclass(frozen=True, slots=True)
class GossipConfig(ElectionConfig):
    """Gossip settings: memberlist's LAN profile, with the reference's 1 s interval.

    Attributes (seconds of the node's monotonic clock unless said otherwise):
        election_timeout: how long a starting node waits for a seed to answer before it
            leads alone; also the reconnect interval: how often a node sends its state to
            one member it holds dead, so partitions heal (serf's reconnect, default 15 s).
        interval: the protocol period: one probe per period.
        probe_timeout: wait for a direct ack before asking ``indirect_checks`` helpers.
        indirect_checks: helpers asked to ping a target that missed its direct ack (k).
        suspicion_mult: the suspicion timeout is at least
            ``suspicion_mult * max(1, log10(n)) * interval``.
        suspicion_max_timeout_mult: with no confirmation the timeout is this many times the
            minimum; independent confirmations shorten it down to the minimum (Lifeguard).
        retransmit_mult: each rumour is piggybacked ``retransmit_mult * ceil(log10(n + 1))``
            times.
        awareness_max_multiplier: Lifeguard local health: a node that misses acks stretches
            its own probe interval and timeout up to this factor.
        push_pull_interval: full state exchange with one random member this often (scaled up
            for clusters over 32 nodes, as memberlist does); 0 turns it off.
        max_piggyback: at most this many rumours ride on one message.
        leader_rule: ``lowest_id`` (smallest node id) or ``highest_priority`` (``rank``).
    """

    election_timeout: float = 15.0
    interval: float = 1.0
    probe_timeout: float = 0.5
    indirect_checks: int = 3
    suspicion_mult: int = 4
    suspicion_max_timeout_mult: int = 6
    retransmit_mult: int = 4
    awareness_max_multiplier: int = 8
    push_pull_interval: float = 30.0
    max_piggyback: int = 16
    leader_rule: str = "lowest_id"

    def __post_init__(self) -> None:
        ElectionConfig.__post_init__(self)
        if not 0 < self.probe_timeout < self.interval:
            raise ValueError(
                f"gossip probe_timeout must be in (0, interval={self.interval}), got {self.probe_timeout}"
            )
        for name in ("suspicion_mult", "suspicion_max_timeout_mult", "retransmit_mult"):
            if getattr(self, name) < 1:
                raise ValueError(f"gossip {name} must be >= 1, got {getattr(self, name)}")
        if self.indirect_checks < 0:
            raise ValueError(f"gossip indirect_checks must be >= 0, got {self.indirect_checks}")
        if self.awareness_max_multiplier < 1:
            raise ValueError(
                f"gossip awareness_max_multiplier must be >= 1, got {self.awareness_max_multiplier}"
            )
        if self.push_pull_interval < 0:
            raise ValueError(f"gossip push_pull_interval must be >= 0, got {self.push_pull_interval}")
        if self.max_piggyback < 1:
            raise ValueError(f"gossip max_piggyback must be >= 1, got {self.max_piggyback}")
        if self.leader_rule not in LEADER_RULES:
            raise ValueError(
                f"gossip leader_rule must be one of {', '.join(LEADER_RULES)}, got {self.leader_rule!r}"
            )

    def suspicion_min(self, n: int) -> float:
        """Shortest suspicion timeout in a cluster of ``n`` (memberlist's suspicionTimeout)."""
        return self.suspicion_mult * max(1.0, math.log10(max(1, n))) * self.interval

    def suspicion_max(self, n: int) -> float:
        """Suspicion timeout with no independent confirmation."""
        return self.suspicion_max_timeout_mult * self.suspicion_min(n)

    def retransmit_limit(self, n: int) -> int:
        """How many times one rumour is piggybacked in a cluster of ``n``."""
        return self.retransmit_mult * max(1, math.ceil(math.log10(n + 1)))

    def push_pull_every(self, n: int) -> float:
        """memberlist's pushPullScale: x1 up to 32 nodes, +1 per doubling above."""
        if n <= 32:
            return self.push_pull_interval
        return self.push_pull_interval * (math.ceil(math.log2(n) - math.log2(32)) + 1)

    def detection_bound(self, n: int) -> float:
        """Local seconds within which every live member declares a crashed member dead on its
        own, whatever the network does (see ``gossip.py``, "Promises")."""
        slowest_period = self.interval * self.awareness_max_multiplier
        return (2 * n) * slowest_period + self.suspicion_max(n)


@message("gossip.Update")
@dataclass(frozen=True, slots=True)
class Update:
    """One member's record: ``state`` at ``incarnation``; ``epoch`` is the leader epoch the
    member advertised with that incarnation; ``origin`` is who produced the record (the
    accuser for suspect/dead, the member itself for alive/left)."""

    member: str
    state: str
    incarnation: int
    epoch: int
    origin: str


@message("gossip.Ping")
@dataclass(frozen=True, slots=True)
class Ping:
    """Are you alive? ``target`` is who the sender means (answer only if it is you)."""

    seq: int
    target: str
    updates: tuple[Update, ...]
    hint: int


@message("gossip.Ack")
@dataclass(frozen=True, slots=True)
class Ack:
    """Answer to :class:`Ping` ``seq`` (relayed unchanged in meaning by helpers)."""

    seq: int
    updates: tuple[Update, ...]
    hint: int


@message("gossip.PingReq")
@dataclass(frozen=True, slots=True)
class PingReq:
    """Please ping ``target`` for me and relay its ack as ``Ack(seq)`` (or ``Nack(seq)``)."""

    seq: int
    target: str
    updates: tuple[Update, ...]
    hint: int


@message("gossip.Nack")
@dataclass(frozen=True, slots=True)
class Nack:
    """A helper could not reach the target of :class:`PingReq` ``seq`` in time (Lifeguard:
    proof that the asker's own network works)."""

    seq: int
    updates: tuple[Update, ...]
    hint: int


@message("gossip.PushPull")
@dataclass(frozen=True, slots=True)
class PushPull:
    """Full state exchange: the receiver merges ``members`` and, unless ``reply``, answers
    with its own (merged) state. ``join`` marks a node's first contact."""

    members: tuple[Update, ...]
    join: bool
    reply: bool
    hint: int


@message("gossip.Gossip")
@dataclass(frozen=True, slots=True)
class Gossip:
    """Rumours sent on their own (a leaving node's farewell)."""

    updates: tuple[Update, ...]
    hint: int


@message("gossip.ProbeTick")
@dataclass(frozen=True, slots=True)
class ProbeTick:
    """Timer: end the current probe, start the next."""


@message("gossip.ProbeTimeout")
@dataclass(frozen=True, slots=True)
class ProbeTimeout:
    """Timer: the direct ack of probe ``seq`` is late; ask helpers."""

    seq: int


@message("gossip.RelayTimeout")
@dataclass(frozen=True, slots=True)
class RelayTimeout:
    """Timer: the target of a relayed probe ``seq`` (our sequence) did not answer."""

    seq: int


@message("gossip.SuspicionTimeout")
@dataclass(frozen=True, slots=True)
class SuspicionTimeout:
    """Timer: the suspicion of ``member`` at ``incarnation`` ran out."""

    member: str
    incarnation: int


@message("gossip.PushPullTick")
@dataclass(frozen=True, slots=True)
class PushPullTick:
    """Timer: periodic full state exchange."""


@message("gossip.ReconnectTick")
@dataclass(frozen=True, slots=True)
class ReconnectTick:
    """Timer: send our state to one member we hold dead (heals partitions)."""


@message("gossip.JoinTick")
@dataclass(frozen=True, slots=True)
class JoinTick:
    """Timer: no seed answered yet; try again (or, after ``election_timeout``, lead alone)."""
