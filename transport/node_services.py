"""Start the parts of a node around its actors: transport, metrics, HTTP API, MongoDB records.

``troupe node`` (:func:`transport.node_cli.run_node`) calls, in order:

1. :func:`make_transport` -- the node-link transport named by ``TRANSPORT`` (``tcp``,
   ``websocket`` or ``redis``), with TLS when ``TLS_ENABLED`` is on;
2. :func:`node_metrics` -- the Prometheus registry, subscribed to the node's events before
   anything runs, so no leader change or job outcome is missed (None if metrics are off);
3. once the runtime serves, :func:`start_services` -- the metrics endpoint, the pull-worker
   registry, the HTTP API and the MongoDB records, each started with ``nursery.start`` and
   returning what ``node.ready`` prints (``metrics``, ``http``: the bound ``host:port``).

A part that cannot start (a port in use, a certificate that does not load) raises
:class:`ServiceStartError` with one line; the node then exits with status 1. A part whose
outside service is down at start (MongoDB, Redis) does not stop the node: it logs one line and
retries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from .base import Transport
from .events import EventLog
from .node_handle import NodeHandle

if TYPE_CHECKING:
    from .metrics import NodeMetrics
    from .node_cli import NodeSettings


class ServiceStartError(Exception):
    """A part of the node could not start (one-line message naming the setting to change)."""


def make_transport(settings: NodeSettings, events: EventLog) -> Transport:
    """The transport ``TRANSPORT`` names, configured from ``settings`` (see
    :mod:`transport.transports`)."""
    from .transports import make_node_transport

    return make_node_transport(settings, events)


def node_metrics(settings: NodeSettings, events: EventLog) -> NodeMetrics | None:
    """The node's metrics, fed by every event from now on (None with ``METRICS_ENABLED=false``)."""
    if not settings.service.metrics.enabled:
        return None
    from .metrics import NodeMetrics

    metrics = NodeMetrics(settings.node_id)
    events.subscribe(metrics.observe)
    return metrics


async def start_services(nursery: trio.Nursery, handle: NodeHandle, metrics: Any) -> dict[str, str]:
    """Start the metrics endpoint, pull workers, HTTP API and MongoDB records in ``nursery``.

    Returns:
        Fields for the ``node.ready`` event (bound addresses).

    Raises:
        ServiceStartError: a part could not start (one line).
    """
    svc = handle.settings.service
    ready: dict[str, str] = {}
    if metrics is not None:
        from .metrics import serve_metrics

        handle.extras["metrics"] = metrics
        host, port = await _start(nursery, serve_metrics, handle, "metrics", "METRICS_PORT")
        ready["metrics"] = f"{host}:{port}"
    if svc.http.enabled and handle.settings.job_engine:
        from .http.server import serve_http
        from .pull_workers import PullWorkers

        pull = PullWorkers(handle)
        handle.extras["pull"] = pull
        await nursery.start(pull.run)
        host, port = await _start(nursery, serve_http, handle, "HTTP API", "SERVER_PORT")
        ready["http"] = f"{host}:{port}"
    if svc.mongo.enabled:
        from .mongo_records import run_records

        await nursery.start(run_records, handle)
    return ready


async def _start(nursery: trio.Nursery, fn: Any, handle: NodeHandle, what: str, var: str) -> Any:
    try:
        return await nursery.start(fn, handle)
    except OSError as e:
        raise ServiceStartError(f"{what} cannot listen ({e}); choose a free port with {var}") from None
