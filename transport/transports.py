"""The node-link transport a ``troupe node`` uses, chosen by ``TRANSPORT``.

Members of one family (:mod:`transport.base`): ``tcp`` (:mod:`transport.tcp`, the default),
``websocket`` and ``redis``. Every one carries the same codec frames, refuses peers of another
cluster and keeps accepting :class:`~transport.jobs_client.JobClient` connections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Transport
from .events import EventLog
from .tcp import TcpTransport

if TYPE_CHECKING:
    from .node_cli import NodeSettings


def make_node_transport(settings: NodeSettings, events: EventLog) -> Transport:
    """The transport of ``settings.service.transport``, configured for this node."""
    from .node_cli import NODE_MAX_FRAME

    return TcpTransport(
        settings.node_id,
        settings.cluster,
        settings.listen,
        settings.peers,
        events=events,
        backoff_max=min(2.0, max(0.2, settings.heartbeat.interval)),
        accept_joins=True,
        max_frame=NODE_MAX_FRAME,
    )
