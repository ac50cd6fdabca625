"""Simulated nodes: their state, incarnations, actor slots and durable stores.

How it works
------------
A :class:`Node` is ``up``, ``paused`` or ``down``; its ``incarnation`` counts how many times it
was brought up (0: never). The simulator (:mod:`sim.world`) moves it between states when it
applies faults:

- **crash**: every actor object, pending timer and unsynced write of the node is dropped and it
  goes down; messages addressed to it carry the destination's incarnation at send time and are
  dropped on arrival when it no longer matches or the node is down. Jobs in flight are lost.
- **restart** / **start** (the same thing): a down node (crashed, stopped, or a ``late`` node
  that never ran) gets a new incarnation and fresh actors from the blueprint, each of whose
  ``on_start`` receives the state it had synced.
- **stop** (graceful leave): each actor's ``on_stop`` runs, in start order, and its Send, Emit,
  Persist and Sync effects execute (timers, spawns and jobs it asks for are ignored), so a
  leaving node can announce it; its sends leave before the node goes down. Then the node goes
  down exactly as in a crash: durable state keeps only what was synced, so an actor that wants
  its last words kept persists and syncs them in ``on_stop``. A paused node can be stopped: its
  queued work is dropped and ``on_stop`` runs.
- **pause** / **resume**: a paused node handles nothing; what comes due meanwhile is queued and
  rescheduled, in due order, at resume.
- **late** nodes exist from the start (ids, clocks, a place in every fault table) but stay
  down, and so count as down in the run's timeline, until a ``start``.

A :class:`Slot` is one actor incarnation: the actor object, the
:class:`~sim.context.SimContext` it reuses for every call (``on_stop`` gets a plain
``Context``, so that only the effects listed above run), its timer tokens and its unsynced
writes. ``alive`` turns false when the actor stops or its node crashes, so its stale timers are
skipped; ``ready`` is ``alive`` on a node that is up and not paused, the one test the
simulator's fast delivery path makes.
"""

from __future__ import annotations

from collections.abc import Mapping
from random import Random
from typing import Any, cast

from actors import Actor, ActorRef, Rng

from .clock import NodeClock
from .context import Arm, Out, SimContext
from .faults import Snapshot

UP, PAUSED, DOWN = "up", "paused", "down"

NS = 1_000_000_000
"""True nanoseconds per second: the simulator's clock is an integer count of nanoseconds."""


def to_ns(seconds: float) -> int:
    """Seconds as the simulator's integer nanoseconds."""
    return round(seconds * NS)


class SimulationError(RuntimeError):
    """Misuse of the simulator by a scenario or an actor (for example an unknown effect)."""


class Slot:
    """One actor incarnation: the actor object, its reused Context, timers, unsynced writes.

    ``inc`` is the node's incarnation when the slot was made and ``tid`` the trace's id for the
    actor's address. ``ready`` is true while the slot can take a message at once: alive on an
    up (not paused) node. A message carries the slot it was addressed to when sent (or a
    :class:`Pending` if there was none), so a delivery to a ready slot needs no lookup;
    anything else takes the slow path, which decides as if looking the actor up by name then.
    """

    __slots__ = (
        "node",
        "name",
        "ref",
        "inc",
        "tid",
        "actor",
        "receive",
        "ctx",
        "timers",
        "unsynced",
        "alive",
        "ready",
    )

    def __init__(self, node: Node, name: str, actor: Actor, rng: Random, tid: int, out: Out, arm: Arm):
        self.node = node
        self.name = name
        self.ref = ActorRef(node.id, name)
        self.inc = node.incarnation
        self.tid = tid
        self.actor = actor
        self.receive = actor.receive
        self.ctx = SimContext(self, cast(Rng, rng), node.clock, out, arm)
        self.timers: dict[str, int] = {}
        self.unsynced: list[tuple[str, Any]] = []
        self.alive = True
        self.ready = node.state is UP

    def kill(self) -> None:
        """The actor is gone (stopped, or its node crashed): no more messages or timers."""
        self.alive = False
        self.ready = False


class Pending:
    """The destination of a message sent when no such actor was live: never ready, so its
    delivery takes the slow path (``node`` is None for an unknown node, then ``inc`` is -1)."""

    __slots__ = ("node", "inc", "tid")
    ready = False

    def __init__(self, node: Node | None, inc: int, tid: int):
        self.node = node
        self.inc = inc
        self.tid = tid


class Origin:
    """A sender that is not an actor (a test's client, the job model): address and trace id."""

    __slots__ = ("ref", "tid")

    def __init__(self, ref: ActorRef, tid: int):
        self.ref = ref
        self.tid = tid


class Node:
    """One simulated node: clock, state, incarnation, live actors, durable store, paused queue."""

    __slots__ = ("id", "clock", "state", "incarnation", "actors", "durable", "queue")

    def __init__(self, node_id: str, clock: NodeClock):
        self.id = node_id
        self.clock = clock
        self.state = DOWN
        self.incarnation = 0
        self.actors: dict[str, Slot] = {}
        self.durable: dict[str, dict[str, Any]] = {}
        self.queue: list[tuple[Any, ...]] = []


def snapshot(
    at: float, nodes: Mapping[str, Node], obstructed: frozenset[tuple[str, str]], lossy: bool
) -> Snapshot:
    """The timeline entry for the world as it is now: never-started and stopped nodes count as
    down, exactly like crashed ones."""
    return Snapshot(
        at=at,
        down=frozenset(n for n, node in nodes.items() if node.state is DOWN),
        paused=frozenset(n for n, node in nodes.items() if node.state is PAUSED),
        obstructed=obstructed,
        lossy=lossy,
    )
