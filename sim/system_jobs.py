"""Simulation of the job engine: scenario parameters, the blueprint (the job cluster plus a
submitting client) and the checkers (registered in :data:`sim.systems.SYSTEMS` as ``"jobs"``).

Scenario table (seconds; every key optional)::

    [jobs]
    store = "memory"            # "memory": one MemoryStore on store_node; "raft": on every node
    store_node = "store"        # memory: the node that runs only the store (must be a node)
    client_node = "client"      # the client's node; if not a node, the client runs on the
                                # first cluster node. Other nodes form the cluster.
    election = "raft"           # memory store: raft, bully or gossip (raft store: always raft)
    election_timeout = 0.3
    interval = 0.1
    snapshot_threshold = 0      # raft store: compact the log after this many entries (0: never)
    workers = ["n1", "n2"]      # nodes running a worker pool (default: every cluster node)
    worker_count = 4            # JobsConfig: slots per worker, heartbeat_interval,
    heartbeat_interval = 1.0    # offline_after, lease_seconds, tick, maintain_interval,
    offline_after = 3.0         # batch, request_timeout, status_delay, strategy
    strategy = "least_loaded"
    retry_policy = "exponential" # RetryPolicy: retry_base_delay, retry_max_delay,
    retry_base_delay = 0.2       # retry_multiplier, retry_jitter
    retry_max_delay = 2.0
    count = 60                  # the workload: jobs the client submits,
    rate = 20.0                 # per second, from
    start = 1.0                 # this time on,
    priority = [1, 10]          # priorities drawn uniformly from this range,
    max_retries = 2             # each job's retry budget and
    timeout = 2.0               # timeout_seconds (a type may set its own),
    delayed = 0.1               # the fraction delayed by up to
    delay = 3.0                 # this many seconds (scheduled_at),
    cancel = 0.0                # the fraction cancelled cancel_after seconds after acceptance,
    cancel_after = 0.5
    requeue_at = 0.0            # when > 0: the client requeues the dead-letter queue once then
    resend = 1.5                # the client resends an unanswered command after this long
    settle = 0.0                # liveness: see below (0: computed from the timings)
    [[jobs.types]]              # job types, drawn by weight (default: one type "work")
    type = "email"; weight = 3; duration = { dist = "uniform", low = 0.05, high = 0.3 }
    failure = 0.1; timeout = 1.0

The job types make the simulator's :class:`~sim.jobs.JobModel` (``job_model``): each type's
duration distribution and failure probability.

The client (actor ``jobs-client``) submits ``count`` jobs ``j1..jN`` at ``rate`` through the
gateway of a cluster node, persisting each job before sending it, and resends every submit not
acknowledged within ``resend`` seconds to the next node's gateway (submit is idempotent by id).
A restarted client reloads its jobs and carries on. On acknowledgement it emits
``client.accepted`` (``id``, ``priority``, ``max_retries``, as the store recorded them). Cancels
emit ``client.cancelled`` / ``client.cancel_refused``, the requeue ``client.requeued``.

How the checkers see the store (see :mod:`sim.checkers_jobs`): with the memory store, the store
actor's ``store.applied`` events are the complete history of writes in store order (each is
emitted in the same step that syncs the write), and the store's synced records in
``RunResult.durable`` are the end state. With Raft, ``store.applied`` comes only from the node
that proposed a command and only if it heard the result, so it has gaps; instead the checkers
take the most up-to-date durable Raft log (it holds every committed entry), replay it through a
fresh :class:`~actors.jobs.machine.JobMachine` with the same retry policy, and audit each result
exactly as the store does; the replayed machine is the end state. By default the simulated Raft
never compacts its log (``snapshot_threshold = 0``) so the replay covers the whole run; with
snapshots the replay starts from the latest one and the history checkers see what follows it.

Liveness: once the run has had ``quiet`` seconds without faults (``settle``, or by default the
time to elect a leader and hear from the workers plus ``margin``), every accepted job must be
done (SUCCESS, FAILED, DEAD or CANCELLED) unless it moved less than ``margin`` seconds before
the end or waits for a deadline (delay, retry backoff or lease) that is not yet ``margin``
seconds past by the scheduler's clock; ``margin`` covers one step of a job's life (promotion,
dispatch, the longest run, the report, with resends). The swarm's quiet phase is ``quiet``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from actors import Actor, ActorRef, Context, NodeBlueprint, message
from actors.elections import NAME as ELECTION
from actors.elections.raft import Raft
from actors.jobs import Job, RetryPolicy
from actors.jobs._plain import job_to_plain
from actors.jobs.blueprint import jobs_blueprint
from actors.jobs.config import JobsConfig
from actors.jobs.messages import GATEWAY
from actors.jobs.protocol import StoreReply, StoreRequest

from .checkers_jobs import CLIENT, check_jobs
from .jobs import JobModel, JobSpec
from .network import Latency, Uniform
from .result import RunResult, Violation
from .scenario import Fields, ScenarioError, parse_latency
from .systems import System, register_system

STORE_MODES = ("memory", "raft")


@dataclass(frozen=True, slots=True)
class JobType:
    """One job type of the workload: how often it is drawn and how the simulator runs it."""

    type: str
    weight: float = 1.0
    duration: Latency = field(default_factory=lambda: Uniform(0.05, 0.3))
    failure: float = 0.0
    timeout: float | None = None

    def __post_init__(self) -> None:
        if not self.weight > 0:
            raise ValueError(f"job type {self.type!r}: weight must be > 0, got {self.weight}")
        if not 0.0 <= self.failure <= 1.0:
            raise ValueError(f"job type {self.type!r}: failure must be in [0, 1], got {self.failure}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"job type {self.type!r}: timeout must be > 0, got {self.timeout}")


@dataclass(frozen=True, slots=True)
class Workload:
    """What the client submits (see the module docstring)."""

    count: int = 60
    rate: float = 20.0
    start: float = 1.0
    priority: tuple[int, int] = (1, 10)
    max_retries: int = 2
    timeout: float = 2.0
    delayed: float = 0.0
    delay: float = 3.0
    cancel: float = 0.0
    cancel_after: float = 0.5
    requeue_at: float = 0.0
    resend: float = 1.5

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError(f"count must be >= 0, got {self.count}")
        for name in ("rate", "timeout", "resend"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        low, high = self.priority
        if not 1 <= low <= high <= 10:
            raise ValueError(f"priority must be a range [low, high] within 1..10, got {list(self.priority)}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        for name in ("delayed", "cancel"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a fraction in [0, 1], got {getattr(self, name)}")
        for name in ("start", "delay", "cancel_after", "requeue_at"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class JobsSimConfig:
    """The ``[jobs]`` table: where the store lives, the engine's settings, the workload."""

    store: str = "memory"
    store_node: str = "store"
    client_node: str = "client"
    election: str = "raft"
    election_timeout: float = 0.3
    interval: float = 0.1
    snapshot_threshold: int = 0
    workers: tuple[str, ...] | None = None
    engine: JobsConfig = field(
        default_factory=lambda: JobsConfig(
            heartbeat_interval=1.0,
            offline_after=3.0,
            tick=0.05,
            batch=64,
            request_timeout=1.0,
            policy=RetryPolicy(base_delay=0.2, max_delay=2.0),
        )
    )
    workload: Workload = field(default_factory=Workload)
    types: tuple[JobType, ...] = (JobType("work"),)
    settle: float = 0.0

    def __post_init__(self) -> None:
        if self.store not in STORE_MODES:
            raise ValueError(f"store must be one of {', '.join(STORE_MODES)}, got {self.store!r}")
        if not self.types:
            raise ValueError("give at least one job type")
        if len({t.type for t in self.types}) != len(self.types):
            raise ValueError("job types must have distinct names")
        if self.snapshot_threshold < 0:
            raise ValueError(f"snapshot_threshold must be >= 0 (0: never), got {self.snapshot_threshold}")
        if self.settle < 0:
            raise ValueError(f"settle must be >= 0, got {self.settle}")

    @property
    def job_model(self) -> JobModel:
        """The simulator's model of the job types (picked up by :func:`sim.parse_scenario`)."""
        return JobModel({t.type: JobSpec(t.duration, t.failure) for t in self.types})

    @property
    def max_timeout(self) -> float:
        """The longest any job may run."""
        return max(t.timeout or self.workload.timeout for t in self.types)

    @property
    def recover(self) -> float:
        """Seconds a whole, quiet cluster needs to elect a leader and hear from its workers."""
        e = self.engine
        return 20 * self.election_timeout + e.heartbeat_interval + e.offline_after + 2 * e.request_timeout

    @property
    def margin(self) -> float:
        """Seconds one step of a job's life may take once its deadline passed: promotion,
        dispatch, the run itself, the report, with resends."""
        e = self.engine
        return (
            e.maintain_interval
            + e.tick
            + 4 * e.request_timeout
            + self.max_timeout
            + e.heartbeat_interval
            + e.offline_after
            + 1.0
        )

    @property
    def quiet(self) -> float:
        """Quiet seconds after the last fault before liveness is due."""
        return self.settle or self.recover + self.margin


