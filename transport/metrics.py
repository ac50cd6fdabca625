"""Prometheus metrics of one node: counters fed by its events, gauges read while it serves.

How it works
------------
:class:`NodeMetrics` owns a private :class:`~prometheus_client.CollectorRegistry` (a process
may run several nodes: the tests do) and three sources fill it:

1. **events**: :meth:`NodeMetrics.observe` is subscribed to the node's
   :class:`~transport.events.EventLog` before anything runs and is called for every event, so
   it is one dict lookup on ``kind``; the kinds it counts are in ``_handlers``, every other
   kind costs one more ``get`` (a ``level`` of ``warning``/``error`` is counted by kind);
2. **the store**, sampled every :data:`~transport.metrics_http.SAMPLE_INTERVAL` seconds by
   :func:`serve_metrics` (the ``stats`` command through the node's gateway):
   :meth:`NodeMetrics.apply_stats` sets ``queue_depth_gauge``; a failed sample keeps the old
   values and counts ``troupe_metrics_sample_errors_total``;
3. **the runtime**, read when Prometheus scrapes (:mod:`transport.metrics_collect`): uptime,
   worker slots, runtime and transport counters, which are exact at any moment.

Every series carries ``node`` (the node id), so a cluster's series differ; a cluster-wide view
sums counters over nodes, but takes the ``max`` of ``queue_depth_gauge`` (every node samples
the same store).

The reference's names are kept: ``job_processing_duration_seconds`` (histogram by ``type`` and
``outcome``), ``election_leader_changes_total``, ``queue_depth_gauge`` (by ``state``, see
:data:`QUEUE_STATES`), ``node_uptime_seconds`` and ``worker_active_gauge``, which counts job
**slots** by ``state``: ``busy`` (running an attempt) or ``idle``, over the node's worker pool
and the pull workers it hosts; the workers the leader knows are ``troupe_cluster_workers``.
Everything else is named ``troupe_*``.

What comes from which event
---------------------------
- ``job.started``/``job.finished`` (on the node that ran the job): ``troupe_jobs_total`` and
  ``job_processing_duration_seconds`` by ``type`` and ``outcome`` (``success``, ``failure``,
  or ``lost`` when the lease was taken away first); ``troupe_jobs_started_total``;
  ``troupe_job_retries_total`` (attempts after the first). The start time of each running
  attempt is kept in a dict bounded by :data:`MAX_IN_FLIGHT`. A job's type is the event's
  ``type`` field, else read from the worker actor's running ticket.
- ``scheduler.maintained`` (leader): ``troupe_lease_expiries_total`` and
  ``troupe_jobs_requeued_total`` (retrying jobs whose backoff ended).
- ``job.submitted`` (gateway), if emitted: ``troupe_jobs_submitted_total``. Until that event is
  seen, the leader counts the rise of the store's job total between samples instead; the
  leader likewise counts ``troupe_dead_letters_total`` from the rise of the dead-letter set
  (both are net of purges and requeues within one sample interval).
- ``leader.changed``: ``election_leader_changes_total``, ``troupe_is_leader``,
  ``troupe_election_epoch``; ``peer.*``: ``troupe_peer_transitions_total``; ``worker.*``
  (leader's balancer): ``troupe_worker_transitions_total``; ``job.lease_lost``,
  ``job.report_refused``; ``store.unavailable``: ``troupe_store_unavailable_total``;
  ``store.error``/``scheduler.store_error``: ``troupe_store_errors_total``; transport
  warnings (``tcp.*``, ``ws.*``, ``redis.*``): ``troupe_transport_errors_total``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.registry import Collector

from .metrics_http import serve_metrics as serve_metrics

if TYPE_CHECKING:
    from .node_handle import NodeHandle

Record = dict[str, Any]

# No ``*_created`` series beside each counter: they double what is scraped and no panel uses
# them. (A process-wide switch of prometheus_client; a node process holds only our metrics.)
disable_created_metrics()  # type: ignore[no-untyped-call]  # (untyped in prometheus_client)

MAX_IN_FLIGHT = 50_000
"""Running attempts whose start time is kept (the oldest is forgotten beyond this)."""
MAX_TYPES = 200
"""Distinct job types given their own series; more (say, random types a client submits) are
counted as ``other``, so a client cannot grow the registry without bound."""
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Seconds: from a no-op job to a five-minute one."""
QUEUE_STATES = ("pending", "delayed", "running", "retrying", "dead", "success", "failed", "cancelled")
"""``queue_depth_gauge`` states: ``pending`` jobs are due now, ``delayed`` ones wait for their
``scheduled_at``; the others are job statuses (``dead``: the dead-letter queue)."""
TRANSPORT_PREFIXES = ("tcp.", "ws.", "websocket.", "redis.")
_PROBLEM_LEVELS = ("warning", "error")


