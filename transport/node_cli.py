"""``troupe node`` and ``troupe cluster up``: a real node over TCP, and a local cluster of them.

``troupe node`` runs one OS process on the trio runtime over the transport ``TRANSPORT`` names
(TCP by default, WebSocket or Redis; see :mod:`transport.transports`), hosting the
heartbeat failure detector (:mod:`actors.heartbeat`) and the job engine
(:func:`actors.jobs.blueprint.jobs_blueprint`): an election (Raft by default), the scheduler
(active on the leader), the balancer, the node's worker pool, the gateway ``jobs`` that clients
talk to, and the job store:

- ``STORE=raft``: the queue is Raft's replicated state machine on every node (the election is
  then always Raft);
- ``STORE=sqlite`` (default) or ``memory``: one store, hosted by the runtime as the service
  ``store`` on ``STORE_NODE`` (default: the first node id in sorted order), the SQLite file in
  ``DATA_DIR/<node>/jobs.sqlite3``;
- ``STORE=redis``: every node hosts a ``store`` service talking to the same Redis server over
  :data:`REDIS_LANES` connections; an unreachable Redis is logged in one line and retried, the
  node keeps running.

``ELECTION_ALGORITHM=none`` runs the heartbeat detector only (no job engine). Processors come
from the modules named by ``JOB_MODULES`` (:mod:`transport.processors`), imported before the
node starts.

Every flag has an environment variable (flag wins); a bad value is reported in one line naming
the flag and the variable and what is allowed, with exit code 2. Events (``peer.*``,
``leader.changed``, ``job.*``, ``scheduler.*``, ``store.*``, ``tcp.*``, ``runtime.*``,
``node.*``) go to stdout, one per line: JSON with ``--log-json`` (what ``cluster up`` and the
tests read), short human lines otherwise. SIGINT and SIGTERM stop the node gracefully (exit 0).

``troupe cluster up`` is in :mod:`transport.cluster`; this module only registers it.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from actors import Actor, ActorRef, NodeBlueprint, combine
from actors.balancers import STRATEGIES
from actors.elections import ALGORITHMS, Leave
from actors.elections import NAME as ELECTION
from actors.elections.select import election_blueprint
from actors.heartbeat import HeartbeatConfig, blueprint
from actors.jobs import ENV_FIELDS, RetryPolicy
from actors.jobs.blueprint import jobs_blueprint
from actors.jobs.config import JobsConfig
from actors.jobs.messages import WORKER
from actors.jobs.stores import machine_factory

from .events import EventLog, Record
from .gateway_bridge import GatewayBridge
from .node_handle import NodeHandle
from .node_services import ServiceStartError, make_transport, node_metrics, start_services
from .processors import ProcessorError, load_modules, registry, split_modules
from .runtime import NodeRuntime
from .service_settings import ConfigError, ServiceSettings, add_service_flags, duration, resolve_service
from .stores.base import JobStoreBackend, StoreUnavailable, make_backend
from .tcp import Address, parse_address

_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Where the ``redis`` store's server is."""

    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    password: str | None = None
    direct_lane_slots: int = 2
    """Jobs a node runs at once that producers submitted straight to Redis (see transport.lane_feed)."""


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """Everything ``troupe node`` needs, validated."""

    node_id: str
    listen: Address
    peers: dict[str, Address] = field(default_factory=dict)
    cluster: str = "troupe"
    data_dir: Path = Path("data")
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    log_json: bool = False
    election: str = "raft"
    election_timeout: float | None = None
    election_interval: float | None = None
    joining: bool = False
    leave_on_stop: bool = False
    store: str = "sqlite"
    """``raft``, ``sqlite``, ``memory`` or ``redis``; ignored when ``election`` is ``none``."""
    store_node: str | None = None
    """The node hosting a ``sqlite`` or ``memory`` store (None for ``raft`` and ``redis``)."""
    redis: RedisSettings = field(default_factory=RedisSettings)
    jobs: JobsConfig = field(default_factory=JobsConfig)
    job_modules: tuple[str, ...] = ()
    log_verbose: bool = False
    service: ServiceSettings = field(default_factory=ServiceSettings)
    """HTTP API, auth, TLS, metrics, MongoDB records and the transport (:mod:`transport.service_settings`)."""

    @property
    def job_engine(self) -> bool:
        """True if the node runs the job engine (it needs an election)."""
        return self.election != "none"


STORES = ("sqlite", "raft", "redis", "memory")
"""Values of ``STORE`` (``sqlite`` is the default)."""
DEFAULT_LANE_SLOTS = 2
"""``FAST_LANE_SLOTS``'s default: fast-lane slots of a node's worker pool (see actors.jobs.gateway)."""

