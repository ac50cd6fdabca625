"""Joining a running Raft cluster: ask the leader to add this node until it is a voter.

How it works
------------
A node started to *join* (rather than bootstrap) runs its Raft actor with an empty
configuration, which only follows, and this small actor beside it. Every ``retry`` seconds the
joiner sends ``ChangeMembership(add=<this node>)`` to the election actor of its current target:
the last leader hint it got, else the next seed in turn. A :class:`MembershipResult` whose
``voters`` include this node (committed, or "already a voter") ends the job: the joiner emits
``raft.joined`` and stops. A refusal with a leader hint retargets the next try at once; the
leader refuses while another change is in flight, so retries are expected, not errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..._actor import Actor
from ..._context import Context
from ..._messages import ActorRef, message
from .._common import NAME
from ._messages import ChangeMembership, MembershipResult

JOINER = "raft-join"
"""The joiner's actor name."""


@message("raft.JoinRetry")
@dataclass(frozen=True, slots=True)
class JoinRetry:
    pass


class RaftJoiner(Actor):
    """Asks the cluster (through ``seeds``) to add this node as a voter, then stops."""

    def __init__(self, seeds: tuple[str, ...], retry: float):
        if not seeds:
            raise ValueError("a joining Raft node needs at least one seed (a node of the cluster)")
        self.seeds = seeds
        self.retry = retry
        self.target: str | None = None
        self.turn = 0
        self.attempts = 0

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        self._ask(ctx)

    def receive(self, ctx: Context, msg: Any) -> None:
        if type(msg) is JoinRetry:
            self._ask(ctx)
        elif type(msg) is MembershipResult:
            if ctx.node_id in msg.voters:
                ctx.cancel_timer("retry")
                ctx.emit("raft.joined", voters=",".join(msg.voters), attempts=self.attempts)
                ctx.stop()
            elif msg.leader_hint is not None and msg.leader_hint != self.target:
                self.target = msg.leader_hint
                self._ask(ctx)

    def _ask(self, ctx: Context) -> None:
        if self.target is None:
            self.target = self.seeds[self.turn % len(self.seeds)]
            self.turn += 1
        self.attempts += 1
        ctx.send(ActorRef(self.target, NAME), ChangeMembership(add=ctx.node_id, request=self.attempts))
        # the next try goes to the next seed unless a hint comes back first
        self.target = None
        ctx.set_timer("retry", self.retry, JoinRetry())
