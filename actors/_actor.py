"""The actor protocol and the node blueprint drivers use to (re)build a node's actors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._context import Context


class Actor:
    """Base class of every actor: a state machine fed messages through :meth:`receive`.

    Subclasses override :meth:`receive` and usually :meth:`on_start`. Both run to completion,
    touch nothing but ``self`` and ``ctx``, and act only by calling ``ctx`` methods.
    """

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        """Called once per incarnation, before any message.

        Args:
            ctx: the context; ``ctx.now`` is the start time.
            durable: what this actor had synced before its node last crashed or stopped
                (empty on a first start). Read-only; write with ``ctx.persist``.
        """

    def receive(self, ctx: Context, msg: Any) -> None:
        """Handle one message (or a timer's message, with ``ctx.sender == ctx.self_ref``)."""
        raise NotImplementedError

    def on_stop(self, ctx: Context) -> None:
        """Called on a graceful stop (never on a crash). Effects other than Emit/Send/Persist/
        Sync may be ignored."""


NodeBlueprint = Callable[[str], Mapping[str, Actor]]
"""Given a node id, build that node's actors by name. Called at first start and at every
restart, so each call must return fresh actor objects."""


def combine(*blueprints: NodeBlueprint) -> NodeBlueprint:
    """One blueprint running the actors of every one of ``blueprints`` on each node.

    Raises:
        ValueError: (when a node is built) two blueprints define an actor of the same name.
    """

    def build(node_id: str) -> Mapping[str, Actor]:
        actors: dict[str, Actor] = {}
        for bp in blueprints:
            for name, actor in bp(node_id).items():
                if name in actors:
                    raise ValueError(f"two blueprints both define actor {name!r}")
                actors[name] = actor
        return actors

    return build
