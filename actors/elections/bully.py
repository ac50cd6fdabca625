"""Bully leader election: the highest-ranked node that is alive and reachable is coordinator.

How it works
------------
Every node ranks the members by :meth:`ElectionConfig.rank` (priority, then id; higher wins).
Roles: FOLLOWER (idle, possibly following a leader), ELECTING (waiting for answers), WAITING
(answered by a higher node, waiting for its Coordinator), COORDINATOR, and LEFT (gone quiet).

- Election. A node starts an election by sending ``Election(round)`` to every higher-ranked
  member. No higher member: it wins at once. A higher node answers ``Answer(round)`` and starts
  its own election (a coordinator answers and re-sends its ``Coordinator`` instead). No answer
  within ``answer_timeout``: the node becomes coordinator. Answered: it waits
  ``coordinator_timeout`` for a Coordinator and otherwise starts over.
- Coordinator. A new coordinator takes ``epoch = max epoch seen + 1``, persists and syncs it
  *before* announcing (a restarted node never reuses an epoch), then sends
  ``Coordinator(leader, epoch, members)`` to every member at once and every ``interval`` after:
  the announcement is also the heartbeat and spreads the member list.
- Failure detection. A follower that hears nothing from its leader for ``election_timeout``
  (checked every ``interval``) drops it (``leader.changed`` to None) and starts an election.
- Recovery. A (re)starting node announces itself with ``Join`` to the seeds, learns the members
  from ``JoinAck`` and, after ``answer_timeout``, holds an election unless a higher leader has
  already claimed it: a recovering higher node takes over. A non-coordinator that hears a
  Coordinator from a node ranked below itself (and follows no live higher leader) elects at once.
- Leave. ``Leave`` (or a graceful stop) sends ``Leaving`` to every member; they drop the node
  and, if it led them, elect at once.

The rule it keeps
-----------------
A node only ever follows itself or a node that outranks it, and its view's epoch never
decreases (every epoch seen is synced before it is acted upon). Two coordinators resolve to
the higher-ranked one: a node accepts ``Coordinator(L, e)`` from a higher ``L`` only when ``e``
is newer than its view (or equal and no better leader is known); otherwise it replies
``Stale(max epoch seen)``, and a coordinator told of an epoch at least its own re-announces
itself with a fresh, larger epoch. A coordinator that hears a lower coordinator with an epoch at
least its own does the same; with an older epoch it sends that node its own Coordinator. So
once faults stop, the highest-ranked live node ends up with the largest epoch and everybody
follows it (``sim/checkers_bully.py`` states the time bound).

Defaults: the reference's ``ELECTION_TIMEOUT=10s``; its ``ELECTION_INTERVAL=30s`` "heartbeat
frequency" cannot work with a 10 s timeout (a follower would time out between two heartbeats),
so the heartbeat interval defaults to 3 s (three heartbeats per timeout), the answer timeout to
2 s and the coordinator timeout to 5 s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._actor import Actor, NodeBlueprint
from .._context import Context
from .._messages import ActorRef, message
from ._common import (
    NAME,
    ElectionConfig,
    GetLeader,
    Leader,
    LeaderChanged,
    Leave,
    Subscribe,
)

FOLLOWER = "FOLLOWER"
ELECTING = "ELECTING"
WAITING = "WAITING"
COORDINATOR = "COORDINATOR"
LEFT = "LEFT"

EPOCH_KEY = "max_epoch"


@message("bully.Election")
@dataclass(frozen=True, slots=True)
class Election:
    """A lower node asks: is anyone higher alive? ``round`` matches the answer to the ask."""

    round: int


@message("bully.Answer")
@dataclass(frozen=True, slots=True)
class Answer:
    """I outrank you and I am alive: stand down and wait for a Coordinator."""

    round: int


@message("bully.Coordinator")
@dataclass(frozen=True, slots=True)
class Coordinator:
    """``leader`` leads with ``epoch``; sent on election and every interval as the heartbeat."""

    leader: str
    epoch: int
    members: tuple[str, ...]


@message("bully.Stale")
@dataclass(frozen=True, slots=True)
class Stale:
    """Your announced epoch is not newer than what I have seen (``seen``)."""

    seen: int


@message("bully.Join")
@dataclass(frozen=True, slots=True)
class Join:
    """The sender (re)joins the cluster; answered with :class:`JoinAck`."""


@message("bully.JoinAck")
@dataclass(frozen=True, slots=True)
class JoinAck:
    """The members the answering node knows and the largest epoch it has seen."""

    members: tuple[str, ...]
    epoch: int


@message("bully.Leaving")
@dataclass(frozen=True, slots=True)
class Leaving:
    """The sender leaves the cluster gracefully."""


@message("bully.Tick")
@dataclass(frozen=True, slots=True)
class Tick:
    """Timer: heartbeat (coordinator) or leader check (follower)."""


@message("bully.JoinTimeout")
@dataclass(frozen=True, slots=True)
class JoinTimeout:
    """Timer: the join answers had their time; elect unless a higher leader claimed us."""


@message("bully.AnswerTimeout")
@dataclass(frozen=True, slots=True)
class AnswerTimeout:
    round: int


@message("bully.CoordinatorTimeout")
@dataclass(frozen=True, slots=True)
class CoordinatorTimeout:
    round: int


@dataclass(frozen=True, slots=True)
class BullyConfig(ElectionConfig):
    """Bully timing, in seconds of the node's monotonic clock (see the module docstring).

    Attributes:
        election_timeout: silence from the leader before a follower elects.
        interval: how often the coordinator sends its Coordinator heartbeat.
        answer_timeout: how long an electing node waits for an Answer from a higher node.
        coordinator_timeout: how long an answered node waits for a Coordinator.
    """

    election_timeout: float = 10.0
    interval: float = 3.0
    answer_timeout: float = 2.0
    coordinator_timeout: float = 5.0

    def __post_init__(self) -> None:
        ElectionConfig.__post_init__(self)
        if not self.interval < self.election_timeout:
            raise ValueError(
                f"bully interval ({self.interval}) must be < election_timeout ({self.election_timeout}) "
                "so a follower hears a heartbeat before it gives up on the leader"
            )
        if not self.answer_timeout > 0:
            raise ValueError(f"bully answer_timeout must be > 0, got {self.answer_timeout}")
        if not self.coordinator_timeout > self.answer_timeout:
            raise ValueError(
                f"bully coordinator_timeout ({self.coordinator_timeout}) must be > answer_timeout "
                f"({self.answer_timeout}): the answering node first holds its own election"
            )

    @classmethod
    def of(cls, config: ElectionConfig | None) -> BullyConfig:
        """``config`` as a BullyConfig; a plain ElectionConfig gets timeouts scaled from its
        ``election_timeout`` (answer 1/5, coordinator 1/2)."""
        if config is None:
            return cls()
        if isinstance(config, BullyConfig):
            return config
        e = config.election_timeout
        return cls(e, config.interval, config.priorities, config.seeds, e / 5, e / 2)


class Bully(Actor):
    """The bully election actor of one node (see the module docstring).

    Args:
        nodes: the members this node knows at start (itself included or not).
        config: timing, priorities and seeds.
    """

    def __init__(self, nodes: tuple[str, ...], config: BullyConfig):
        self.config = config
        self.initial = nodes
        self.me = ""
        self.members: set[str] = set()
        self.departed: set[str] = set()
        self.role = FOLLOWER
        self.leader: str | None = None
        self.epoch = 0
        self.max_epoch = 0
        self.round = 0
        self.last_heard = 0.0
        self.subscribers: list[ActorRef] = []

    # -- lifecycle ------------------------------------------------------------------------------

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        self.me = ctx.node_id
        self.max_epoch = int(durable.get(EPOCH_KEY, 0))
        self.epoch = self.max_epoch
        self.members = {*self.initial, *self.config.seeds, self.me}
        seeds = self.config.seeds or self.initial
        for node in sorted(set(seeds) - {self.me}):
            ctx.send(self._ref(node), Join())
        ctx.set_timer("join", self.config.answer_timeout, JoinTimeout())
        ctx.set_timer("tick", self.config.interval, Tick())

    def on_stop(self, ctx: Context) -> None:
        self._leave(ctx)

    def receive(self, ctx: Context, msg: Any) -> None:
        sender = ctx.sender.node if ctx.sender is not None else self.me
        tp = type(msg)
        if tp is GetLeader:
            ctx.reply(Leader(self.leader, self.epoch, self.me))
            return
        if tp is Subscribe:
            if ctx.sender is not None and ctx.sender not in self.subscribers:
                self.subscribers.append(ctx.sender)
                ctx.reply(LeaderChanged(self.leader, self.epoch))
            return
        if self.role == LEFT:
            return
        if sender != self.me and (sender not in self.departed or tp is Join):
            self.departed.discard(sender)
            self.members.add(sender)
        handler = _HANDLERS.get(tp)
        if handler is not None:
            getattr(self, handler)(ctx, sender, msg)

    # -- handlers -------------------------------------------------------------------------------

    def _on_tick(self, ctx: Context, sender: str, msg: Tick) -> None:
        if self.role == COORDINATOR:
            self._broadcast(ctx)
        elif self.leader is not None and ctx.now - self.last_heard > self.config.election_timeout:
            ctx.emit("leader.lost", leader=self.leader, silence=round(ctx.now - self.last_heard, 6))
            self._set_view(ctx, None, self.epoch)
            self._start_election(ctx)
        elif self.leader is None and self.role == FOLLOWER:
            self._start_election(ctx)
        ctx.set_timer("tick", self.config.interval, Tick())

    def _on_join_timeout(self, ctx: Context, sender: str, msg: JoinTimeout) -> None:
        if self.leader is None and self.role == FOLLOWER:
            self._start_election(ctx)

    def _on_election(self, ctx: Context, sender: str, msg: Election) -> None:
        if not self._outranks(self.me, sender):
            return
        ctx.reply(Answer(msg.round))
        if self.role == COORDINATOR:
            ctx.reply(self._announcement())
        elif not self._fresh_higher_leader(ctx):
            self._start_election(ctx)

    def _on_answer(self, ctx: Context, sender: str, msg: Answer) -> None:
        if self.role == ELECTING and msg.round == self.round and self._outranks(sender, self.me):
            self.role = WAITING
            ctx.cancel_timer("answer")
            ctx.set_timer("coordinator", self.config.coordinator_timeout, CoordinatorTimeout(self.round))

    def _on_answer_timeout(self, ctx: Context, sender: str, msg: AnswerTimeout) -> None:
        if self.role == ELECTING and msg.round == self.round:
            self._become_coordinator(ctx)

    def _on_coordinator_timeout(self, ctx: Context, sender: str, msg: CoordinatorTimeout) -> None:
        if self.role == WAITING and msg.round == self.round:
            self.role = FOLLOWER
            self._start_election(ctx)

    def _on_coordinator(self, ctx: Context, sender: str, msg: Coordinator) -> None:
        claimant, e = msg.leader, msg.epoch
        self._learn(msg.members)
        if claimant == self.me:
            return
        if self._outranks(claimant, self.me):
            if claimant == self.leader:
                if e >= self.epoch:
                    self._adopt(ctx, claimant, e)  # the heartbeat (older epochs: reordered)
            elif (
                self.leader is not None
                and self._fresh_higher_leader(ctx)
                and self._outranks(self.leader, claimant)
            ):
                pass  # our live leader outranks the claimant and will put it right
            elif e > self.epoch or (
                e == self.epoch and (self.leader is None or self._outranks(claimant, self.leader))
            ):
                self._adopt(ctx, claimant, e)
            else:
                ctx.send(self._ref(claimant), Stale(max(self.max_epoch, e)))
                self._note_epoch(ctx, e)
            return
        # The claimant is ranked below this node.
        self._note_epoch(ctx, e)
        if self.role == COORDINATOR:
            if e >= self.epoch:
                self._become_coordinator(ctx)  # a fresh, larger epoch for everybody
            else:
                ctx.send(self._ref(claimant), self._announcement())
        elif not self._fresh_higher_leader(ctx):
            self._start_election(ctx)

    def _on_stale(self, ctx: Context, sender: str, msg: Stale) -> None:
        self._note_epoch(ctx, msg.seen)
        if self.role == COORDINATOR and msg.seen >= self.epoch:
            self._become_coordinator(ctx)

    def _on_join(self, ctx: Context, sender: str, msg: Join) -> None:
        ctx.reply(JoinAck(tuple(sorted(self.members)), self.max_epoch))
        if self.role == COORDINATOR:
            ctx.reply(self._announcement())

    def _on_join_ack(self, ctx: Context, sender: str, msg: JoinAck) -> None:
        self._learn(msg.members)
        self._note_epoch(ctx, msg.epoch)

    def _on_leaving(self, ctx: Context, sender: str, msg: Leaving) -> None:
        self.members.discard(sender)
        self.departed.add(sender)
        if self.leader == sender:
            self._set_view(ctx, None, self.epoch)
            self.role = FOLLOWER
            self._start_election(ctx)

    def _on_leave(self, ctx: Context, sender: str, msg: Leave) -> None:
        self._leave(ctx)

    # -- transitions ----------------------------------------------------------------------------

    def _start_election(self, ctx: Context) -> None:
        if self.role != FOLLOWER:
            return
        self.round += 1
        higher = sorted(m for m in self.members if self._outranks(m, self.me))
        if not higher:
            self._become_coordinator(ctx)
            return
        self.role = ELECTING
        ctx.emit("election.started", round=self.round, higher=len(higher))
        for node in higher:
            ctx.send(self._ref(node), Election(self.round))
        ctx.set_timer("answer", self.config.answer_timeout, AnswerTimeout(self.round))

    def _become_coordinator(self, ctx: Context) -> None:
        ctx.cancel_timer("answer")
        ctx.cancel_timer("coordinator")
        epoch = self.max_epoch + 1
        self._note_epoch(ctx, epoch)  # persisted and synced before anyone hears of it
        self.role = COORDINATOR
        ctx.emit("leader.elected", epoch=epoch)
        self._set_view(ctx, self.me, epoch)
        self._broadcast(ctx)

    def _adopt(self, ctx: Context, leader: str, epoch: int) -> None:
        if self.role in (ELECTING, WAITING):
            ctx.cancel_timer("answer")
            ctx.cancel_timer("coordinator")
        self.role = FOLLOWER
        self.last_heard = ctx.now
        self._note_epoch(ctx, epoch)
        self._set_view(ctx, leader, epoch)

    def _leave(self, ctx: Context) -> None:
        if self.role == LEFT:
            return
        for node in sorted(self.members - {self.me}):
            ctx.send(self._ref(node), Leaving())
        self._set_view(ctx, None, self.epoch)
        self.role = LEFT
        for key in ("tick", "join", "answer", "coordinator"):
            ctx.cancel_timer(key)
        ctx.emit("member.left")

    # -- helpers --------------------------------------------------------------------------------

    def _set_view(self, ctx: Context, leader: str | None, epoch: int) -> None:
        if (leader, epoch) == (self.leader, self.epoch):
            return
        self.leader, self.epoch = leader, epoch
        ctx.emit("leader.changed", leader=leader, epoch=epoch)
        for sub in self.subscribers:
            ctx.send(sub, LeaderChanged(leader, epoch))

    def _note_epoch(self, ctx: Context, epoch: int) -> None:
        if epoch > self.max_epoch:
            self.max_epoch = epoch
            ctx.persist(EPOCH_KEY, epoch)
            ctx.sync()

    def _broadcast(self, ctx: Context) -> None:
        announcement = self._announcement()
        for node in sorted(self.members - {self.me}):
            ctx.send(self._ref(node), announcement)

    def _announcement(self) -> Coordinator:
        return Coordinator(self.me, self.epoch, tuple(sorted(self.members)))

    def _learn(self, members: tuple[str, ...]) -> None:
        self.members.update(m for m in members if m not in self.departed)

    def _fresh_higher_leader(self, ctx: Context) -> bool:
        """This node follows a leader that outranks it and was heard from in time."""
        return (
            self.leader is not None
            and self.leader != self.me
            and self._outranks(self.leader, self.me)
            and ctx.now - self.last_heard <= self.config.election_timeout
        )

    def _outranks(self, a: str, b: str) -> bool:
        return self.config.rank(a) > self.config.rank(b)

    @staticmethod
    def _ref(node: str) -> ActorRef:
        return ActorRef(node, NAME)


_HANDLERS: dict[type[Any], str] = {
    Tick: "_on_tick",
    JoinTimeout: "_on_join_timeout",
    Election: "_on_election",
    Answer: "_on_answer",
    AnswerTimeout: "_on_answer_timeout",
    CoordinatorTimeout: "_on_coordinator_timeout",
    Coordinator: "_on_coordinator",
    Stale: "_on_stale",
    Join: "_on_join",
    JoinAck: "_on_join_ack",
    Leaving: "_on_leaving",
    Leave: "_on_leave",
}
"""Message type -> handler method name (looked up on the instance, so subclasses can override;
called as ``handler(ctx, sender node, msg)``)."""


def blueprint(nodes: tuple[str, ...], config: ElectionConfig | None = None) -> NodeBlueprint:
    """A :data:`~actors.NodeBlueprint` running one :class:`Bully` actor (named
    :data:`~actors.elections.NAME`) per node, each knowing ``nodes`` at start.

    Args:
        nodes: the initial members.
        config: a :class:`BullyConfig`, or a plain :class:`ElectionConfig` (timeouts derived).
    """
    cfg = BullyConfig.of(config)

    def build(node_id: str) -> dict[str, Actor]:
        return {NAME: Bully(tuple(nodes), cfg)}

    return build