DEFAULT_DIRECT_SLOTS = 2
"""``DIRECT_LANE_SLOTS``'s default: direct-lane slots of a node on the redis store (transport.lane_feed)."""

DEFAULT_WORKERS = 10
"""``WORKER_COUNT``'s default, as in the reference configuration (processors are ``async``, so
slots are cheap)."""
DEFAULT_STRATEGY = "round_robin"
"""``LOAD_BALANCER_STRATEGY``'s default, as in the reference configuration."""


def _pick(flag: str | None, env: Mapping[str, str], var: str, default: str | None) -> str | None:
    if flag is not None:
        return flag
    return env.get(var, default)


def _float(value: str | None, what: str, default: float) -> float:
    if value is None:
        return default
    try:
        out = float(value)
    except ValueError:
        out = float("nan")
    if not out > 0 or out == float("inf"):
        raise ConfigError(f"{what}={value!r}: must be a number of seconds > 0, such as 0.5 or 5")
    return out


def parse_duration(value: str | None, what: str) -> float | None:
    """``"10s"``, ``"500ms"``, ``"2m"`` or plain seconds ``"1.5"`` -> seconds (None if unset)."""
    if value is None or value == "":
        return None
    seconds = duration(value)
    if seconds is None:
        raise ConfigError(f"{what}={value!r}: must be a duration > 0 such as 500ms, 5s, 2m or 1.5")
    return seconds


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _check_id(value: str, what: str) -> str:
    if not _ID.match(value):
        raise ConfigError(f"{what}={value!r}: node ids are 1-64 letters, digits, '_', '.' or '-'")
    return value


def resolve_settings(args: argparse.Namespace, env: Mapping[str, str]) -> NodeSettings:
    """Merge flags and environment variables (flags win) into validated settings.

    Raises:
        ConfigError: a value is missing or not allowed; the message names flag and variable.
    """
    node_id = _pick(args.id, env, "NODE_ID", None)
    if not node_id:
        raise ConfigError("--id/NODE_ID is required: the id of this node, such as n1")
    _check_id(node_id, "--id/NODE_ID")
    listen_text = _pick(args.listen, env, "NODE_LISTEN", "127.0.0.1:7001") or ""
    try:
        listen = parse_address(listen_text)
    except ValueError as e:
        raise ConfigError(f"--listen/NODE_LISTEN: {e}") from None
    peer_items: list[str] = list(args.peer or [])
    if not peer_items and env.get("NODE_PEERS"):
        peer_items = [p for p in env["NODE_PEERS"].split(",") if p.strip()]
    peers: dict[str, Address] = {}
    for item in peer_items:
        pid, sep, addr = item.strip().partition("=")
        what = "--peer/NODE_PEERS"
        if not sep:
            raise ConfigError(f"{what}: {item!r} is not id=host:port (for example n2=127.0.0.1:7002)")
        _check_id(pid, what)
        if pid == node_id:
            raise ConfigError(f"{what}: {pid!r} is this node's own id; list only the other nodes")
        if pid in peers:
            raise ConfigError(f"{what}: peer {pid!r} is given twice; give each peer once")
        try:
            peers[pid] = parse_address(addr)
        except ValueError as e:
            raise ConfigError(f"{what}: peer {pid}: {e}") from None
    cluster = _pick(args.cluster, env, "CLUSTER_NAME", "troupe") or ""
    if not _ID.match(cluster):
        raise ConfigError(f"--cluster/CLUSTER_NAME={cluster!r}: 1-64 letters, digits, '_', '.' or '-'")
    data_dir = Path(_pick(args.data_dir, env, "DATA_DIR", "data") or "data")
    interval = _float(
        _pick(args.interval, env, "HEARTBEAT_INTERVAL", None), "--interval/HEARTBEAT_INTERVAL", 5.0
    )
    suspect = _float(
        _pick(args.suspect_after, env, "HEARTBEAT_SUSPECT_AFTER", None),
        "--suspect-after/HEARTBEAT_SUSPECT_AFTER",
        10.0,
    )
    dead = _float(
        _pick(args.dead_after, env, "HEARTBEAT_DEAD_AFTER", None), "--dead-after/HEARTBEAT_DEAD_AFTER", 15.0
    )
    if suspect > dead:
        raise ConfigError(
            f"--suspect-after/HEARTBEAT_SUSPECT_AFTER={suspect} must be <= "
            f"--dead-after/HEARTBEAT_DEAD_AFTER={dead}"
        )
    log_json = bool(args.log_json) or _flag(env.get("LOG_JSON"))
    election_text = _pick(args.election, env, "ELECTION_ALGORITHM", None)
    election = (election_text or "raft").strip().lower()
    if election not in ("none", *ALGORITHMS):
        raise ConfigError(
            f"--election/ELECTION_ALGORITHM={election!r}: choose one of none, {', '.join(ALGORITHMS)}"
        )
    election_timeout = parse_duration(
        _pick(args.election_timeout, env, "ELECTION_TIMEOUT", None), "--election-timeout/ELECTION_TIMEOUT"
    )
    election_interval = parse_duration(
        _pick(args.election_interval, env, "ELECTION_INTERVAL", None),
        "--election-interval/ELECTION_INTERVAL",
    )
    joining = bool(args.join) or _flag(env.get("NODE_JOIN"))
    leave_on_stop = bool(args.leave_on_stop) or _flag(env.get("NODE_LEAVE_ON_STOP"))
    store, store_node = _store_settings(args, env, node_id, tuple(peers), election, election_text)
    service = resolve_service(args, env)
    settings = NodeSettings(
        node_id,
        listen,
        peers,
        cluster,
        data_dir,
        HeartbeatConfig(interval, suspect, dead),
        log_json,
        election,
        election_timeout,
        election_interval,
        joining,
        leave_on_stop,
        store,
        store_node,
        _redis_settings(args, env) if "redis" in (store, service.transport) else RedisSettings(),
        _jobs_config(args, env),
        tuple(split_modules(_pick(getattr(args, "jobs_module", None), env, "JOB_MODULES", None))),
        bool(getattr(args, "log_verbose", False)) or _flag(env.get("LOG_VERBOSE")),
        service,
    )
    try:
        node_blueprint(settings)
    except ValueError as e:
        raise ConfigError(f"--election/ELECTION_*: {e}") from None
    return settings