class NodeMetrics:
    """The metrics of node ``node_id`` (see the module docstring).

    Attributes:
        registry: the private registry :func:`serve_metrics` exposes.
        leader: the leader this node last heard of (from ``leader.changed``).
        type_of: how to find the job type of a ``job.started`` event that has no ``type``
            field (set by :meth:`attach`: the emitting worker actor's running ticket).
    """

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.registry = CollectorRegistry()
        self.leader: str | None = None
        r = self.registry
        node = ("node",)
        typed = ("node", "type")
        self.job_duration = Histogram(
            "job_processing_duration_seconds",
            "Seconds a job attempt ran on this node, by type and outcome",
            ("node", "type", "outcome"),
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.jobs = Counter(
            "troupe_jobs",
            "Job attempts finished on this node, by type and outcome",
            (*typed, "outcome"),
            registry=r,
        )
        self.jobs_started = Counter(
            "troupe_jobs_started", "Job attempts started on this node", typed, registry=r
        )
        self.retries = Counter(
            "troupe_job_retries", "Attempts after a job's first started here", typed, registry=r
        )
        self.lease_lost = Counter(
            "troupe_job_leases_lost", "Running attempts whose lease the store took away", node, registry=r
        )
        self.reports_refused = Counter(
            "troupe_job_reports_refused", "Job reports the store refused (lease lost)", node, registry=r
        )
        self.lease_expiries = Counter(
            "troupe_lease_expiries",
            "Leases the leader found expired (their jobs retried or dead)",
            node,
            registry=r,
        )
        self.requeued = Counter(
            "troupe_jobs_requeued",
            "Retrying jobs the leader made ready after their backoff",
            node,
            registry=r,
        )
        self.dead_letters = Counter(
            "troupe_dead_letters", "Jobs that entered the dead-letter queue", node, registry=r
        )
        self.submitted = Counter("troupe_jobs_submitted", "Jobs submitted (created)", node, registry=r)
        self.leader_changes = Counter(
            "election_leader_changes", "Leader changes this node's election reported", node, registry=r
        )
        self.is_leader = Gauge(
            "troupe_is_leader", "1 while this node's election says it leads", node, registry=r
        )
        self.epoch = Gauge(
            "troupe_election_epoch", "Epoch (term) of the current leadership", node, registry=r
        )
        self.peer_transitions = Counter(
            "troupe_peer_transitions", "Failure detector verdicts on peers", ("node", "state"), registry=r
        )
        self.worker_transitions = Counter(
            "troupe_worker_transitions",
            "Workers the leader's balancer saw join or go",
            ("node", "state"),
            registry=r,
        )
        self.store_unavailable = Counter(
            "troupe_store_unavailable", "Times the job store could not be reached", node, registry=r
        )
        self.store_errors = Counter(
            "troupe_store_errors", "Store commands that failed, by who saw it", ("node", "source"), registry=r
        )
        self.transport_errors = Counter(
            "troupe_transport_errors",
            "Transport warnings and errors, by event kind",
            ("node", "kind"),
            registry=r,
        )
        self.problems = Counter(
            "troupe_log_events",
            "Warnings and errors the node logged, by kind",
            ("node", "kind", "level"),
            registry=r,
        )
        self.queue_depth = Gauge(
            "queue_depth_gauge", "Jobs in the store by state (sampled)", ("node", "state"), registry=r
        )
        self.sample_errors = Counter(
            "troupe_metrics_sample_errors", "Store samples that failed (old values kept)", node, registry=r
        )
        for metric in (
            self.lease_lost, self.reports_refused, self.lease_expiries, self.requeued, self.dead_letters,
            self.submitted, self.leader_changes, self.is_leader, self.epoch, self.store_unavailable,
            self.sample_errors,
        ):  # fmt: skip
            metric.labels(node=node_id)  # exported at 0 from the start
        for source in ("store", "scheduler"):
            self.store_errors.labels(node=node_id, source=source)
        self._starts: dict[tuple[Any, Any], tuple[float | None, str]] = {}
        self._lost: set[tuple[Any, Any]] = set()
        self._job_series: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._type_series: dict[str, tuple[Any, Any]] = {}
        self._types: set[str] = set()
        self._submitted_events = False
        self._last_total: int | None = None
        self._last_dead: int | None = None
        self.type_of: Callable[[Record], str | None] | None = None
        self._handlers: dict[str, Callable[[Record], None]] = {
            "job.started": self._on_started,
            "job.finished": self._on_finished,
            "job.lease_lost": self._on_lease_lost,
            "job.report_refused": lambda rec: self.reports_refused.labels(node=node_id).inc(),
            "job.submitted": self._on_submitted,
            "scheduler.maintained": self._on_maintained,
            "leader.changed": self._on_leader,
            "store.unavailable": lambda rec: self.store_unavailable.labels(node=node_id).inc(),
            "store.error": lambda rec: self.store_errors.labels(node=node_id, source="store").inc(),
            "scheduler.store_error": lambda rec: self.store_errors.labels(
                node=node_id, source="scheduler"
            ).inc(),
        }
        for kind in ("peer.suspect", "peer.dead", "peer.alive"):
            self._handlers[kind] = self._counter(self.peer_transitions, kind.split(".", 1)[1])
        for kind in ("worker.registered", "worker.online", "worker.offline"):
            self._handlers[kind] = self._counter(self.worker_transitions, kind.split(".", 1)[1])

    def _counter(self, metric: Counter, state: str) -> Callable[[Record], None]:
        child = metric.labels(node=self.node_id, state=state)
        return lambda rec: child.inc()

    # --- wiring ----------------------------------------------------------------------------

    def attach(self, handle: NodeHandle) -> None:
        """Read the running node too: job types from its worker actors, and the runtime,
        transport and worker gauges at each scrape (:mod:`transport.metrics_collect`)."""
        from .metrics_collect import RuntimeCollector, ticket_type

        runtime = handle.runtime
        self.type_of = lambda rec: ticket_type(runtime, rec)
        self.add_collector(RuntimeCollector(handle, self))

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    # --- events ----------------------------------------------------------------------------

    def observe(self, record: Record) -> None:
        """Count one event (subscribed to the node's event log; see the module docstring)."""
        kind = record["kind"]
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(record)
        level = record.get("level")
        if level in _PROBLEM_LEVELS:
            self._on_problem(kind, level)

    def _type_label(self, jtype: Any) -> str:
        name = str(jtype) if jtype else "unknown"
        if name in self._types:
            return name
        if len(self._types) >= MAX_TYPES:
            return "other"
        self._types.add(name)
        return name

    def _on_started(self, rec: Record) -> None:
        key = (rec.get("id"), rec.get("attempt"))
        jtype = rec.get("type")
        if jtype is None and self.type_of is not None:
            jtype = self.type_of(rec)
        label = self._type_label(jtype)
        self._starts[key] = (rec.get("mono"), label)
        if len(self._starts) > MAX_IN_FLIGHT:
            del self._starts[next(iter(self._starts))]
        started, retried = self._per_type(label)
        started.inc()
        attempt = rec.get("attempt")
        if isinstance(attempt, int) and attempt > 1:
            retried.inc()

    def _per_type(self, label: str) -> tuple[Any, Any]:
        series = self._type_series.get(label)
        if series is None:
            series = (
                self.jobs_started.labels(node=self.node_id, type=label),
                self.retries.labels(node=self.node_id, type=label),
            )
            self._type_series[label] = series
        return series

    def _on_finished(self, rec: Record) -> None:
        key = (rec.get("id"), rec.get("attempt"))
        start = self._starts.pop(key, None)
        jtype = rec.get("type")
        label = self._type_label(jtype) if jtype is not None else (start[1] if start else "unknown")
        if rec.get("ok") is True:
            outcome = "success"
        elif key in self._lost:
            outcome = "lost"
        else:
            outcome = "failure"
        self._lost.discard(key)
        series = self._job_series.get((label, outcome))
        if series is None:
            series = (
                self.jobs.labels(node=self.node_id, type=label, outcome=outcome),
                self.job_duration.labels(node=self.node_id, type=label, outcome=outcome),
            )
            self._job_series[(label, outcome)] = series
        series[0].inc()
        began, ended = (start[0] if start else None), rec.get("mono")
        if isinstance(began, (int, float)) and isinstance(ended, (int, float)):
            series[1].observe(max(0.0, ended - began))

    def _on_lease_lost(self, rec: Record) -> None:
        self.lease_lost.labels(node=self.node_id).inc()
        if len(self._lost) >= MAX_IN_FLIGHT:
            self._lost.clear()
        self._lost.add((rec.get("id"), rec.get("attempt")))

    def _on_submitted(self, rec: Record) -> None:
        self._submitted_events = True
        self.submitted.labels(node=self.node_id).inc()

    def _on_maintained(self, rec: Record) -> None:
        expired, retried = rec.get("expired"), rec.get("retried")
        if isinstance(expired, int) and expired > 0:
            self.lease_expiries.labels(node=self.node_id).inc(expired)
        if isinstance(retried, int) and retried > 0:
            self.requeued.labels(node=self.node_id).inc(retried)

    def _on_leader(self, rec: Record) -> None:
        leader = rec.get("leader")
        self.leader = leader if isinstance(leader, str) and leader else None
        self.leader_changes.labels(node=self.node_id).inc()
        self.is_leader.labels(node=self.node_id).set(1 if self.leader == self.node_id else 0)
        epoch = rec.get("epoch")
        if isinstance(epoch, (int, float)):
            self.epoch.labels(node=self.node_id).set(epoch)

    def _on_problem(self, kind: str, level: str) -> None:
        self.problems.labels(node=self.node_id, kind=kind, level=level).inc()
        if kind.startswith(TRANSPORT_PREFIXES):
            self.transport_errors.labels(node=self.node_id, kind=kind).inc()

    # --- store samples ---------------------------------------------------------------------

    def apply_stats(self, result: Any) -> bool:
        """Set the queue depths from a ``stats`` result (see :mod:`actors.jobs.machine`).

        Returns:
            False (and counts a sample error, keeping the old values) if ``result`` is an
            ``{"error": ...}`` or not a stats result.
        """
        depth = _depths(result)
        if depth is None:
            self.sample_errors.labels(node=self.node_id).inc()
            return False
        for state, n in depth.items():
            self.queue_depth.labels(node=self.node_id, state=state).set(n)
        total, dead = int(result["total"]), depth["dead"]
        if self.leader == self.node_id:
            if self._last_dead is not None and dead > self._last_dead:
                self.dead_letters.labels(node=self.node_id).inc(dead - self._last_dead)
            if not self._submitted_events and self._last_total is not None and total > self._last_total:
                self.submitted.labels(node=self.node_id).inc(total - self._last_total)
        self._last_total, self._last_dead = total, dead
        return True


def _depths(result: Any) -> dict[str, int] | None:
    """``queue_depth_gauge`` values from a stats result, or None if it is not one."""
    if not isinstance(result, dict) or "error" in result:
        return None
    by_status = result.get("by_status")
    if not isinstance(by_status, dict):
        return None
    values = {
        "pending": result.get("ready"),
        "delayed": result.get("delayed"),
        "running": result.get("running"),
        "retrying": result.get("retrying"),
        "dead": result.get("dlq"),
        "success": by_status.get("SUCCESS"),
        "failed": by_status.get("FAILED"),
        "cancelled": by_status.get("CANCELLED"),
    }
    out: dict[str, int] = {}
    for state, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return None
        out[state] = value
    total = result.get("total")
    if isinstance(total, bool) or not isinstance(total, int):
        return None
    return out