# --- the client ---------------------------------------------------------------------------


@message("jobsim.ClientTick")
@dataclass(frozen=True, slots=True)
class ClientTick:
    """The client's timer."""


@dataclass(slots=True)
class _Sent:
    kind: str  # "submit", "cancel", "requeue"
    key: str
    at: float


class JobsClient(Actor):
    """Submits the workload through the gateways (see the module docstring)."""

    def __init__(self, gateways: tuple[str, ...], workload: Workload, types: tuple[JobType, ...]) -> None:
        self.gateways = gateways
        self.w = workload
        self.types = types

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        self.made = int(durable.get("made", 0))
        self.records: dict[str, dict[str, Any]] = {
            k[4:]: v for k, v in durable.items() if k.startswith("job/")
        }
        self.acked: set[str] = {k[6:] for k in durable if k.startswith("acked/")}
        self.requeued = bool(durable.get("requeued", False))
        self.cancelled: set[str] = set()
        self.inflight: dict[int, _Sent] = {}
        # Request numbers start at a random point: a late reply to an earlier incarnation's
        # request (relayed by a gateway after this restart) must not match one of ours.
        self.req = ctx.random.getrandbits(40) << 16
        self.target = ctx.random.randrange(len(self.gateways))
        self.period = min(0.1, 1.0 / self.w.rate)
        ctx.set_timer("tick", self.period, ClientTick())

    def receive(self, ctx: Context, msg: Any) -> None:
        if isinstance(msg, ClientTick):
            ctx.set_timer("tick", self.period, ClientTick())
            self._tick(ctx)
        elif isinstance(msg, StoreReply):
            self._on_reply(ctx, msg)

    def _tick(self, ctx: Context) -> None:
        w = self.w
        while self.made < w.count and ctx.now >= w.start + self.made / w.rate:
            self._make(ctx)
        if any(ctx.now - p.at >= w.resend for p in self.inflight.values()):
            self.target = (self.target + 1) % len(self.gateways)  # that gateway seems unwell
            self.inflight = {r: p for r, p in self.inflight.items() if ctx.now - p.at < w.resend}
        busy = {(p.kind, p.key) for p in self.inflight.values()}
        for jid in sorted(self.records, key=_job_number):
            if jid not in self.acked and ("submit", jid) not in busy:
                self._send(ctx, "submit", jid, {"op": "submit", "job": self.records[jid]["job"]})
            cancel_at = self.records[jid].get("cancel_at")
            if (
                jid in self.acked
                and cancel_at is not None
                and ctx.now >= cancel_at
                and jid not in self.cancelled
                and ("cancel", jid) not in busy
            ):
                cmd = {"op": "cancel", "id": jid, "at": ctx.wall, "reason": "client"}
                self._send(ctx, "cancel", jid, cmd)
        if w.requeue_at > 0 and ctx.now >= w.requeue_at and not self.requeued and ("requeue", "") not in busy:
            self._send(ctx, "requeue", "", {"op": "dlq_requeue", "at": ctx.wall})

    def _make(self, ctx: Context) -> None:
        w = self.w
        self.made += 1
        jid = f"j{self.made}"
        total = sum(t.weight for t in self.types)
        pick = ctx.random.uniform(0.0, total)
        jt = self.types[-1]
        for t in self.types:
            if pick < t.weight:
                jt = t
                break
            pick -= t.weight
        delayed = w.delayed > 0 and ctx.random.random() < w.delayed
        job = Job.create(
            jid,
            jt.type,
            {"n": self.made},
            now=ctx.wall,
            priority=ctx.random.randint(*w.priority),
            max_retries=w.max_retries,
            timeout_seconds=jt.timeout or w.timeout,
            scheduled_at=ctx.wall + ctx.random.uniform(0.0, w.delay) if delayed else None,
        )
        cancel = w.cancel > 0 and ctx.random.random() < w.cancel
        record: dict[str, Any] = {"job": job_to_plain(job), "cancel_at": None}
        self.records[jid] = record
        if cancel:
            record["cancel_after"] = w.cancel_after
        ctx.persist(f"job/{jid}", record)
        ctx.persist("made", self.made)
        ctx.sync()

    def _send(self, ctx: Context, kind: str, key: str, command: dict[str, Any]) -> None:
        self.req += 1
        self.inflight[self.req] = _Sent(kind, key, ctx.now)
        ctx.send(ActorRef(self.gateways[self.target], GATEWAY), StoreRequest(self.req, command))

    def _on_reply(self, ctx: Context, msg: StoreReply) -> None:
        sent = self.inflight.pop(msg.req, None)
        if sent is None:
            return
        result: dict[str, Any] = msg.result if isinstance(msg.result, dict) else {"error": "malformed reply"}
        error = result.get("error")
        if sent.kind == "submit":
            job = result.get("job")
            if error is not None or sent.key in self.acked or not isinstance(job, dict):
                return
            if job.get("id") != sent.key:
                ctx.emit("client.wrong_reply", id=sent.key, got=str(job.get("id")))
                return
            self.acked.add(sent.key)
            record = self.records[sent.key]
            if "cancel_after" in record:
                record["cancel_at"] = ctx.now + float(record["cancel_after"])
                ctx.persist(f"job/{sent.key}", record)
            ctx.persist(f"acked/{sent.key}", True)
            ctx.sync()
            ctx.emit(
                "client.accepted",
                id=sent.key,
                priority=job["priority"],
                max_retries=job["max_retries"],
                scheduled_at=job["scheduled_at"],
            )
        elif sent.kind == "cancel":
            if error is None:
                self.cancelled.add(sent.key)
                ctx.emit("client.cancelled", id=sent.key, status=result["job"]["status"])
            elif "cannot be cancelled" in str(error):
                self.cancelled.add(sent.key)
                ctx.emit("client.cancel_refused", id=sent.key, why=str(error))
        elif sent.kind == "requeue" and error is None:
            self.requeued = True
            ctx.persist("requeued", True)
            ctx.sync()
            ctx.emit("client.requeued", ids=",".join(result.get("requeued", [])))


