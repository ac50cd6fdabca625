"""What the HTTP API knows of the cluster: the leader, and the leader's balancer's workers.

How it works: a :class:`ClusterView` is a runtime service (see
:meth:`transport.runtime.NodeRuntime.add_service`) named ``$http`` on the node. When it runs it
sends :class:`~actors.elections.Subscribe` to the node's election actor, which answers at once
with its current view and sends :class:`~actors.elections.LeaderChanged` on every change, so
:attr:`leader` and :attr:`epoch` are always this node's view without asking. :meth:`workers`
sends :class:`~actors.jobs.inspect.InspectWorkers` with a fresh request number to the actor
``balancer`` on the leader (wherever it is) and waits for the
:class:`~actors.jobs.inspect.WorkersReport` with that number; the ``run`` task hands each reply
to its waiter. Nothing here changes an actor: the service only sends queries.
"""

from __future__ import annotations

import itertools
from typing import Any

import trio

from actors import ActorRef
from actors.elections import NAME as ELECTION
from actors.elections import LeaderChanged, Subscribe
from actors.jobs.inspect import InspectWorkers, WorkersReport
from actors.jobs.messages import BALANCER

from ..runtime import NodeRuntime

VIEW = "$http"
"""The service name replies come back to."""


class NoAnswer(Exception):
    """The leader's balancer could not be asked (one-line message)."""


class ClusterView:
    """This node's view of the leader, and queries to the leader's balancer."""

    def __init__(self, runtime: NodeRuntime, timeout: float = 3.0, name: str = VIEW) -> None:
        self.runtime = runtime
        self.timeout = timeout
        self.name = name
        self.leader: str | None = None
        self.epoch = 0
        self.changes = 0
        self._numbers = itertools.count(1)
        self._waiting: dict[int, trio.MemorySendChannel[WorkersReport]] = {}
        self._inbox = runtime.add_service(name)
        self._me = ActorRef(runtime.node_id, name)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow the leader and deliver replies until the runtime stops."""
        self.runtime.tell(ActorRef(self.runtime.node_id, ELECTION), Subscribe(), self._me)
        task_status.started()
        try:
            async with self._inbox:
                async for _sender, msg in self._inbox:
                    self._on(msg)
        finally:
            self.runtime.remove_service(self.name)

    def _on(self, msg: Any) -> None:
        if isinstance(msg, LeaderChanged):
            self.leader, self.epoch = msg.leader, msg.epoch
            self.changes += 1
        elif isinstance(msg, WorkersReport):
            waiter = self._waiting.pop(msg.req, None)
            if waiter is not None:
                waiter.send_nowait(msg)

    async def workers(self, timeout: float | None = None) -> WorkersReport:
        """The leader's balancer's report.

        Raises:
            NoAnswer: no leader is known, or its balancer did not answer within ``timeout``.
        """
        leader = self.leader
        if leader is None:
            raise NoAnswer("no leader is known yet; the workers are known by the leader's balancer")
        req = next(self._numbers)
        send, recv = trio.open_memory_channel[WorkersReport](1)
        self._waiting[req] = send
        try:
            if not self.runtime.tell(ActorRef(leader, BALANCER), InspectWorkers(req), self._me):
                raise NoAnswer(f"cannot reach the balancer of leader {leader}")
            with trio.move_on_after(self.timeout if timeout is None else timeout):
                return await recv.receive()
            raise NoAnswer(f"the balancer of leader {leader} did not answer in time")
        finally:
            self._waiting.pop(req, None)