def _store_settings(
    args: argparse.Namespace,
    env: Mapping[str, str],
    node_id: str,
    peers: tuple[str, ...],
    election: str,
    election_text: str | None,
) -> tuple[str, str | None]:
    """``(store, store node)`` from ``--store``/``STORE`` and ``--store-node``/``STORE_NODE``."""
    store_text = _pick(getattr(args, "store", None), env, "STORE", None)
    store = (store_text or "sqlite").strip().lower()
    if store not in STORES:
        raise ConfigError(f"--store/STORE={store_text!r}: choose one of {', '.join(STORES)}")
    if election == "none":
        if store_text is not None:
            raise ConfigError(
                f"--store/STORE={store_text!r} needs the job engine, which needs an election: "
                "set --election/ELECTION_ALGORITHM to raft, bully or gossip (or leave STORE unset)"
            )
        return store, None
    if store == "raft" and election_text is not None and election != "raft":
        raise ConfigError(
            f"--election/ELECTION_ALGORITHM={election_text!r} with --store/STORE=raft: the raft store "
            "replicates the queue in Raft's log, so the election is Raft; use raft or another store"
        )
    everyone = sorted((node_id, *peers))
    node_text = _pick(getattr(args, "store_node", None), env, "STORE_NODE", None)
    if store not in ("sqlite", "memory"):
        return store, None
    if not node_text:
        return store, everyone[0]
    if node_text not in everyone:
        raise ConfigError(
            f"--store-node/STORE_NODE={node_text!r}: must be one of this cluster's nodes "
            f"({', '.join(everyone)})"
        )
    return store, node_text


def _redis_settings(args: argparse.Namespace, env: Mapping[str, str]) -> RedisSettings:
    host = _pick(getattr(args, "redis_host", None), env, "REDIS_HOST", None)
    port_text = _pick(getattr(args, "redis_port", None), env, "REDIS_PORT", None)
    addr = env.get("REDIS_ADDR")
    if addr and host is None and port_text is None:  # the reference's REDIS_ADDR=host:port
        try:
            host, port_num = parse_address(addr)
        except ValueError as e:
            raise ConfigError(f"REDIS_ADDR: {e}") from None
        port_text = str(port_num)
    host = (host or "127.0.0.1").strip()
    if not host:
        raise ConfigError("--redis-host/REDIS_HOST: must not be empty (for example 127.0.0.1)")
    port = _int(port_text, "--redis-port/REDIS_PORT", 6379, 1, 65535)
    db = _int(
        _pick(getattr(args, "redis_db", None), env, "REDIS_DB", None), "--redis-db/REDIS_DB", 0, 0, 1 << 20
    )
    password = _pick(getattr(args, "redis_password", None), env, "REDIS_PASSWORD", None) or None
    direct = _int(
        _pick(getattr(args, "direct_lane_slots", None), env, "DIRECT_LANE_SLOTS", None),
        "--direct-lane-slots/DIRECT_LANE_SLOTS",
        DEFAULT_DIRECT_SLOTS,
        0,
        10_000,
    )
    return RedisSettings(host, port, db, password, direct)


