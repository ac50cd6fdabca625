"""Ask the job engine from inside a node process: the HTTP API, metrics and records use this.

How it works: a :class:`GatewayBridge` is a runtime service (see
:meth:`transport.runtime.NodeRuntime.add_service`) named ``$bridge`` on the node. ``request``
sends a :class:`~actors.jobs.protocol.StoreRequest` with a fresh request number to the node's
own gateway actor ``jobs``, which relays it to the store wherever it is (so a follower serves
every command), and waits for the :class:`~actors.jobs.protocol.StoreReply` with that number.
The bridge's ``run`` task hands each reply to its waiter. A request the gateway does not
answer within ``timeout`` (or that it refuses, or whose store is unavailable) comes back as
``{"error": "..."}``, never as an exception: callers turn that into a 4xx/503 answer.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import trio

from actors import ActorRef
from actors.jobs.messages import GATEWAY
from actors.jobs.protocol import UNAVAILABLE, StoreReply, StoreRequest

from .runtime import NodeRuntime

BRIDGE = "$bridge"
"""The service name replies come back to."""


class GatewayBridge:
    """Sends store commands to the local gateway and awaits their replies (module docstring)."""

    def __init__(self, runtime: NodeRuntime, timeout: float = 5.0, name: str = BRIDGE) -> None:
        self.runtime = runtime
        self.timeout = timeout
        self.name = name
        self._numbers = itertools.count(1)
        self._waiting: dict[int, trio.MemorySendChannel[Any]] = {}
        self._inbox = runtime.add_service(name)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver replies until the runtime stops (run it in the node's nursery)."""
        task_status.started()
        async with self._inbox:
            async for _sender, msg in self._inbox:
                if isinstance(msg, StoreReply):
                    waiter = self._waiting.pop(msg.req, None)
                    if waiter is not None:
                        waiter.send_nowait(msg.result)

    async def request(self, command: Mapping[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """The result of one store command (a dict; ``{"error": ...}`` if refused or unanswered)."""
        req = next(self._numbers)
        send, recv = trio.open_memory_channel[Any](1)
        self._waiting[req] = send
        me = ActorRef(self.runtime.node_id, self.name)
        try:
            if not self.runtime.tell(
                ActorRef(self.runtime.node_id, GATEWAY), StoreRequest(req, dict(command)), me
            ):
                return {"error": f"{UNAVAILABLE}: the node's gateway is busy or not running"}
            with trio.move_on_after(self.timeout if timeout is None else timeout):
                result = await recv.receive()
                return result if isinstance(result, dict) else {"error": f"unexpected reply {result!r}"}
            return {"error": f"{UNAVAILABLE}: no answer in time"}
        finally:
            self._waiting.pop(req, None)