def _job_number(jid: str) -> int:
    return int(jid[1:])


# --- parsing ------------------------------------------------------------------------------


def _parse_types(f: Fields) -> tuple[JobType, ...]:
    out: list[JobType] = []
    for i in range(len(f.get("types", list, []))):
        t = f.sub("types", i)
        name = t.get("type", str)
        duration = parse_latency(t, "duration") if t.has("duration") else JobType(name).duration
        weight = t.number("weight", 1.0)
        failure = t.number("failure", 0.0, 0.0, 1.0)
        timeout = t.number("timeout", None)
        t.done()
        try:
            out.append(JobType(name, weight, duration, failure, timeout))
        except ValueError as e:
            raise t.error("", str(e)) from None
    return tuple(out)


def parse(f: Fields) -> JobsSimConfig:
    """Read the ``[jobs]`` table (see the module docstring)."""
    d = JobsSimConfig()
    e = d.engine
    p = e.policy
    w = d.workload
    try:
        policy = RetryPolicy(
            kind=f.get("retry_policy", str, p.kind),
            base_delay=f.number("retry_base_delay", p.base_delay, 0.0),
            max_delay=f.number("retry_max_delay", p.max_delay, 0.0),
            multiplier=f.number("retry_multiplier", p.multiplier, 1.0),
            jitter_factor=f.number("retry_jitter", p.jitter_factor, 0.0, 1.0),
        )
        lease = f.number("lease_seconds", None)
        engine = JobsConfig(
            worker_count=f.get("worker_count", int, e.worker_count),
            heartbeat_interval=f.number("heartbeat_interval", e.heartbeat_interval),
            offline_after=f.number("offline_after", e.offline_after),
            lease_seconds=lease,
            tick=f.number("tick", e.tick),
            maintain_interval=f.number("maintain_interval", e.maintain_interval),
            batch=f.get("batch", int, e.batch),
            request_timeout=f.number("request_timeout", e.request_timeout),
            status_delay=f.number("status_delay", e.status_delay, 0.0),
            strategy=f.get("strategy", str, e.strategy),
            policy=policy,
        )
        prio = f.get("priority", list, list(w.priority))
        if len(prio) != 2 or not all(type(x) is int for x in prio):
            raise f.error("priority", f"expected [low, high] integers, got {prio!r}")
        workload = Workload(
            count=f.get("count", int, w.count),
            rate=f.number("rate", w.rate),
            start=f.number("start", w.start),
            priority=(prio[0], prio[1]),
            max_retries=f.get("max_retries", int, w.max_retries),
            timeout=f.number("timeout", w.timeout),
            delayed=f.number("delayed", w.delayed),
            delay=f.number("delay", w.delay),
            cancel=f.number("cancel", w.cancel),
            cancel_after=f.number("cancel_after", w.cancel_after),
            requeue_at=f.number("requeue_at", w.requeue_at),
            resend=f.number("resend", w.resend),
        )
        workers = f.get("workers", list, None)
        if workers is not None and (not workers or not all(type(n) is str for n in workers)):
            raise f.error("workers", "expected a non-empty array of node ids")
        types = _parse_types(f) or d.types
        config = JobsSimConfig(
            store=f.get("store", str, d.store),
            store_node=f.get("store_node", str, d.store_node),
            client_node=f.get("client_node", str, d.client_node),
            election=f.get("election", str, d.election),
            election_timeout=f.number("election_timeout", d.election_timeout),
            interval=f.number("interval", d.interval),
            snapshot_threshold=f.get("snapshot_threshold", int, d.snapshot_threshold),
            workers=tuple(workers) if workers is not None else None,
            engine=engine,
            workload=workload,
            types=types,
            settle=f.number("settle", d.settle),
        )
    except ScenarioError:
        raise
    except ValueError as err:
        raise f.error("", str(err)) from None
    f.done()
    return config