def _int(value: str | None, what: str, default: int, low: int, high: int) -> int:
    if value is None or value.strip() == "":
        return default
    text = value.strip()
    if not text.lstrip("+").isdigit() or not low <= int(text) <= high:
        raise ConfigError(f"{what}={value!r}: must be a whole number from {low} to {high}")
    return int(text)


_RETRY_FLAGS = {
    "RETRY_POLICY": "retry_policy",
    "MAX_RETRIES": "max_retries",
    "RETRY_BASE_DELAY": "retry_base_delay",
    "RETRY_MAX_DELAY": "retry_max_delay",
    "RETRY_MULTIPLIER": "retry_multiplier",
    "RETRY_JITTER_FACTOR": "retry_jitter",
}


def _flag_name(attr: str) -> str:
    return "--" + attr.replace("_", "-")


def _jobs_config(args: argparse.Namespace, env: Mapping[str, str]) -> JobsConfig:
    """The job engine's settings: worker pool, balancer strategy and retry policy."""
    workers = _int(
        _pick(getattr(args, "workers", None), env, "WORKER_COUNT", None),
        "--workers/WORKER_COUNT",
        DEFAULT_WORKERS,
        1,
        10_000,
    )
    lane = _int(
        _pick(getattr(args, "fast_lane_slots", None), env, "FAST_LANE_SLOTS", None),
        "--fast-lane-slots/FAST_LANE_SLOTS",
        DEFAULT_LANE_SLOTS,
        0,
        10_000,
    )
    beat_text = _pick(getattr(args, "worker_heartbeat", None), env, "WORKER_HEARTBEAT_INTERVAL", None)
    beat = parse_duration(beat_text, "--worker-heartbeat/WORKER_HEARTBEAT_INTERVAL") or 5.0
    offline_text = _pick(getattr(args, "worker_offline_after", None), env, "WORKER_OFFLINE_AFTER", None)
    offline = parse_duration(offline_text, "--worker-offline-after/WORKER_OFFLINE_AFTER") or 15.0
    if offline <= beat:
        raise ConfigError(
            f"--worker-offline-after/WORKER_OFFLINE_AFTER={offline:g}s must exceed "
            f"--worker-heartbeat/WORKER_HEARTBEAT_INTERVAL={beat:g}s"
        )
    strategy_text = _pick(getattr(args, "balancer", None), env, "LOAD_BALANCER_STRATEGY", None)
    strategy = (strategy_text or DEFAULT_STRATEGY).strip().lower()
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"--balancer/LOAD_BALANCER_STRATEGY={strategy_text!r}: choose one of {', '.join(STRATEGIES)}"
        )
    retry_env: dict[str, str] = {}
    for var in ENV_FIELDS:
        value = _pick(getattr(args, _RETRY_FLAGS[var], None), env, var, None)
        if value is not None and value.strip() != "":
            retry_env[var] = value
    try:
        policy = RetryPolicy.from_mapping(retry_env)
    except ValueError as e:
        text = str(e)
        named = next((v for v in ENV_FIELDS if text.startswith(v + "=")), None)
        prefix = f"{_flag_name(_RETRY_FLAGS[named])}/" if named else ""
        raise ConfigError(prefix + text) from None
    try:
        return JobsConfig(
            worker_count=workers,
            lane_slots=lane,
            heartbeat_interval=beat,
            offline_after=offline,
            strategy=strategy,
            policy=policy,
        )
    except ValueError as e:
        raise ConfigError(f"job engine settings: {e}") from None


def node_blueprint(settings: NodeSettings) -> NodeBlueprint:
    """The actors a node runs: the heartbeat detector and, unless the election is ``none``, the
    job engine with its election (see the module docstring).

    Raises:
        ValueError: the election or job settings are refused (one line).
    """
    everyone = (settings.node_id, *settings.peers)
    heartbeat = blueprint(everyone, settings.heartbeat)
    if not settings.job_engine:
        return heartbeat
    nodes = tuple(sorted(everyone))
    raft_store = settings.store == "raft"
    jobs = jobs_blueprint(
        nodes,
        config=settings.jobs,
        store="raft" if raft_store else "external",
        store_node=settings.store_node,
        election="raft" if raft_store else settings.election,
        election_timeout=settings.election_timeout,
        interval=settings.election_interval,
    )
    if not settings.joining:
        return combine(heartbeat, jobs)
    # A joining node's election starts without a configuration and asks the seeds to add it.
    election = election_blueprint(
        "raft" if raft_store else settings.election,
        nodes,
        election_timeout=settings.election_timeout,
        interval=settings.election_interval,
        seeds=tuple(settings.peers),
        joining=(settings.node_id,),
        machine=machine_factory(settings.jobs.policy) if raft_store else None,
    )

    def build(node_id: str) -> dict[str, Actor]:
        actors = dict(jobs(node_id))
        actors.update(election(node_id))
        return actors

    return combine(heartbeat, build)


