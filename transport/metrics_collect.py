"""The node metrics read at scrape time: uptime, worker slots, runtime and transport counters.

How it works: :class:`RuntimeCollector` is a custom ``prometheus_client`` collector registered
in a :class:`~transport.metrics.NodeMetrics` registry by ``attach``. Each scrape calls
:meth:`RuntimeCollector.collect`, which reads plain attributes of the running node (never
awaits, never writes) and yields:

- ``node_uptime_seconds`` (from ``NodeHandle.started_wall``) and ``troupe_node_info``;
- ``worker_active_gauge{state="busy"|"idle"}``: this node's job **slots**, busy (an attempt
  runs) or idle, over its worker pool and any pull workers it hosts (every worker actor);
- ``troupe_cluster_workers{state="online"|"offline"}``: the workers the leader's balancer
  knows, exported by the node whose scheduler is active (the leader) only;
- the runtime's :class:`~transport.runtime.RuntimeStats` (messages delivered, drops by
  reason, mailbox drops by actor, handler errors, jobs run) and the transport's
  :class:`~transport.base.TransportStats` (messages sent/received, batches, drops by reason,
  refused connections, and each ``extra`` counter).

Counters read this way are exact at every scrape, with no sampling delay.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from actors.jobs.messages import BALANCER, SCHEDULER
from actors.jobs.worker import Worker

from .runtime import NodeRuntime

if TYPE_CHECKING:
    from .metrics import NodeMetrics
    from .node_handle import NodeHandle

_TRANSPORT_DROPS = ("outbox_full", "unroutable", "malformed", "too_large")
_RUNTIME_DROPS = ("mailbox_full", "no_actor", "not_encodable")


def ticket_type(runtime: NodeRuntime, rec: dict[str, Any]) -> str | None:
    """The job type of the attempt a ``job.started`` event names, read from the running ticket
    of the worker actor that emitted it (None if it cannot be found)."""
    actor = runtime.actor(rec.get("actor") or "")
    running = getattr(actor, "running", None)
    if not isinstance(running, dict):
        return None
    ticket = running.get(f"{rec.get('id')}#{rec.get('attempt')}")
    jtype = getattr(ticket, "type", None)
    return jtype if isinstance(jtype, str) else None


class RuntimeCollector:
    """Yields the scrape-time metrics of ``handle``'s node (see the module docstring)."""

    def __init__(self, handle: NodeHandle, metrics: NodeMetrics) -> None:
        self.handle = handle
        self.metrics = metrics
        self.node = handle.node_id

    def collect(self) -> Iterator[Metric]:
        node = self.node
        settings = self.handle.settings
        uptime = GaugeMetricFamily("node_uptime_seconds", "Seconds since this node started", labels=["node"])
        uptime.add_metric([node], max(0.0, time.time() - self.handle.started_wall))
        yield uptime
        info = GaugeMetricFamily(
            "troupe_node_info",
            "This node's configuration (value 1)",
            labels=["node", "cluster", "election", "store", "transport"],
        )
        election = "raft" if settings.store == "raft" and settings.job_engine else settings.election
        store = settings.store if settings.job_engine else "none"
        info.add_metric([node, settings.cluster, election, store, settings.service.transport], 1)
        yield info
        yield from self._workers()
        yield from self._runtime()
        yield from self._transport()

    def _workers(self) -> Iterator[Metric]:
        runtime = self.handle.runtime
        busy = slots = 0
        for name in runtime.actor_names():
            actor = runtime.actor(name)
            if isinstance(actor, Worker):
                busy += len(actor.running)
                slots += int(getattr(actor, "capacity", actor.cfg.worker_count))
        if self.handle.settings.job_engine:
            gauge = GaugeMetricFamily(
                "worker_active_gauge",
                "This node's job slots: busy (running an attempt) or idle",
                labels=["node", "state"],
            )
            gauge.add_metric([self.node, "busy"], busy)
            gauge.add_metric([self.node, "idle"], max(0, slots - busy))
            yield gauge
        scheduler, balancer = runtime.actor(SCHEDULER), runtime.actor(BALANCER)
        pool = getattr(balancer, "pool", None)
        if getattr(scheduler, "token", None) is not None and pool is not None:
            views = pool.views()
            online = sum(1 for v in views if v.online)
            cluster = GaugeMetricFamily(
                "troupe_cluster_workers",
                "Workers the leader's balancer knows, by state",
                labels=["node", "state"],
            )
            cluster.add_metric([self.node, "online"], online)
            cluster.add_metric([self.node, "offline"], len(views) - online)
            yield cluster

    def _runtime(self) -> Iterator[Metric]:
        stats = self.handle.runtime.stats
        node = self.node
        yield _counter(
            "troupe_runtime_messages_delivered", "Messages delivered to actors", node, stats.delivered
        )
        drops = CounterMetricFamily(
            "troupe_runtime_dropped", "Messages the runtime dropped, by reason", labels=["node", "reason"]
        )
        for reason in _RUNTIME_DROPS:
            drops.add_metric([node, reason], getattr(stats, f"dropped_{reason}"))
        yield drops
        mailbox = CounterMetricFamily(
            "troupe_mailbox_dropped", "Messages dropped at a full mailbox, by actor", labels=["node", "actor"]
        )
        for actor, n in sorted(stats.per_actor_dropped.items()):
            mailbox.add_metric([node, actor], n)
        yield mailbox
        yield _counter(
            "troupe_handler_errors", "Exceptions raised by actor handlers", node, stats.handler_errors
        )
        yield _counter("troupe_runtime_jobs_run", "Job processors this node ran", node, stats.jobs_run)
        by_type = CounterMetricFamily(
            "troupe_messages",
            "Messages between this node and others, by direction and message type",
            labels=["node", "direction", "type"],
        )
        for direction, counts in (("sent", stats.sent_by_type), ("received", stats.received_by_type)):
            for kind, n in sorted(counts.items()):
                by_type.add_metric([node, direction, kind], n)
        yield by_type

    def _transport(self) -> Iterator[Metric]:
        stats = self.handle.transport.stats
        node = self.node
        messages = CounterMetricFamily(
            "troupe_transport_messages", "Messages between nodes, by direction", labels=["node", "direction"]
        )
        messages.add_metric([node, "sent"], stats.sent)
        messages.add_metric([node, "received"], stats.received)
        yield messages
        yield _counter("troupe_transport_batches", "Writes of batched frames", node, stats.batches)
        drops = CounterMetricFamily(
            "troupe_transport_dropped", "Frames the transport dropped, by reason", labels=["node", "reason"]
        )
        for reason in _TRANSPORT_DROPS:
            drops.add_metric([node, reason], getattr(stats, f"dropped_{reason}"))
        yield drops
        yield _counter(
            "troupe_transport_connections_refused", "Connections refused", node, stats.connections_refused
        )
        extra = CounterMetricFamily(
            "troupe_transport_extra", "Counters particular to this transport", labels=["node", "name"]
        )
        for name, n in sorted(stats.extra.items()):
            extra.add_metric([node, name], n)
        yield extra


def _counter(name: str, help: str, node: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help, labels=["node"])
    family.add_metric([node], value)
    return family
