"""The simulator's Context: the same API as :class:`actors.Context`, with the hot effects applied
at once.

How it works
------------
An actor asks for effects by calling its context; the driver executes them in order after the
call. In the simulator nothing can happen between two effects of one call (a handler runs to
completion at one instant of simulated time, and no effect is visible to the actor that asked
for it), so executing an effect *when it is asked for* gives exactly the same run as executing
it after the call, as long as the order is kept. :class:`SimContext` does that for the effects
every message and timer produces (``send``, ``reply``, ``set_timer``, ``cancel_timer``): they
go straight to the simulator (``out`` and ``arm``) instead of becoming ``Send``/``SetTimer``
objects in ``effects``. Every other effect is appended to ``effects`` as usual, and from then
on, to keep the order, so is everything the call asks for; the simulator executes that list
after the call. ``on_stop`` gets a plain :class:`~actors.Context` (only some of its effects
run, see :mod:`sim.nodes`).

``t`` is the simulator's true time of the current call (integer nanoseconds), the one thing
the simulator sets before each call (with ``sender``): ``now`` and ``wall`` are computed from
it and the node's clock when read, so a handler that does not read them costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from actors import ActorRef, CancelTimer, Context, Rng, Send, SetTimer

from .clock import NodeClock

if TYPE_CHECKING:
    from .nodes import Slot

Out = Callable[["Slot", ActorRef, Any, int], None]
"""The simulator's send path: ``out(src slot, dst, msg, t)``."""
Arm = Callable[["Slot", str, float, Any, int], None]
"""The simulator's set-timer path: ``arm(slot, key, delay, msg, t)``."""


class SimContext(Context):
    """A :class:`~actors.Context` whose sends and timers take effect when asked for."""

    __slots__ = ("t", "ns_rate", "clock", "slot", "out", "arm")

    def __init__(self, slot: Slot, rng: Rng, clock: NodeClock, out: Out, arm: Arm):
        # Context.__init__ would assign now and wall, which are computed here: set the rest.
        self.node_id = slot.ref.node
        self.self_ref = slot.ref
        self.random = rng
        self.sender = None
        self.effects = []
        self.t = 0
        self.ns_rate = clock.ns_rate
        self.clock = clock
        self.slot = slot
        self.out = out
        self.arm = arm

    @property
    def now(self) -> float:
        """The node's monotonic clock at true time ``t``, in seconds."""
        return self.t * self.ns_rate

    @now.setter
    def now(self, value: float) -> None:
        raise AttributeError("the simulator's ctx.now follows ctx.t: set t (true nanoseconds)")

    @property
    def wall(self) -> float:
        """The node's UNIX time: its wall clock at ``now``."""
        return self.clock.wall_base + self.t * self.ns_rate

    @wall.setter
    def wall(self, value: float) -> None:
        raise AttributeError("the simulator's ctx.wall follows ctx.t and the node's clock")

    def send(self, to: ActorRef, msg: Any) -> None:
        if self.effects:
            self.effects.append(Send(to, msg))
        else:
            self.out(self.slot, to, msg, self.t)

    def reply(self, msg: Any) -> None:
        sender = self.sender
        if sender is None:
            raise RuntimeError("reply() outside a message with a sender")
        if self.effects:
            self.effects.append(Send(sender, msg))
        else:
            self.out(self.slot, sender, msg, self.t)

    def set_timer(self, key: str, delay: float, msg: Any) -> None:
        if self.effects:
            self.effects.append(SetTimer(key, delay, msg))
        else:
            self.arm(self.slot, key, delay, msg, self.t)

    def cancel_timer(self, key: str) -> None:
        if self.effects:
            self.effects.append(CancelTimer(key))
        else:
            self.slot.timers.pop(key, None)