def hosts_store(settings: NodeSettings) -> bool:
    """True if this node hosts a ``store`` service (sqlite/memory on the store node; redis)."""
    if not settings.job_engine or settings.store == "raft":
        return False
    return settings.store == "redis" or settings.store_node == settings.node_id


def add_heartbeat_flags(p: argparse.ArgumentParser) -> None:
    """The heartbeat timing flags shared by ``node`` and ``cluster up`` (strings, checked later)."""
    p.add_argument("--interval", metavar="SECONDS", help="heartbeat period (HEARTBEAT_INTERVAL, default 5)")
    p.add_argument(
        "--suspect-after",
        metavar="SECONDS",
        help="silence before suspicion (HEARTBEAT_SUSPECT_AFTER, default 10)",
    )
    p.add_argument(
        "--dead-after",
        metavar="SECONDS",
        help="silence before declaring dead (HEARTBEAT_DEAD_AFTER, default 15)",
    )


def add_election_flags(p: argparse.ArgumentParser) -> None:
    """The election flags shared by ``node`` and ``cluster up`` (strings, checked later)."""
    p.add_argument(
        "--election",
        metavar="ALGORITHM",
        help=f"none (no job engine), {', '.join(ALGORITHMS)} (ELECTION_ALGORITHM, default raft)",
    )
    p.add_argument(
        "--election-timeout",
        metavar="DURATION",
        help="e.g. 5s or 300ms; default per algorithm (ELECTION_TIMEOUT)",
    )
    p.add_argument(
        "--election-interval",
        metavar="DURATION",
        help="leader heartbeat / probe period; default per algorithm (ELECTION_INTERVAL)",
    )


