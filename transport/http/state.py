"""What every route of a node's HTTP API shares, and the one way routes ask the job store.

An :class:`Api` is kept on ``app.state.api``; routes get it with ``Depends(get_api)``. Store
commands (see :mod:`actors.jobs.machine`) go through :meth:`Api.ask`, which sends them through
the node's :class:`~transport.gateway_bridge.GatewayBridge` (so any node, a follower as well as
the leader, serves every command) and raises :class:`~transport.http.errors.ApiError` for a
refusal, a missing job or an unreachable store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from ..node_handle import NodeHandle
from .auth import Authenticator
from .cluster_view import ClusterView
from .errors import store_error


@dataclass
class Api:
    """A node's HTTP API: the node, its authenticator and its view of the cluster."""

    handle: NodeHandle
    auth: Authenticator
    view: ClusterView

    @property
    def node_id(self) -> str:
        return self.handle.node_id

    async def ask(self, command: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """The result of one store command.

        Raises:
            ApiError: 404/409/400 for a refusal, 503 if the store cannot be reached.
        """
        result = await self.handle.bridge.request(command, timeout)
        if "error" in result:
            raise store_error(result, str(command.get("op", "")))
        return result


def get_api(request: Request) -> Api:
    """The :class:`Api` of the app serving ``request`` (a FastAPI dependency)."""
    api: Api = request.app.state.api
    return api


ApiDep = Annotated[Api, Depends(get_api)]
"""A route parameter: the serving node's :class:`Api`."""
