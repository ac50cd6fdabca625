"""Gossip leader election: SWIM membership with memberlist's Lifeguard refinements, and a leader
chosen by a deterministic rule over the alive view.

How it works
------------
Failure detection (SWIM). Every protocol period (``interval``, stretched by local health) a
node probes one member, round-robin over a list reshuffled each round: ``Ping``; no ``Ack``
within ``probe_timeout`` -> ``PingReq`` to ``indirect_checks`` alive members, who ping the
target and relay its ack (or send a ``Nack`` if it stays silent). No ack by the end of the
period -> the node broadcasts ``suspect(target, incarnation)``. Every member hearing a
suspicion starts its own Lifeguard timer (``suspicion_min .. suspicion_max`` of the config,
shortened by each independent accuser); when it runs out the member is declared ``dead``.
A member hearing that it is suspected (or dead) refutes: it raises its incarnation and
broadcasts ``alive``, which overrides the accusation (see ``_swim_state`` for precedence).

Dissemination. Every rumour this node accepts is queued and piggybacked on its next Ping,
Ack, PingReq and Nack messages, ``retransmit_limit(n)`` times each. Full state exchanges
(``PushPull``) happen on join (with seeds), every ``push_pull_interval`` with a random member,
and every ``election_timeout`` with a random member held dead (reconnect: after a partition
heals, both sides learn they were declared dead, refute, and merge again). In a received full
state, ``dead`` is read as ``suspect`` (memberlist), so the accused gets a chance to refute.

Local health (Lifeguard). A score in ``[0, awareness_max_multiplier - 1]``: +1 per missing
nack of a failed probe (+1 if it had no helpers), +1 when refuting a suspicion of itself, -1
per successful probe; the probe interval and timeout are multiplied by ``score + 1``.

Leader. The leader is ``min`` (``lowest_id``) or ``max`` by ``config.rank``
(``highest_priority``) over this node and every member it holds alive or suspect; None until
the node has joined (a seed answered, or ``election_timeout`` passed with none answering).

Epochs. Each node keeps ``epoch``, persisted: on every change of its leader view it becomes
``max(epoch + 1, the new leader's advertised epoch)`` (a node that becomes leader itself uses
the largest epoch it has heard of instead). Every message carries ``hint``, the largest epoch
the sender knows; a leader hearing a hint above its epoch adopts it and re-advertises (a new
incarnation of its ``alive`` record carries the epoch); a follower whose leader advertises
more than its own epoch adopts it. So epochs only grow, and once the views stop changing,
everyone's epoch rises to the cluster-wide maximum and stays there: they agree.

Promises (checked by ``sim.checkers_gossip``):
  - completeness: a crashed member is declared dead by every live member within
    ``config.detection_bound(n)`` of its own clock, whatever the network does: a member probes
    every other member at least once in ``2n`` of its (at most ``awareness_max_multiplier``
    times stretched) periods, and a suspicion not refuted ends in at most ``suspicion_max``;
    gossip only makes it sooner;
  - accuracy: with no loss, no partition and no pause, a probe of a live member is acked
    within the probe timeout (given round trips below it), so no live member is suspected;
  - agreement: once faults stop, views converge, and every live node names the same leader
    (the rule over the live members) with the same epoch.

Defaults are memberlist's LAN profile with the reference's 1 s period.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._actor import Actor, NodeBlueprint
from .._context import Context
from .._messages import ActorRef
from ._common import NAME, GetLeader, Leader, LeaderChanged, Leave, Subscribe
from ._swim_messages import (
    ALIVE,
    DEAD,
    LEFT,
    SUSPECT,
    Ack,
    Gossip,
    GossipConfig,
    JoinTick,
    Nack,
    Ping,
    PingReq,
    ProbeTick,
    ProbeTimeout,
    PushPull,
    PushPullTick,
    ReconnectTick,
    RelayTimeout,
    SuspicionTimeout,
    Update,
)
from ._swim_state import IN_VIEW, BroadcastQueue, Suspicion, Table

__all__ = ["NAME", "GossipConfig", "GossipElection", "blueprint"]

JOIN_FANOUT = 3
"""Seeds contacted at once when joining."""

_EVENT = {ALIVE: "member.alive", SUSPECT: "member.suspect", DEAD: "member.dead", LEFT: "member.left"}


@dataclass(slots=True)
class _Probe:
    seq: int
    target: str
    acked: bool = False
    helpers: int = 0
    nacks: int = 0


class GossipElection(Actor):
    """One node's SWIM member and leader view (see the module docstring)."""

    def __init__(self, nodes: tuple[str, ...], config: GossipConfig | None = None):
        self.nodes = nodes
        self.config = config or GossipConfig()
        self.table = Table()
        self.queue = BroadcastQueue()
        self.suspicions: dict[str, Suspicion] = {}
        self.subscribers: list[ActorRef] = []
        self.incarnation = 0
        self.epoch = 0
        self.max_hint = 0
        self.leader: str | None = None
        self.joined = False
        self.left = False
        self.health = 0
        self.started_at = 0.0
        self.node_id = ""
        self._seq = 0
        self._probe: _Probe | None = None
        self._round: list[str] = []
        self._round_pos = 0
        self._relays: dict[int, tuple[ActorRef, int]] = {}
        self._handlers: dict[type[Any], Any] = {
            Ping: self._on_ping,
            Ack: self._on_ack,
            PingReq: self._on_ping_req,
            Nack: self._on_nack,
            PushPull: self._on_push_pull,
            Gossip: self._on_gossip,
            ProbeTick: self._on_probe_tick,
            ProbeTimeout: self._on_probe_timeout,
            RelayTimeout: self._on_relay_timeout,
            SuspicionTimeout: self._on_suspicion_timeout,
            PushPullTick: self._on_push_pull_tick,
            ReconnectTick: self._on_reconnect_tick,
            JoinTick: self._on_join_tick,
            GetLeader: self._on_get_leader,
            Subscribe: self._on_subscribe,
            Leave: self._on_leave,
        }

    # -- lifecycle ------------------------------------------------------------------------------

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        self.node_id = ctx.node_id
        self.incarnation = int(durable.get("incarnation", 0))
        self.epoch = self.max_hint = int(durable.get("epoch", 0))
        self.started_at = ctx.now
        cfg = self.config
        ctx.set_timer("probe", ctx.random.uniform(0.0, cfg.interval), ProbeTick())
        if cfg.push_pull_interval > 0:
            ctx.set_timer("push-pull", cfg.push_pull_interval, PushPullTick())
        ctx.set_timer("reconnect", cfg.election_timeout, ReconnectTick())
        if not self._seeds():
            self._set_joined(ctx)
        else:
            self._contact_seeds(ctx)
            ctx.set_timer("join", 2 * cfg.interval, JoinTick())

    def on_stop(self, ctx: Context) -> None:
        self._leave(ctx)

    def receive(self, ctx: Context, msg: Any) -> None:
        handler = self._handlers.get(type(msg))
        if handler is None:
            return
        if self.left and type(msg) not in (GetLeader, Subscribe):
            return
        handler(ctx, msg)

    # -- queries --------------------------------------------------------------------------------

    def view(self) -> dict[str, str]:
        """Member -> state, as this node sees them (itself included)."""
        out = {m: r.state for m, r in self.table.records.items()}
        out[self.node_id] = LEFT if self.left else ALIVE
        return out

    def cluster_size(self) -> int:
        """Members this node counts (alive or suspect, itself included): memberlist's n."""
        return self.table.in_view + 1

    def _on_get_leader(self, ctx: Context, msg: GetLeader) -> None:
        ctx.reply(Leader(self.leader, self.epoch, self.node_id))

    def _on_subscribe(self, ctx: Context, msg: Subscribe) -> None:
        if ctx.sender is not None and ctx.sender not in self.subscribers:
            self.subscribers.append(ctx.sender)
            ctx.reply(LeaderChanged(self.leader, self.epoch))

    # -- probing --------------------------------------------------------------------------------

    def _scale(self) -> int:
        return self.health + 1

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _piggyback(self) -> tuple[Update, ...]:
        cfg = self.config
        return self.queue.take(cfg.max_piggyback, cfg.retransmit_limit(self.cluster_size()))

    def _hint(self) -> int:
        return max(self.epoch, self.max_hint)

    def _ref(self, node: str) -> ActorRef:
        return ActorRef(node, NAME)

    def _on_probe_tick(self, ctx: Context, msg: ProbeTick) -> None:
        self._finish_probe(ctx)
        cfg = self.config
        target = self._next_target(ctx)
        if target is not None:
            seq = self._next_seq()
            self._probe = _Probe(seq, target)
            ctx.send(self._ref(target), Ping(seq, target, self._piggyback(), self._hint()))
            ctx.set_timer("probe-timeout", cfg.probe_timeout * self._scale(), ProbeTimeout(seq))
        ctx.set_timer("probe", cfg.interval * self._scale(), ProbeTick())

    def _next_target(self, ctx: Context) -> str | None:
        for _ in range(2):
            while self._round_pos < len(self._round):
                member = self._round[self._round_pos]
                self._round_pos += 1
                if self.table.state(member) in IN_VIEW:
                    return member
            self._round = self.table.members()
            ctx.random.shuffle(self._round)
            self._round_pos = 0
        return None

    def _finish_probe(self, ctx: Context) -> None:
        probe, self._probe = self._probe, None
        if probe is None:
            return
        if probe.acked:
            self._set_health(self.health - 1)
            return
        self._set_health(self.health + (probe.helpers - probe.nacks if probe.helpers else 1))
        rec = self.table.get(probe.target)
        if rec is not None and rec.state in IN_VIEW:
            u = rec.update
            self._accept(ctx, Update(u.member, SUSPECT, u.incarnation, u.epoch, self.node_id))

    def _set_health(self, score: int) -> None:
        self.health = min(max(score, 0), self.config.awareness_max_multiplier - 1)

    def _on_probe_timeout(self, ctx: Context, msg: ProbeTimeout) -> None:
        probe = self._probe
        if probe is None or probe.seq != msg.seq or probe.acked:
            return
        helpers = [m for m in self.table.members((ALIVE,)) if m != probe.target]
        k = min(self.config.indirect_checks, len(helpers))
        for helper in ctx.random.sample(helpers, k):
            ctx.send(self._ref(helper), PingReq(probe.seq, probe.target, self._piggyback(), self._hint()))
        probe.helpers = k

    def _on_ping(self, ctx: Context, msg: Ping) -> None:
        self._absorb(ctx, msg.updates, msg.hint)
        if msg.target == self.node_id:
            ctx.reply(Ack(msg.seq, self._piggyback(), self._hint()))

    def _on_ack(self, ctx: Context, msg: Ack) -> None:
        self._absorb(ctx, msg.updates, msg.hint)
        probe = self._probe
        if probe is not None and probe.seq == msg.seq:
            probe.acked = True
            return
        relay = self._relays.pop(msg.seq, None)
        if relay is not None:
            ctx.cancel_timer(f"relay:{msg.seq}")
            ctx.send(relay[0], Ack(relay[1], self._piggyback(), self._hint()))

    def _on_nack(self, ctx: Context, msg: Nack) -> None:
        self._absorb(ctx, msg.updates, msg.hint)
        probe = self._probe
        if probe is not None and probe.seq == msg.seq:
            probe.nacks += 1

    def _on_ping_req(self, ctx: Context, msg: PingReq) -> None:
        self._absorb(ctx, msg.updates, msg.hint)
        if ctx.sender is None:
            return
        seq = self._next_seq()
        self._relays[seq] = (ctx.sender, msg.seq)
        ctx.send(self._ref(msg.target), Ping(seq, msg.target, self._piggyback(), self._hint()))
        # Lifeguard's nack must reach the asker before its period ends.
        ctx.set_timer(f"relay:{seq}", self.config.probe_timeout * 0.8, RelayTimeout(seq))

    def _on_relay_timeout(self, ctx: Context, msg: RelayTimeout) -> None:
        relay = self._relays.pop(msg.seq, None)
        if relay is not None:
            ctx.send(relay[0], Nack(relay[1], self._piggyback(), self._hint()))

    # -- suspicion ------------------------------------------------------------------------------

    def _start_suspicion(self, ctx: Context, u: Update) -> None:
        cfg = self.config
        n = self.cluster_size()
        k = cfg.suspicion_mult - 2
        if n - 2 < k:
            k = 0
        s = Suspicion(u.incarnation, ctx.now, k, cfg.suspicion_min(n), cfg.suspicion_max(n), {u.origin})
        self.suspicions[u.member] = s
        ctx.set_timer(f"suspect:{u.member}", s.timeout(), SuspicionTimeout(u.member, u.incarnation))

    def _confirm(self, ctx: Context, u: Update) -> bool:
        s = self.suspicions.get(u.member)
        if s is None or s.incarnation != u.incarnation or u.origin in s.accusers:
            return False
        s.accusers.add(u.origin)
        remaining = s.started + s.timeout() - ctx.now
        ctx.set_timer(f"suspect:{u.member}", max(0.0, remaining), SuspicionTimeout(u.member, u.incarnation))
        return True

    def _on_suspicion_timeout(self, ctx: Context, msg: SuspicionTimeout) -> None:
        rec = self.table.get(msg.member)
        if rec is None or rec.state != SUSPECT or rec.incarnation != msg.incarnation:
            return
        u = rec.update
        self._accept(ctx, Update(u.member, DEAD, u.incarnation, u.epoch, self.node_id))

    # -- rumours --------------------------------------------------------------------------------

    def _absorb(self, ctx: Context, updates: tuple[Update, ...], hint: int) -> None:
        for u in updates:
            self._accept(ctx, u)
        if hint > self.max_hint:
            self.max_hint = hint
            if self.leader == self.node_id and hint > self.epoch:
                self._readvertise(ctx, hint)

    def _accept(self, ctx: Context, u: Update) -> None:
        """Merge one rumour; refute it if it accuses this node."""
        if u.member == self.node_id:
            self._about_me(ctx, u)
            return
        if u.state not in _EVENT:
            return
        change = self.table.apply(u)
        if change is None:
            return
        if change == "confirm":
            if self._confirm(ctx, u):
                self.queue.push(u)
            return
        self.queue.push(u)
        if change == "quiet":
            if u.member == self.leader:
                self._follow_epoch(ctx, u.epoch)
            return
        if change == SUSPECT:
            self._start_suspicion(ctx, u)
        else:
            if self.suspicions.pop(u.member, None) is not None:
                ctx.cancel_timer(f"suspect:{u.member}")
        if change == ALIVE and u.member not in self._round:
            # memberlist: a new member goes to a random place in the current round.
            pos = ctx.random.randint(self._round_pos, len(self._round))
            self._round.insert(pos, u.member)
        ctx.emit(_EVENT[change], member=u.member, incarnation=u.incarnation)
        self._member_changed(ctx, u.member, change in IN_VIEW)

    def _about_me(self, ctx: Context, u: Update) -> None:
        if u.incarnation < self.incarnation:
            return
        if u.state == ALIVE and u.incarnation == self.incarnation:
            return
        # Anything else about us at our incarnation or above is stale or an accusation.
        if u.state in (SUSPECT, DEAD):
            self._set_health(self.health + 1)
        self.incarnation = u.incarnation + 1
        ctx.emit("member.refute", member=self.node_id, incarnation=self.incarnation, accused=u.state)
        self._advertise(ctx)

    def _advertise(self, ctx: Context) -> None:
        """Queue our own alive record at the current incarnation and epoch; persist both."""
        self.queue.push(Update(self.node_id, ALIVE, self.incarnation, self.epoch, self.node_id))
        ctx.persist("incarnation", self.incarnation)
        ctx.persist("epoch", self.epoch)
        ctx.sync()

    def _on_gossip(self, ctx: Context, msg: Gossip) -> None:
        self._absorb(ctx, msg.updates, msg.hint)

    # -- full state exchange --------------------------------------------------------------------

    def _state(self) -> tuple[Update, ...]:
        me = Update(self.node_id, ALIVE, self.incarnation, self.epoch, self.node_id)
        return (me, *self.table.snapshot())

    def _on_push_pull(self, ctx: Context, msg: PushPull) -> None:
        for u in msg.members:
            if u.state == DEAD and u.member != self.node_id and self.table.state(u.member) in IN_VIEW:
                # memberlist's mergeState: a remote death is only a suspicion here.
                u = Update(u.member, SUSPECT, u.incarnation, u.epoch, u.origin)
            self._accept(ctx, u)
        self._absorb(ctx, (), msg.hint)
        if not msg.reply and ctx.sender is not None:
            ctx.reply(PushPull(self._state(), False, True, self._hint()))
        if not self.joined:
            self._set_joined(ctx)

    def _on_push_pull_tick(self, ctx: Context, msg: PushPullTick) -> None:
        members = self.table.members((ALIVE,))
        if members:
            peer = ctx.random.choice(members)
            ctx.send(self._ref(peer), PushPull(self._state(), False, False, self._hint()))
        ctx.set_timer("push-pull", self.config.push_pull_every(self.cluster_size()), PushPullTick())

    def _on_reconnect_tick(self, ctx: Context, msg: ReconnectTick) -> None:
        dead = self.table.members((DEAD,))
        if dead:
            peer = ctx.random.choice(dead)
            ctx.send(self._ref(peer), PushPull(self._state(), False, False, self._hint()))
        elif self.table.in_view == 0:
            self._contact_seeds(ctx)
        ctx.set_timer("reconnect", self.config.election_timeout, ReconnectTick())

    # -- joining and leaving --------------------------------------------------------------------

    def _seeds(self) -> list[str]:
        seeds = self.config.seeds or self.nodes
        return [s for s in seeds if s != self.node_id]

    def _contact_seeds(self, ctx: Context) -> None:
        seeds = self._seeds()
        for seed in ctx.random.sample(seeds, min(JOIN_FANOUT, len(seeds))):
            ctx.send(self._ref(seed), PushPull(self._state(), True, False, self._hint()))

    def _on_join_tick(self, ctx: Context, msg: JoinTick) -> None:
        if self.joined:
            return
        if ctx.now - self.started_at >= self.config.election_timeout:
            self._set_joined(ctx)  # nobody answered: we are the cluster, for now
            return
        self._contact_seeds(ctx)
        ctx.set_timer("join", 2 * self.config.interval, JoinTick())

    def _set_joined(self, ctx: Context) -> None:
        self.joined = True
        ctx.cancel_timer("join")
        ctx.emit("member.joined", member=self.node_id, incarnation=self.incarnation)
        self._refresh_leader(ctx)

    def _on_leave(self, ctx: Context, msg: Leave) -> None:
        self._leave(ctx)

    def _leave(self, ctx: Context) -> None:
        """Tell every member we leave (memberlist: dead about ourselves), then stay quiet."""
        if self.left:
            return
        self.left = True
        farewell = Gossip(
            (Update(self.node_id, LEFT, self.incarnation, self.epoch, self.node_id),), self._hint()
        )
        for member in self.table.members():
            ctx.send(self._ref(member), farewell)
        for key in ("probe", "probe-timeout", "push-pull", "reconnect", "join"):
            ctx.cancel_timer(key)
        ctx.emit("member.left", member=self.node_id, incarnation=self.incarnation)
        self._refresh_leader(ctx)

    # -- the leader -----------------------------------------------------------------------------

    def _better(self, a: str, b: str) -> bool:
        """True if ``a`` outranks ``b`` under the leader rule."""
        if self.config.leader_rule == "lowest_id":
            return a < b
        return self.config.rank(a) > self.config.rank(b)

    def _member_changed(self, ctx: Context, member: str, in_view: bool) -> None:
        if not self.joined or self.left:
            return
        if in_view:
            if self.leader is None or self._better(member, self.leader):
                self._change_leader(ctx, member)
            elif member == self.leader:
                self._follow_epoch(ctx, self.table.records[member].update.epoch)
        elif member == self.leader:
            self._refresh_leader(ctx)

    def _refresh_leader(self, ctx: Context) -> None:
        best: str | None = None
        if self.joined and not self.left:
            best = self.node_id
            for m in self.table.members():
                if self._better(m, best):
                    best = m
        if best != self.leader:
            self._change_leader(ctx, best)

    def _change_leader(self, ctx: Context, leader: str | None) -> None:
        self.leader = leader
        if leader == self.node_id:
            self.epoch = max(self.epoch + 1, self.max_hint)
            self.incarnation += 1
            self._advertise(ctx)
        else:
            advertised = self.table.records[leader].update.epoch if leader is not None else 0
            self.epoch = max(self.epoch + 1, advertised)
            ctx.persist("epoch", self.epoch)
            ctx.sync()
        self._announce(ctx)

    def _follow_epoch(self, ctx: Context, advertised: int) -> None:
        if advertised > self.epoch:
            self.epoch = advertised
            ctx.persist("epoch", self.epoch)
            ctx.sync()
            self._announce(ctx)

    def _readvertise(self, ctx: Context, epoch: int) -> None:
        self.epoch = epoch
        self.incarnation += 1
        self._advertise(ctx)
        self._announce(ctx)

    def _announce(self, ctx: Context) -> None:
        ctx.emit("leader.changed", leader=self.leader, epoch=self.epoch)
        if self.leader == self.node_id:
            ctx.emit("leader.elected", epoch=self.epoch)
        note = LeaderChanged(self.leader, self.epoch)
        for sub in self.subscribers:
            ctx.send(sub, note)


def blueprint(nodes: tuple[str, ...], config: GossipConfig | None = None) -> NodeBlueprint:
    """A :data:`~actors.NodeBlueprint` running one gossip election actor per node.

    Args:
        nodes: every node of the cluster (the seeds when ``config.seeds`` is empty).
        config: the gossip settings (default :class:`GossipConfig`).
    """
    cfg = config or GossipConfig()

    def build(node_id: str) -> dict[str, Actor]:
        return {NAME: GossipElection(nodes, cfg)}

    return build