def add_jobs_flags(p: argparse.ArgumentParser) -> None:
    """The job engine's flags (strings, checked later); each has an environment variable."""
    g = p.add_argument_group("job engine")
    g.add_argument("--store", metavar="KIND", help=f"job store: {', '.join(STORES)} (STORE, default sqlite)")
    g.add_argument(
        "--store-node",
        metavar="ID",
        help="node hosting a sqlite/memory store (STORE_NODE, default: first node id in sorted order)",
    )
    g.add_argument(
        "--redis-host", metavar="HOST", help="Redis server for --store redis (REDIS_HOST, default 127.0.0.1)"
    )
    g.add_argument("--redis-port", metavar="PORT", help="(REDIS_PORT, default 6379)")
    g.add_argument("--redis-db", metavar="N", help="(REDIS_DB, default 0)")
    g.add_argument("--redis-password", metavar="SECRET", help="(REDIS_PASSWORD; prefer the variable)")
    g.add_argument(
        "--workers",
        metavar="N",
        help=f"jobs this node runs at once (WORKER_COUNT, default {DEFAULT_WORKERS})",
    )
    g.add_argument(
        "--fast-lane-slots",
        metavar="N",
        help=(
            "jobs this node also runs, beyond --workers, that start at submit without waiting for "
            f"the leader (FAST_LANE_SLOTS, default {DEFAULT_LANE_SLOTS}; 0 turns the fast lane off)"
        ),
    )
    g.add_argument(
        "--direct-lane-slots",
        metavar="N",
        help=(
            "with --store redis: jobs this node also runs that producers submitted straight to Redis "
            f"(DIRECT_LANE_SLOTS, default {DEFAULT_DIRECT_SLOTS}; 0 turns the direct lane off)"
        ),
    )
    g.add_argument(
        "--worker-heartbeat",
        metavar="DURATION",
        help="worker status period (WORKER_HEARTBEAT_INTERVAL, default 5s)",
    )
    g.add_argument(
        "--worker-offline-after",
        metavar="DURATION",
        help="a silent worker is offline after this (WORKER_OFFLINE_AFTER, default 15s)",
    )
    g.add_argument(
        "--balancer",
        metavar="STRATEGY",
        help=f"{', '.join(STRATEGIES)} (LOAD_BALANCER_STRATEGY, default {DEFAULT_STRATEGY})",
    )
    g.add_argument(
        "--retry-policy", metavar="KIND", help="fixed or exponential (RETRY_POLICY, default exponential)"
    )
    g.add_argument("--max-retries", metavar="N", help="(MAX_RETRIES, default 3)")
    g.add_argument("--retry-base-delay", metavar="DURATION", help="(RETRY_BASE_DELAY, default 1s)")
    g.add_argument("--retry-max-delay", metavar="DURATION", help="(RETRY_MAX_DELAY, default 60s)")
    g.add_argument("--retry-multiplier", metavar="X", help="(RETRY_MULTIPLIER, default 2.0)")
    g.add_argument("--retry-jitter", metavar="F", help="0.0 to 1.0 (RETRY_JITTER_FACTOR, default 0.1)")
    g.add_argument(
        "--jobs-module",
        metavar="MODULES",
        help="comma-separated modules or .py files registering processors (JOB_MODULES)",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``node`` and ``cluster`` subcommands to the ``troupe`` parser."""
    from . import cluster

    p = subparsers.add_parser("node", help="run one real node (heartbeat detector and job engine over TCP)")
    p.add_argument("--id", help="this node's id (NODE_ID)")
    p.add_argument(
        "--listen", metavar="HOST:PORT", help="address to listen on (NODE_LISTEN, default 127.0.0.1:7001)"
    )
    p.add_argument(
        "--peer",
        action="append",
        metavar="ID=HOST:PORT",
        help="another node; repeat for each (NODE_PEERS=id=host:port,id=host:port)",
    )
    p.add_argument("--cluster", help="cluster name; peers of another cluster are refused (CLUSTER_NAME)")
    p.add_argument("--data-dir", metavar="DIR", help="durable state directory (DATA_DIR, default ./data)")
    add_heartbeat_flags(p)
    add_election_flags(p)
    p.add_argument(
        "--join",
        action="store_true",
        help="join a running cluster through --peer nodes instead of bootstrapping one (NODE_JOIN=1)",
    )
    p.add_argument(
        "--leave-on-stop",
        action="store_true",
        help="on SIGTERM/SIGINT, leave the cluster's membership before stopping (NODE_LEAVE_ON_STOP=1)",
    )
    p.add_argument("--log-json", action="store_true", help="print events as JSON lines (LOG_JSON=1)")
    p.add_argument(
        "--log-verbose",
        action="store_true",
        help="also print per-command and per-job events (raft.apply, job.started, ...) (LOG_VERBOSE=1)",
    )
    add_jobs_flags(p)
    add_service_flags(p)
    p.set_defaults(func=cmd_node)
    cluster.register(subparsers)


def cmd_node(args: argparse.Namespace) -> int:
    """Entry point of ``troupe node``; returns the exit code."""
    try:
        settings = resolve_settings(args, os.environ)
        if settings.job_engine:
            load_modules(settings.job_modules, "--jobs-module/JOB_MODULES")
        if settings.job_engine and settings.service.http.enabled:
            from .http.auth import check_auth_settings

            check_auth_settings(settings.service.auth)
    except (ConfigError, ProcessorError) as e:
        print(f"troupe node: error: {e}", file=sys.stderr)
        return 2
    return trio.run(run_node, settings)


MAILBOX_SIZE = 10_000
"""Messages an actor's mailbox holds before more are dropped: a leader's election actor and a
Raft store take one message per store command of every node, so bursts of thousands of
commands must fit."""

NODE_MAX_FRAME = 64 * 1024 * 1024
"""Largest frame between nodes and clients: a Raft snapshot of the job store carries every job
record (about 340 bytes each) in one InstallSnapshot, and a job listing up to 10,000 jobs."""

STOP_GRACE = 10.0
"""Seconds the parts of a stopping node (HTTP API, metrics, records) have to finish."""

VERBOSE_KINDS = frozenset(
    {"raft.apply", "raft.commit", "raft.ack", "store.applied", "job.started", "job.submitted"}
)
"""Per-command and per-job events kept for the simulator's checkers; printed only with
``--log-verbose`` (``job.finished`` too, unless the job failed)."""


class _QuietLog(EventLog):
    """Prints events to stdout, skipping the per-command and per-job ones (see
    :func:`stdout_events`): a busy node emits several per job. Those still reach subscribers
    (metrics, MongoDB records); with none, their records are not even built."""

    def __init__(self, json_lines: bool) -> None:
        super().__init__(sys.stdout, json_lines=json_lines, keep=0)

    def emit(self, node: str, actor: str, kind: str, fields: dict[str, Any] | None = None) -> Record:
        if kind in VERBOSE_KINDS or (kind == "job.finished" and (fields or {}).get("ok") is not False):
            if self.subscribed and kind.startswith("job."):  # metrics and records count jobs
                return self.notify(node, actor, kind, fields)
            return {"node": node, "actor": actor, "kind": kind}
        return super().emit(node, actor, kind, fields)


def stdout_events(json_lines: bool, verbose: bool = False) -> EventLog:
    """An :class:`EventLog` printing events to stdout (all of them if ``verbose``, else all but
    :data:`VERBOSE_KINDS` and ``job.finished`` of jobs that succeeded: a busy Raft store emits
    the former for every command on every node, a busy worker the latter for every job)."""
    if verbose:
        return EventLog(sys.stdout, json_lines=json_lines, keep=0)
    return _QuietLog(json_lines)


GC_THRESHOLD = (50_000, 50, 100)
"""The running node's garbage-collector thresholds (Python's default is 700, 10, 10)."""


def tune_gc() -> None:
    """Set the collector for a long-running busy node, once it has started.

    Every job allocates a few dozen short-lived objects (messages, records, coroutines), so
    with Python's default a young-generation collection runs every few jobs and a full one
    often, each scanning every object the node holds. The objects built at startup are frozen
    out of the collector's reach (``gc.freeze``) and the young generation is collected every
    50,000 allocations: measured on this VM in ``troupe bench jobs``, 6-9 % more jobs per
    second, for a few megabytes more of not-yet-collected garbage at worst."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


