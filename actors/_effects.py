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


# Send and SetTimer are built once per message and per timer, so they have a hand-written
# __init__: a frozen dataclass's generated one assigns each field through
# ``object.__setattr__(self, name, value)``, which costs about as much again as the rest of the
# construction; calling the slot descriptors' ``__set__`` directly (the ``_set_*`` bindings
# after each class) does the same assignment, still bypassing the frozen ``__setattr__``.
# Everything else (fields, eq, hash, repr, frozenness) is the dataclass's own.


@dataclass(frozen=True, slots=True, init=False)
class Send:
    """Deliver ``msg`` to the actor at ``to`` (any node, including this one)."""

    to: ActorRef
    msg: Any

    def __init__(self, to: ActorRef, msg: Any) -> None:
        _set_send_to(self, to)
        _set_send_msg(self, msg)


_set_send_to = Send.__dict__["to"].__set__
_set_send_msg = Send.__dict__["msg"].__set__


@dataclass(frozen=True, slots=True, init=False)
class SetTimer:
    """After ``delay`` seconds of this node's monotonic clock, deliver ``msg`` to self.

    Setting a timer with a key that is already pending replaces it.
    """

    key: str
    delay: float
    msg: Any

    def __init__(self, key: str, delay: float, msg: Any) -> None:
        _set_timer_key(self, key)
        _set_timer_delay(self, delay)
        _set_timer_msg(self, msg)


_set_timer_key = SetTimer.__dict__["key"].__set__
_set_timer_delay = SetTimer.__dict__["delay"].__set__
_set_timer_msg = SetTimer.__dict__["msg"].__set__


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


@dataclass(frozen=True, slots=True)
class CancelJob:
    """Cancel the running job ``job_id`` started by this actor's :class:`ExecuteJob`.

    Its :class:`JobDone` comes back at once with ``ok=False`` and ``error`` ``"cancelled:
    <reason>"``; a job already finished (or unknown) is left alone.
    """

    job_id: str
    reason: str


@message("troupe.JobDone")
@dataclass(frozen=True, slots=True)
class JobDone:
    """The outcome of an :class:`ExecuteJob`: ``ok`` with ``result``, or ``error`` text."""

    job_id: str
    ok: bool
    result: Any
    error: str
    duration: float


Effect = Send | SetTimer | CancelTimer | Persist | Sync | Emit | Spawn | Stop | ExecuteJob | CancelJob
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
    CancelJob,
)
