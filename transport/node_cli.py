"""``troupe node`` and ``troupe cluster up``: a real node over TCP, and a local cluster of them.

``troupe node`` runs one OS process hosting the heartbeat failure detector
(:mod:`actors.heartbeat`) on the trio runtime over the TCP transport. Every flag has an
environment variable (flag wins); a bad value is reported in one line naming the flag and the
variable and what is allowed, with exit code 2. Events (``peer.suspect``, ``peer.dead``,
``peer.alive``, ``tcp.*``, ``runtime.*``, ``node.*``) go to stdout, one per line: JSON with
``--log-json`` (what ``cluster up`` and the tests read), short human lines otherwise. SIGINT
and SIGTERM stop the node gracefully (exit 0).

``troupe cluster up`` is in :mod:`transport.cluster`; this module only registers it.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import trio

from actors import ActorRef, NodeBlueprint, combine
from actors.elections import ALGORITHMS, Leave
from actors.elections import NAME as ELECTION
from actors.elections.select import election_blueprint
from actors.heartbeat import HeartbeatConfig, blueprint

from .events import EventLog
from .runtime import NodeRuntime
from .tcp import Address, TcpTransport, parse_address

_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class ConfigError(ValueError):
    """A flag or environment variable has a value that is not allowed (one-line message)."""


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
    election: str = "none"
    election_timeout: float | None = None
    election_interval: float | None = None
    joining: bool = False
    leave_on_stop: bool = False


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


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "": 1.0}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|)\s*$")


def parse_duration(value: str | None, what: str) -> float | None:
    """``"10s"``, ``"500ms"``, ``"2m"`` or plain seconds ``"1.5"`` -> seconds (None if unset)."""
    if value is None or value == "":
        return None
    m = _DURATION.match(value)
    if m is None or float(m.group(1)) <= 0:
        raise ConfigError(f"{what}={value!r}: must be a duration > 0 such as 500ms, 5s, 2m or 1.5")
    return float(m.group(1)) * _UNITS[m.group(2)]


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
    election = (_pick(args.election, env, "ELECTION_ALGORITHM", "none") or "none").strip().lower()
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
    )
    try:
        node_blueprint(settings)
    except ValueError as e:
        raise ConfigError(f"--election/ELECTION_*: {e}") from None
    return settings


def node_blueprint(settings: NodeSettings) -> NodeBlueprint:
    """The actors a node runs: the heartbeat detector and, if configured, an election.

    Raises:
        ValueError: the election settings are refused by the algorithm (one line).
    """
    everyone = (settings.node_id, *settings.peers)
    heartbeat = blueprint(everyone, settings.heartbeat)
    if settings.election == "none":
        return heartbeat
    election = election_blueprint(
        settings.election,
        everyone,
        election_timeout=settings.election_timeout,
        interval=settings.election_interval,
        seeds=tuple(settings.peers) if settings.joining else (),
        joining=(settings.node_id,) if settings.joining else (),
    )
    return combine(heartbeat, election)


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
        help=f"leader election: none, {', '.join(ALGORITHMS)} (ELECTION_ALGORITHM, default none)",
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


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``node`` and ``cluster`` subcommands to the ``troupe`` parser."""
    from . import cluster

    p = subparsers.add_parser("node", help="run one real node (heartbeat detector over TCP)")
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
    p.set_defaults(func=cmd_node)
    cluster.register(subparsers)


def cmd_node(args: argparse.Namespace) -> int:
    """Entry point of ``troupe node``; returns the exit code."""
    try:
        settings = resolve_settings(args, os.environ)
    except ConfigError as e:
        print(f"troupe node: error: {e}", file=sys.stderr)
        return 2
    return trio.run(run_node, settings)


async def run_node(settings: NodeSettings, events: EventLog | None = None) -> int:
    """Run one node until SIGINT or SIGTERM.

    Args:
        settings: validated settings.
        events: where events go (default: stdout, JSON lines if ``settings.log_json``).

    Returns:
        The exit code: 0 after a clean stop, 1 if the node could not start.
    """
    if events is None:
        events = EventLog(sys.stdout, json_lines=settings.log_json, keep=0)
    cfg = settings.heartbeat
    transport = TcpTransport(
        settings.node_id,
        settings.cluster,
        settings.listen,
        settings.peers,
        events=events,
        backoff_max=min(2.0, max(0.2, cfg.interval)),
        accept_joins=True,
    )
    runtime = NodeRuntime(
        settings.node_id, node_blueprint(settings), transport, data_dir=settings.data_dir, events=events
    )
    bind_error: OSError | None = None
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(runtime.serve)
                host, port = transport.listen_address or settings.listen
                events.emit(
                    settings.node_id,
                    "",
                    "node.ready",
                    {
                        "listen": f"{host}:{port}",
                        "cluster": settings.cluster,
                        "peers": ",".join(sorted(settings.peers)),
                        "pid": os.getpid(),
                    },
                )
                async for signum in signals:
                    events.emit(
                        settings.node_id, "", "node.stopping", {"signal": signal.Signals(signum).name}
                    )
                    if settings.leave_on_stop and settings.election != "none":
                        await leave_cluster(runtime, settings)
                    runtime.stop()
                    break
        except* OSError as group:
            first: BaseException = group
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            bind_error = first if isinstance(first, OSError) else OSError(str(first))
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


async def leave_cluster(runtime: NodeRuntime, settings: NodeSettings) -> None:
    """Ask this node's election actor to leave the membership, and give it time to be heard
    (Raft: the leader commits the removal; Bully and Gossip: the farewell is sent)."""
    runtime.tell(ActorRef(settings.node_id, ELECTION), Leave())
    timeout = settings.election_timeout or 1.0
    await trio.sleep(min(3.0, max(0.3, timeout)))