async def run_node(settings: NodeSettings, events: EventLog | None = None) -> int:
    """Run one node until SIGINT or SIGTERM.

    Args:
        settings: validated settings.
        events: where events go (default: stdout, JSON lines if ``settings.log_json``).

    Returns:
        The exit code: 0 after a clean stop, 1 if the node could not start.
    """
    if events is None:
        events = stdout_events(settings.log_json, settings.log_verbose)
    started = time.time()
    metrics = node_metrics(settings, events)
    try:
        transport = make_transport(settings, events)
    except ServiceStartError as e:
        print(f"troupe node: error: {e}", file=sys.stderr)
        return 1
    runtime = NodeRuntime(
        settings.node_id,
        node_blueprint(settings),
        transport,
        data_dir=settings.data_dir,
        events=events,
        processors=registry() if settings.job_engine else None,
        mailbox_size=MAILBOX_SIZE,
    )
    bind_error: BaseException | None = None
    start_error: BaseException | None = None
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(runtime.serve)
                if hosts_store(settings):
                    nursery.start_soon(serve_store, runtime, settings)
                if direct_lane(settings, runtime):
                    nursery.start_soon(serve_lane_feed, runtime, settings)
                handle = NodeHandle(settings, runtime, events, transport, GatewayBridge(runtime), started)
                await nursery.start(handle.bridge.run)
                ready = await start_services(nursery, handle, metrics)
                tune_gc()
                host, port = getattr(transport, "listen_address", None) or settings.listen
                events.emit(
                    settings.node_id,
                    "",
                    "node.ready",
                    {
                        "listen": f"{host}:{port}",
                        "cluster": settings.cluster,
                        "peers": ",".join(sorted(settings.peers)),
                        "pid": os.getpid(),
                        **(
                            {
                                "store": settings.store,
                                **({"store_node": settings.store_node} if settings.store_node else {}),
                                "election": "raft" if settings.store == "raft" else settings.election,
                                "workers": settings.jobs.worker_count,
                                "processors": ",".join(sorted(runtime.processors)),
                            }
                            if settings.job_engine
                            else {}
                        ),
                        "transport": settings.service.transport,
                        **ready,
                    },
                )
                async for signum in signals:
                    events.emit(
                        settings.node_id, "", "node.stopping", {"signal": signal.Signals(signum).name}
                    )
                    if settings.leave_on_stop and settings.election != "none":
                        await leave_cluster(runtime, settings)
                    runtime.stop()
                    # Every part ends with the runtime; one that does not is cancelled after this.
                    nursery.cancel_scope.deadline = trio.current_time() + STOP_GRACE
                    break
        except* ServiceStartError as group:
            start_error = _first(group)
        except* OSError as group:
            bind_error = _first(group)
    if start_error is not None:
        print(f"troupe node: error: {start_error}", file=sys.stderr)
        return 1
    if bind_error is not None:
        host, port = settings.listen
        print(
            f"troupe node: error: cannot listen on {host}:{port} ({bind_error}); "
            "choose a free address with --listen/NODE_LISTEN",
            file=sys.stderr,
        )
        return 1
    events.emit(settings.node_id, "", "node.stopped", {})
    return 0


