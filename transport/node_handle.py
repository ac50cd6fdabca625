"""What the parts around a running node's actors share: its settings, runtime, events, transport.

``troupe node`` (:func:`transport.node_cli.run_node`) builds one :class:`NodeHandle` once its
runtime serves and hands it to the HTTP API (:mod:`transport.http`), the metrics endpoint
(:mod:`transport.metrics`) and the MongoDB records (:mod:`transport.mongo_records`). They read
actors' state through ``runtime.actor(name)`` (read-only) and ask the job engine through
``bridge`` (:class:`~transport.gateway_bridge.GatewayBridge`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .base import Transport
from .events import EventLog
from .gateway_bridge import GatewayBridge
from .runtime import NodeRuntime

if TYPE_CHECKING:
    from .node_cli import NodeSettings


@dataclass
class NodeHandle:
    """A running node, as seen by the services around its actors."""

    settings: NodeSettings
    runtime: NodeRuntime
    events: EventLog
    transport: Transport
    bridge: GatewayBridge
    started_wall: float
    """``time.time()`` when the node started (for ``node_uptime_seconds``)."""
    extras: dict[str, Any] = field(default_factory=dict)
    """What services publish for each other (``"metrics"``: the metrics registry, ``"pull"``:
    the pull-worker registry, ...)."""

    @property
    def node_id(self) -> str:
        return self.settings.node_id
