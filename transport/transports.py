"""The node-link transport a ``troupe node`` uses, chosen by ``TRANSPORT``.

Members of one family (:mod:`transport.base`), all carrying the same codec frames, with the
same handshake (another cluster is refused), bounded outboxes, batching, reconnect with
backoff and jitter, ``max_frame`` and stats:

- ``tcp`` (default, :mod:`transport.tcp`): nodes dial each other's ``NODE_LISTEN``;
- ``websocket`` (:mod:`transport.ws`): nodes dial ``ws://host:port/`` (``wss://`` with TLS);
- ``redis`` (:mod:`transport.redis_transport`): each node's inbox is a list in the Redis of
  ``REDIS_*`` (``troupe:<cluster>:inbox:<node>``).

**Job clients** (:class:`~transport.jobs_client.JobClient`, ``troupe submit``, the bench) always
speak the plain TCP frame protocol to a node's ``NODE_LISTEN``, whatever ``TRANSPORT`` is, and
are answered on the connection they dialled; so they need no Redis, no WebSocket and no setting
to match the cluster's. With ``websocket`` the one listener tells them apart by their first
bytes (a WebSocket opens with ``GET``); with ``redis``, where nodes need no port,
:class:`NodeLinks` keeps a clients-only TCP listener on ``NODE_LISTEN`` beside the Redis links.
Plain TCP on a websocket or redis node refuses nodes, naming ``TRANSPORT``.

TLS (``TLS_ENABLED``, :mod:`transport.tls`) covers node links over ``tcp`` and ``websocket`` and
every client connection; the Redis connections themselves are plain TCP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from actors import ActorRef

from .base import Deliver, Transport
from .events import EventLog
from .redis_transport import RedisTransport
from .tcp import Address, TcpTransport
from .tls import TlsError, client_context, server_context
from .ws import WsTransport

if TYPE_CHECKING:
    from .node_cli import NodeSettings, RedisSettings


class NodeLinks(Transport):
    """Peers over one transport, job clients over a TCP listener beside it.

    Args:
        peers: how nodes reach each other (a :class:`~transport.redis_transport.RedisTransport`).
        clients: a TCP transport with ``clients_only`` on ``NODE_LISTEN``; its stats are
            merged into ``peers``' (one :class:`~transport.base.TransportStats`).
    """

    def __init__(self, peers: RedisTransport, clients: TcpTransport) -> None:
        self.node_id = peers.node_id
        self.peers = peers
        self.clients = clients
        self.stats = peers.stats
        clients.stats = peers.stats

    @property
    def listen_address(self) -> Address | None:
        """Where clients connect (``NODE_LISTEN``, its real port once started)."""
        return self.clients.listen_address

    def connected_peers(self) -> set[str]:
        """Peers reachable now (see :meth:`RedisTransport.connected_peers`)."""
        return self.peers.connected_peers()

    async def start(self, nursery: trio.Nursery, deliver: Deliver) -> None:
        await self.clients.start(nursery, deliver)
        await self.peers.start(nursery, deliver)

    def send(self, src: ActorRef, dst: ActorRef, msg: Any) -> bool:
        if self.clients.routes(dst.node):
            return self.clients.send(src, dst, msg)
        return self.peers.send(src, dst, msg)

    async def aclose(self) -> None:
        await self.clients.aclose()
        await self.peers.aclose()


def node_redis(settings: NodeSettings) -> RedisSettings:
    """Where the redis transport's server is (``REDIS_*``, resolved by the node's settings)."""
    return settings.redis


def make_node_transport(settings: NodeSettings, events: EventLog) -> Transport:
    """The transport of ``settings.service.transport``, configured for this node.

    Raises:
        ServiceStartError: a TLS file does not load, or the Redis settings are wrong (one line).
    """
    from .node_cli import NODE_MAX_FRAME
    from .node_services import ServiceStartError

    tls = settings.service.tls
    try:
        ssl_server, ssl_client = server_context(tls), client_context(tls)
    except TlsError as e:
        raise ServiceStartError(str(e)) from None
    backoff_max = min(2.0, max(0.2, settings.heartbeat.interval))
    kind = settings.service.transport
    if kind == "redis":
        try:
            r = node_redis(settings)
        except ValueError as e:
            raise ServiceStartError(str(e)) from None
        peers = RedisTransport(
            settings.node_id,
            settings.cluster,
            settings.peers,
            host=r.host,
            port=r.port,
            db=r.db,
            password=r.password,
            events=events,
            max_frame=NODE_MAX_FRAME,
            backoff_max=backoff_max,
            accept_joins=True,
        )
        clients = TcpTransport(
            settings.node_id,
            settings.cluster,
            settings.listen,
            {},
            events=events,
            max_frame=NODE_MAX_FRAME,
            accept_joins=True,
            ssl_server=ssl_server,
            clients_only=True,
        )
        return NodeLinks(peers, clients)
    cls = WsTransport if kind == "websocket" else TcpTransport
    return cls(
        settings.node_id,
        settings.cluster,
        settings.listen,
        settings.peers,
        events=events,
        backoff_max=backoff_max,
        accept_joins=True,
        max_frame=NODE_MAX_FRAME,
        ssl_server=ssl_server,
        ssl_client=ssl_client,
    )