def _first(group: BaseException) -> BaseException:
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


def make_store_backend(settings: NodeSettings) -> JobStoreBackend:
    """The backend of this node's ``store`` service (see :func:`hosts_store`).

    Raises:
        ValueError: the store kind cannot be a backend (one line).
    """
    r = settings.redis
    return make_backend(
        settings.store,
        data_dir=settings.data_dir,
        node_id=settings.node_id,
        policy=settings.jobs.policy,
        redis_host=r.host,
        redis_port=r.port,
        redis_db=r.db,
        redis_password=r.password,
    )


REDIS_LANES = 2
"""Connections (store service lanes) a node opens to a shared Redis store; see
:mod:`transport.store_service`."""


async def serve_store(runtime: NodeRuntime, settings: NodeSettings, retry_max: float = 2.0) -> None:
    """Host the job store as the service ``store`` until the runtime stops.

    A backend that cannot be opened (Redis down, an unreadable SQLite file) is reported with one
    ``store.unavailable`` line and opened again with backoff; its recovery is logged as
    ``store.recovered``. Meanwhile requests for ``store`` find nobody and their senders get
    ``store unavailable`` from their own timeouts; the node keeps running. (Once open, a
    backend that loses its server answers ``store unavailable`` errors itself and recovers.)
    """
    from .store_service import StoreService

    delay = 0.2
    status = _Opened(runtime, settings)
    while True:
        try:
            lanes = REDIS_LANES if settings.store == "redis" else 1
            backends = [make_store_backend(settings) for _ in range(lanes)]
            await StoreService(backends).run(runtime, task_status=status)
            return  # the runtime stopped
        except StoreUnavailable as e:
            if not status.failing:
                runtime.events.emit(
                    settings.node_id,
                    "store",
                    "store.unavailable",
                    {"level": "error", "store": settings.store, "error": str(e), "retry": "with backoff"},
                )
            status.failing = True
        delay = await _back_off(runtime, delay, retry_max)
        if not runtime.running:
            return


def direct_lane(settings: NodeSettings, runtime: NodeRuntime) -> bool:
    """True if this node serves the direct lane: the redis store, slots, and a worker pool."""
    return (
        settings.job_engine
        and settings.store == "redis"
        and settings.redis.direct_lane_slots > 0
        and runtime.actor(WORKER) is not None
    )


async def serve_lane_feed(runtime: NodeRuntime, settings: NodeSettings, retry_max: float = 2.0) -> None:
    """Serve the direct lane (:mod:`transport.lane_feed`) until the runtime stops; registering
    with an unreachable Redis is one ``lanefeed.unavailable`` line, then retried with backoff."""
    from .lane_feed import LaneFeed

    r = settings.redis
    delay, failing = 0.2, False
    while runtime.running:
        feed = LaneFeed(
            host=r.host,
            port=r.port,
            db=r.db,
            password=r.password,
            worker=settings.node_id,
            slots=r.direct_lane_slots,
            lease=settings.jobs.lease,
        )
        try:
            await feed.run(runtime)
            return
        except Exception as e:  # Redis unreachable or refusing at registration: not fatal
            if not failing:
                failing = True
                why = " ".join(str(e).split())
                runtime.events.emit(
                    settings.node_id, "lanefeed", "lanefeed.unavailable", {"level": "error", "error": why}
                )
        delay = await _back_off(runtime, delay, retry_max)


async def _back_off(runtime: NodeRuntime, delay: float, retry_max: float) -> float:
    """Wait ``delay`` seconds, or less if the runtime stops meanwhile; the next, doubled delay."""
    with trio.move_on_after(delay):
        while runtime.running:
            await trio.sleep(0.05)
    return min(retry_max, delay * 2)


class _Opened:
    """The ``task_status`` given to the store service: logs when its backend is open."""

    def __init__(self, runtime: NodeRuntime, settings: NodeSettings) -> None:
        self.runtime = runtime
        self.settings = settings
        self.failing = False

    def started(self, value: None = None) -> None:
        kind = "store.recovered" if self.failing else "store.open"
        self.failing = False
        self.runtime.events.emit(self.settings.node_id, "store", kind, {"store": self.settings.store})


async def leave_cluster(runtime: NodeRuntime, settings: NodeSettings) -> None:
    """Ask this node's election actor to leave the membership, and give it time to be heard
    (Raft: the leader commits the removal; Bully and Gossip: the farewell is sent)."""
    runtime.tell(ActorRef(settings.node_id, ELECTION), Leave())
    timeout = settings.election_timeout or 1.0
    await trio.sleep(min(3.0, max(0.3, timeout)))