# --- the blueprint --------------------------------------------------------------------------


def cluster_nodes(config: JobsSimConfig, nodes: tuple[str, ...]) -> tuple[str, ...]:
    """The nodes that run the engine (every node but the memory store's and the client's)."""
    skip = {config.client_node}
    if config.store == "memory":
        skip.add(config.store_node)
    return tuple(n for n in nodes if n not in skip)


def blueprint(config: JobsSimConfig, nodes: tuple[str, ...]) -> NodeBlueprint:
    """The job cluster (:func:`actors.jobs.blueprint.jobs_blueprint`) plus the client."""
    cluster = cluster_nodes(config, nodes)
    if not cluster:
        raise ValueError("the job cluster needs at least one node besides the store and the client")
    if config.store == "memory" and config.store_node not in nodes:
        raise ValueError(f"the memory store's node {config.store_node!r} is not among the nodes")
    unknown = [n for n in config.workers or () if n not in cluster]
    if unknown:
        raise ValueError(f"worker {unknown[0]!r} is not a cluster node ({', '.join(cluster)})")
    base = jobs_blueprint(
        cluster,
        config=config.engine,
        store=config.store,
        store_node=config.store_node if config.store == "memory" else None,
        election=config.election,
        election_timeout=config.election_timeout,
        interval=config.interval,
        workers=config.workers,
    )
    client_node = config.client_node if config.client_node in nodes else cluster[0]
    raft_store = config.store == "raft"

    def build(node_id: str) -> dict[str, Actor]:
        actors = dict(base(node_id))
        elect = actors.get(ELECTION)
        if raft_store and isinstance(elect, Raft):
            # The same Raft, with the scenario's compaction policy (see the module docstring).
            cfg = dataclasses.replace(elect.cfg, snapshot_threshold=config.snapshot_threshold)
            actors[ELECTION] = Raft(node_id, cluster, cfg)
        if node_id == client_node:
            actors[CLIENT] = JobsClient(cluster, config.workload, config.types)
        return actors

    return build


def check(result: RunResult, config: JobsSimConfig) -> list[Violation]:
    """Every job engine checker (see :mod:`sim.checkers_jobs`)."""
    return check_jobs(
        result,
        store=config.store,
        store_node=config.store_node if config.store == "memory" else None,
        policy=config.engine.policy,
        quiet=config.quiet,
        margin=config.margin,
    )


def liveness_seconds(config: JobsSimConfig) -> float:
    """The swarm's quiet phase: just enough for liveness to come due."""
    return config.quiet + 1.0


register_system(System("jobs", parse, blueprint, check, liveness_seconds))
