"""The gateway: where clients (CLI, Python API, HTTP edge) send store commands on any node.

How it works: a client sends :class:`StoreRequest` to the actor ``jobs`` on any node. The
gateway checks the command is a map with a known ``op`` and that clients do not send the
scheduler's own commands (``ready``, ``dispatch``, ``renew``, ``maintain``, ``report``), then
forwards it to the store under its own request number and relays the answer. A request the
store does not answer within ``timeout`` gets ``{"error": "store unavailable: ..."}``, so a
client never waits forever; resending is safe since every command is idempotent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._actor import Actor
from .._context import Context
from .._messages import ActorRef
from .machine import OPS
from .protocol import UNAVAILABLE, StoreReply, StoreRequest
from .store_client import StoreClient

CLIENT_OPS = tuple(op for op in OPS if op not in ("ready", "dispatch", "renew", "maintain", "report"))
"""Commands a client may send through the gateway."""


@dataclass(frozen=True, slots=True)
class _Sweep:
    pass


class Gateway(Actor):
    """Relays client commands to the store (see the module docstring)."""

    def __init__(self, store: ActorRef, timeout: float = 5.0) -> None:
        self.client = StoreClient(store, timeout)

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        ctx.set_timer("sweep", 0.5, _Sweep())

    def receive(self, ctx: Context, msg: Any) -> None:
        if isinstance(msg, StoreRequest) and ctx.sender is not None:
            cmd = msg.command
            op = cmd.get("op") if isinstance(cmd, dict) else None
            if op not in CLIENT_OPS:
                why = f"unknown or reserved op {op!r}: use one of {', '.join(CLIENT_OPS)}"
                ctx.reply(StoreReply(msg.req, {"error": why}))
                return
            self.client.request(ctx, cmd, "relay", (ctx.sender, msg.req))
        elif isinstance(msg, StoreReply):
            p = self.client.take(msg.req)
            if p is not None:
                ctx.send(p.data[0], StoreReply(p.data[1], msg.result))
        elif isinstance(msg, _Sweep):
            ctx.set_timer("sweep", 0.5, _Sweep())
            for p in self.client.overdue(ctx.now):
                ctx.send(p.data[0], StoreReply(p.data[1], {"error": f"{UNAVAILABLE}: no answer in time"}))
