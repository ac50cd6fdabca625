"""The context a driver hands to every actor call: time, randomness, identity, effects.

One ``Context`` lives as long as the actor incarnation it serves. Before each call the driver
sets ``now``, ``wall`` and ``sender``; during the call the actor appends effects through the
methods below; after it the driver takes ``effects`` and executes them in order.
"""

from __future__ import annotations

from collections.abc import MutableSequence, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ._effects import (
    CancelJob,
    CancelTimer,
    Effect,
    Emit,
    ExecuteJob,
    Persist,
    Send,
    SetTimer,
    Spawn,
    Stop,
    Sync,
)
from ._messages import ActorRef

if TYPE_CHECKING:
    from ._actor import Actor

T = TypeVar("T")


class Rng(Protocol):
    """The part of ``random.Random`` an actor may use; the driver seeds it."""

    def random(self) -> float: ...
    def uniform(self, a: float, b: float) -> float: ...
    def randint(self, a: int, b: int) -> int: ...
    def randrange(self, start: int, stop: int | None = ..., step: int = ...) -> int: ...
    def choice(self, seq: Sequence[T]) -> T: ...
    def shuffle(self, x: MutableSequence[Any]) -> None: ...
    def sample(self, population: Sequence[T], k: int) -> list[T]: ...
    def getrandbits(self, k: int, /) -> int: ...
    def expovariate(self, lambd: float) -> float: ...


class Context:
    """What an actor knows of the world and the one way it acts on it.

    Attributes:
        node_id: the node this actor lives on.
        self_ref: this actor's address.
        now: the node's monotonic clock, in seconds (only differences mean anything).
        wall: the node's UNIX time in seconds (may jump, may be skewed).
        random: a seeded random generator private to this actor.
        sender: who sent the message being handled (``self_ref`` for timers), or None.
        effects: what the actor asked for during the current call, in order.
    """

    __slots__ = ("node_id", "self_ref", "now", "wall", "random", "sender", "effects")

    def __init__(self, self_ref: ActorRef, rng: Rng, now: float = 0.0, wall: float = 0.0):
        self.node_id: str = self_ref.node
        self.self_ref: ActorRef = self_ref
        self.now: float = now
        self.wall: float = wall
        self.random: Rng = rng
        self.sender: ActorRef | None = None
        self.effects: list[Effect] = []

    def take_effects(self) -> list[Effect]:
        """Return and clear the effects gathered so far (for drivers)."""
        out = self.effects
        self.effects = []
        return out

    def send(self, to: ActorRef, msg: Any) -> None:
        """Send ``msg`` (a registered message) to ``to``."""
        self.effects.append(Send(to, msg))

    def reply(self, msg: Any) -> None:
        """Send ``msg`` to the sender of the message being handled."""
        sender = self.sender
        if sender is None:
            raise RuntimeError("reply() outside a message with a sender")
        self.effects.append(Send(sender, msg))

    def set_timer(self, key: str, delay: float, msg: Any) -> None:
        """Deliver ``msg`` to self after ``delay`` seconds; replaces a pending ``key``."""
        self.effects.append(SetTimer(key, delay, msg))

    def cancel_timer(self, key: str) -> None:
        """Cancel the pending timer ``key`` (no-op if none)."""
        self.effects.append(CancelTimer(key))

    def persist(self, key: str, value: Any) -> None:
        """Write durable ``key`` (``None`` deletes); durable only after :meth:`sync`."""
        self.effects.append(Persist(key, value))

    def sync(self) -> None:
        """Make earlier :meth:`persist` writes durable before any later effect runs."""
        self.effects.append(Sync())

    def emit(self, kind: str, **fields: Any) -> None:
        """Record a trace/metric event such as ``emit("peer.dead", peer="n2")``."""
        self.effects.append(Emit(kind, fields))

    def spawn(self, name: str, actor: Actor) -> ActorRef:
        """Start ``actor`` on this node under ``name`` and return its address."""
        self.effects.append(Spawn(name, actor))
        return ActorRef(self.node_id, name)

    def stop(self, name: str | None = None) -> None:
        """Stop actor ``name`` on this node (default: this actor)."""
        self.effects.append(Stop(self.self_ref.name if name is None else name))

    def execute_job(self, job_id: str, job_type: str, payload: Any, timeout: float) -> None:
        """Ask the runtime to run a job; a ``JobDone`` comes back to this actor."""
        self.effects.append(ExecuteJob(job_id, job_type, payload, timeout, self.self_ref))

    def cancel_job(self, job_id: str, reason: str) -> None:
        """Cancel a job this actor started; its ``JobDone`` comes back at once, not ok."""
        self.effects.append(CancelJob(job_id, reason))
