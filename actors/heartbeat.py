"""Heartbeat failure detector: ping every peer, suspect on silence, declare dead on longer silence.

How it works
------------
Every ``interval`` seconds (node-local monotonic clock) the detector sends ``Ping(sent_at=now)``
to the heartbeat actor of every peer and, in the same tick, reviews each peer. A peer answers a
ping with ``Pong`` echoing ``sent_at``; a pong proves the peer was alive *after* that ping was
sent, so ``last_heard[peer] = max(last_heard[peer], pong.sent_at)``. Using our own send time
(not the arrival time, not the peer's clock) makes the rule immune to the peer's clock skew and
to network delay: a crashed peer answers no ping sent after its crash, so its ``last_heard`` is
at most the crash time.

At each tick, silence = ``now - last_heard``:
  - ``silence > dead_after``    -> DEAD    (event ``peer.dead``)
  - ``silence > suspect_after`` -> SUSPECT (event ``peer.suspect``)
  - a pong from a SUSPECT/DEAD peer -> ALIVE (event ``peer.alive``) at once, unless even
    with it the silence is still over ``dead_after``: a pong held up in the network (a clogged
    link, a long pause) answers a ping so old that it proves nothing about now, and reviving
    the peer on it would delay the next DEAD verdict past ``dead_after + interval``.

Promises (checked by ``sim.checkers``):
  - completeness: a peer that crashes at time T is declared dead by every live detector by
    ``T + dead_after + interval`` (the last answered ping left before T; one tick of granularity);
  - accuracy: with no loss, a peer that is up and reachable both ways answers every ping within
    the network delay, so it is never declared dead (given delay < dead_after - interval).

Defaults follow the references: heartbeat every 5 s, offline after 15 s; suspicion at 10 s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._actor import Actor, NodeBlueprint
from ._context import Context
from ._messages import ActorRef, message

NAME = "heartbeat"

ALIVE = "ALIVE"
SUSPECT = "SUSPECT"
DEAD = "DEAD"


# Ping and Pong are built once per peer and interval, so they set their slot directly rather than
# through the frozen dataclass's ``object.__setattr__`` (same trick as ``Send``, see ``_effects``);
# fields, eq, hash, repr and frozenness stay the dataclass's own.


@message("heartbeat.Ping")
@dataclass(frozen=True, slots=True, init=False)
class Ping:
    sent_at: float

    def __init__(self, sent_at: float) -> None:
        _set_ping_sent_at(self, sent_at)


_set_ping_sent_at = Ping.__dict__["sent_at"].__set__


@message("heartbeat.Pong")
@dataclass(frozen=True, slots=True, init=False)
class Pong:
    sent_at: float

    def __init__(self, sent_at: float) -> None:
        _set_pong_sent_at(self, sent_at)


_set_pong_sent_at = Pong.__dict__["sent_at"].__set__


@message("heartbeat.Tick")
@dataclass(frozen=True, slots=True)
class Tick:
    pass


@message("heartbeat.GetStatus")
@dataclass(frozen=True, slots=True)
class GetStatus:
    pass


@message("heartbeat.Status")
@dataclass(frozen=True, slots=True)
class Status:
    """Peer id -> ALIVE/SUSPECT/DEAD, as this node sees them."""

    peers: dict[str, str]


@dataclass(frozen=True, slots=True)
class HeartbeatConfig:
    """Timing of the detector, in seconds of the node's monotonic clock."""

    interval: float = 5.0
    suspect_after: float = 10.0
    dead_after: float = 15.0

    def __post_init__(self) -> None:
        if not self.interval > 0:
            raise ValueError(f"heartbeat interval must be > 0, got {self.interval}")
        if not 0 < self.suspect_after <= self.dead_after:
            raise ValueError(
                "heartbeat timeouts must satisfy 0 < suspect_after <= dead_after, got "
                f"suspect_after={self.suspect_after} dead_after={self.dead_after}"
            )


@dataclass(slots=True)
class _Peer:
    ref: ActorRef
    last_heard: float
    state: str = ALIVE


@dataclass
class HeartbeatDetector(Actor):
    """Failure detector over a fixed set of peers (node ids, not including self)."""

    peers: tuple[str, ...]
    config: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    _view: dict[str, _Peer] = field(default_factory=dict, init=False)

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        # Every peer gets a full grace period from our start.
        now = ctx.now
        self._view = {p: _Peer(ActorRef(p, NAME), now) for p in self.peers if p != ctx.node_id}
        self._tick(ctx)

    def receive(self, ctx: Context, msg: Any) -> None:
        tp = type(msg)
        if tp is Ping:
            ctx.reply(Pong(msg.sent_at))
        elif tp is Pong:
            sender = ctx.sender
            peer = self._view.get(sender.node) if sender is not None else None
            if peer is not None:
                if msg.sent_at > peer.last_heard:
                    peer.last_heard = msg.sent_at
                if peer.state != ALIVE and ctx.now - peer.last_heard <= self.config.dead_after:
                    peer.state = ALIVE
                    ctx.emit("peer.alive", peer=sender.node if sender else "")
        elif tp is Tick:
            self._tick(ctx)
        elif tp is GetStatus:
            ctx.reply(self.status())

    def status(self) -> Status:
        """The current view of every peer."""
        return Status({p: v.state for p, v in self._view.items()})

    def _tick(self, ctx: Context) -> None:
        now = ctx.now
        cfg = self.config
        ping = Ping(now)
        for node, peer in self._view.items():
            silence = now - peer.last_heard
            if silence > cfg.dead_after:
                if peer.state != DEAD:
                    peer.state = DEAD
                    ctx.emit("peer.dead", peer=node, silence=round(silence, 6))
            elif silence > cfg.suspect_after and peer.state == ALIVE:
                peer.state = SUSPECT
                ctx.emit("peer.suspect", peer=node, silence=round(silence, 6))
            ctx.send(peer.ref, ping)
        ctx.set_timer("tick", cfg.interval, Tick())


def blueprint(peers: tuple[str, ...], config: HeartbeatConfig | None = None) -> NodeBlueprint:
    """A :data:`~actors.NodeBlueprint` running one detector per node over ``peers``."""
    cfg = config or HeartbeatConfig()

    def build(node_id: str) -> dict[str, Actor]:
        return {NAME: HeartbeatDetector(tuple(p for p in peers if p != node_id), cfg)}

    return build
