"""Effects: the only way an actor acts on the world.

A handler never performs I/O. It calls methods on its :class:`~actors.Context`, each of which
appends one of the effect values below to ``ctx.effects``; when the handler returns, the driver
(the simulator or the trio runtime) executes them **in order**. Order matters for durability:
a ``Persist`` followed by ``Sync`` followed by ``Send`` means the send happens only after the
write is durable, which is how Raft's "persist before you answer" rule is kept.

The list is closed: a driver handles exactly these types and rejects anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._messages import ActorRef, message

if TYPE_CHECKING:
    from ._actor import Actor


@dataclass(frozen=True, slots=True)
class Send:
    """Deliver ``msg`` to the actor at ``to`` (any node, including this one)."""

    to: ActorRef
    msg: Any


@dataclass(frozen=True, slots=True)
class SetTimer:
    """After ``delay`` seconds of this node's monotonic clock, deliver ``msg`` to self.

    Setting a timer with a key that is already pending replaces it.
    """

    key: str
    delay: float
    msg: Any


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Cancel the pending timer ``key``, if any."""

    key: str


@dataclass(frozen=True, slots=True)
class Persist:
    """Write ``value`` (plain msgpack data) under ``key`` in this actor's durable state.

    ``value=None`` deletes the key. The write is not durable until a later :class:`Sync`:
    a crash before it loses the write.
    """

    key: str
    value: Any


@dataclass(frozen=True, slots=True)
class Sync:
    """Make every earlier ``Persist`` of this actor durable (fsync) before the next effect."""


@dataclass(frozen=True, slots=True)
class Emit:
    """A trace/metric event: ``kind`` such as ``"peer.dead"`` with plain scalar fields."""

    kind: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Spawn:
    """Start ``actor`` on this node under ``name``."""

    name: str
    actor: Actor


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop the actor ``name`` on this node (its durable state is kept)."""

    name: str


@dataclass(frozen=True, slots=True)
class ExecuteJob:
    """Ask the runtime to run the processor registered for ``job_type``.

    When it finishes, fails or exceeds ``timeout`` seconds, the runtime sends a
    :class:`JobDone` to ``reply_to``.
    """

    job_id: str
    job_type: str
    payload: Any
    timeout: float
    reply_to: ActorRef


@message("troupe.JobDone")
@dataclass(frozen=True, slots=True)
class JobDone:
    """The outcome of an :class:`ExecuteJob`: ``ok`` with ``result``, or ``error`` text."""

    job_id: str
    ok: bool
    result: Any
    error: str
    duration: float


Effect = Send | SetTimer | CancelTimer | Persist | Sync | Emit | Spawn | Stop | ExecuteJob
EFFECT_TYPES: tuple[type[Any], ...] = (
    Send,
    SetTimer,
    CancelTimer,
    Persist,
    Sync,
    Emit,
    Spawn,
    Stop,
    ExecuteJob,
)
