"""``troupe bench failover`` and ``troupe bench raft``: elections and Raft on real processes.

failover: start N ``troupe node --election ALGO`` processes on loopback, wait until they agree
on a leader, SIGKILL it, and time how long until every survivor names the same new leader
(from the kill to the last survivor's ``leader.changed``, read from their JSON event lines);
restart the victim, wait for agreement again, and repeat ``--kills`` times. Prints each round,
then median, p90, min and max, and last one JSON line.

raft: start N Raft node processes, then in this process a client node (``bench``) over real
TCP that keeps ``--window`` proposals in flight to the leader (following leader hints) for
``--seconds``; prints committed-and-applied proposals per second, and last one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from actors import Actor, ActorRef, Context, message
from actors.elections import NAME, GetLeader, Leader
from actors.elections.raft import Propose, ProposeResult

from .cluster import free_ports
from .events import EventLog
from .node_cli import parse_duration
from .runtime import NodeRuntime
from .service_settings import ConfigError
from .tcp import TcpTransport
from .testing import NodeProc, node_cmd, poll


def _start_nodes(
    algorithm: str, n: int, tmp: Path, timeout: str, interval: str
) -> tuple[dict[str, NodeProc], dict[str, int]]:
    ids = [f"n{i + 1}" for i in range(n)]
    ports = dict(zip(ids, free_ports(n), strict=True))
    nodes: dict[str, NodeProc] = {}
    for nid in ids:
        argv = node_cmd(
            "--id", nid, "--listen", f"127.0.0.1:{ports[nid]}", "--cluster", "bench",
            "--data-dir", str(tmp), "--interval", "1", "--suspect-after", "2", "--dead-after", "3",
            "--election", algorithm, "--election-timeout", timeout, "--election-interval", interval,
            "--log-json",
        )  # fmt: skip
        for other in ids:
            if other != nid:
                argv += ["--peer", f"{other}=127.0.0.1:{ports[other]}"]
        nodes[nid] = NodeProc(nid, argv, tmp)
        nodes[nid].start()
    return nodes, ports


def _leader_of(node: NodeProc, since: float) -> tuple[str | None, float]:
    seen = node.find("leader.changed", since)
    return (seen[-1]["leader"], float(seen[-1]["time"])) if seen else (None, 0.0)


def _agreed(nodes: Mapping[str, NodeProc], members: list[str], since: float) -> tuple[str | None, float]:
    views = [_leader_of(nodes[m], since) for m in members]
    leaders = {leader for leader, _ in views}
    if len(leaders) == 1:
        (leader,) = leaders
        if leader in members:
            return leader, max(t for _, t in views)
    return None, 0.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_failover(algorithm: str, n: int, kills: int, timeout: str, interval: str) -> dict[str, Any]:
    """Kill the leader ``kills`` times; seconds from each kill to survivors' agreement."""
    with tempfile.TemporaryDirectory(prefix="troupe-failover-") as tmp:
        nodes, _ports = _start_nodes(algorithm, n, Path(tmp), timeout, interval)
        ids = list(nodes)
        times: list[float] = []
        try:
            if not poll(lambda: _agreed(nodes, ids, 0.0)[0] is not None, 60):
                raise RuntimeError("the cluster never agreed on a first leader")
            for round_no in range(1, kills + 1):
                leader, _ = _agreed(nodes, ids, 0.0)
                assert leader is not None
                survivors = [m for m in ids if m != leader]
                killed_at = time.time()
                nodes[leader].kill()

                def agreed_again(s: list[str] = survivors, k: float = killed_at) -> bool:
                    return _agreed(nodes, s, k)[0] is not None

                if not poll(agreed_again, 60):
                    raise RuntimeError(f"round {round_no}: survivors never agreed after killing {leader}")
                new, agreed_at = _agreed(nodes, survivors, killed_at)
                times.append(agreed_at - killed_at)
                print(f"round {round_no:>3}: killed {leader}, {new} agreed after {times[-1] * 1000:7.1f} ms")
                restarted_at = time.time()
                nodes[leader].start()
                back = leader

                def rejoined(b: str = back, r: float = restarted_at) -> bool:
                    return _agreed(nodes, ids, 0.0)[0] is not None and _leader_of(nodes[b], r)[0] is not None

                if not poll(rejoined, 60):
                    raise RuntimeError(f"round {round_no}: {leader} did not rejoin")
                time.sleep(0.5)
        finally:
            for node in nodes.values():
                node.kill()
    return {
        "algorithm": algorithm,
        "nodes": n,
        "kills": len(times),
        "election_timeout": timeout,
        "interval": interval,
        "failover_p50_ms": round(statistics.median(times) * 1000, 1),
        "failover_p90_ms": round(_percentile(times, 0.9) * 1000, 1),
        "failover_min_ms": round(min(times) * 1000, 1),
        "failover_max_ms": round(max(times) * 1000, 1),
    }


@message("bench.RaftRetry")
@dataclass(frozen=True, slots=True)
class _Retry:
    pass


class RaftClient(Actor):
    """Keeps ``window`` proposals in flight to the Raft leader, following leader hints."""

    def __init__(self, nodes: tuple[str, ...], window: int):
        self.nodes = nodes
        self.window = window
        self.leader: str | None = None
        self.next_request = 0
        self.in_flight: dict[int, int] = {}  # request -> command
        self.acked = 0
        self.first_ack = 0.0
        self.last_ack = 0.0
        self.turn = 0

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        self._find_leader(ctx)

    def _find_leader(self, ctx: Context) -> None:
        target = self.nodes[self.turn % len(self.nodes)]
        self.turn += 1
        ctx.send(ActorRef(target, NAME), GetLeader())
        ctx.set_timer("retry", 0.5, _Retry())

    def _propose(self, ctx: Context, request: int) -> None:
        assert self.leader is not None
        ctx.send(ActorRef(self.leader, NAME), Propose(["set", f"k{request % 1000}", request], request))

    def receive(self, ctx: Context, msg: Any) -> None:
        t = type(msg)
        if t is Leader:
            if msg.leader is not None and self.leader is None:
                self.leader = msg.leader
                ctx.cancel_timer("retry")
                while len(self.in_flight) < self.window:
                    self.next_request += 1
                    self.in_flight[self.next_request] = self.next_request
                    self._propose(ctx, self.next_request)
                for request in list(self.in_flight):
                    self._propose(ctx, request)
        elif t is ProposeResult:
            if msg.request not in self.in_flight:
                return
            if msg.ok:
                del self.in_flight[msg.request]
                self.acked += 1
                self.last_ack = ctx.now
                if self.acked == 1:
                    self.first_ack = ctx.now
                self.next_request += 1
                self.in_flight[self.next_request] = self.next_request
                self._propose(ctx, self.next_request)
            elif msg.leader_hint is not None and msg.leader_hint != self.leader:
                self.leader = msg.leader_hint
                for request in list(self.in_flight):
                    self._propose(ctx, request)
            elif msg.leader_hint is None:
                self.leader = None
                self._find_leader(ctx)
        elif t is _Retry and self.leader is None:
            self._find_leader(ctx)


async def _drive_raft(ports: Mapping[str, int], window: int, seconds: float) -> tuple[int, float]:
    peers = {nid: ("127.0.0.1", port) for nid, port in ports.items()}
    transport = TcpTransport("bench", "bench", ("127.0.0.1", 0), peers, outbox_size=100_000)
    client = RaftClient(tuple(ports), window)
    runtime = NodeRuntime(
        "bench", lambda node_id: {"client": client}, transport, events=EventLog(keep=0), mailbox_size=100_000
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.serve)
        with trio.move_on_after(60):
            while client.acked == 0:
                await trio.sleep(0.05)
        start_acks, start = client.acked, trio.current_time()
        await trio.sleep(seconds)
        acks, elapsed = client.acked - start_acks, trio.current_time() - start
        nursery.cancel_scope.cancel()
    return acks, elapsed


def bench_raft(n: int, window: int, seconds: float, timeout: str, interval: str) -> dict[str, Any]:
    """Committed-and-applied proposals per second through ``n`` real Raft node processes."""
    with tempfile.TemporaryDirectory(prefix="troupe-raft-bench-") as tmp:
        nodes, ports = _start_nodes("raft", n, Path(tmp), timeout, interval)
        try:
            ids = list(nodes)
            if not poll(lambda: _agreed(nodes, ids, 0.0)[0] is not None, 60):
                raise RuntimeError("the Raft cluster never agreed on a leader")
            acks, elapsed = trio.run(_drive_raft, ports, window, seconds)
        finally:
            for node in nodes.values():
                node.kill()
    rate = acks / elapsed if elapsed > 0 else 0.0
    return {
        "nodes": n,
        "window": window,
        "seconds": round(elapsed, 2),
        "commits": acks,
        "commits_per_s": round(rate),
    }


def register(bench_sub: Any) -> None:
    """Add ``troupe bench failover`` and ``troupe bench raft``."""
    f = bench_sub.add_parser("failover", help="leader failover time on real node processes")
    f.add_argument("--election", default="raft", choices=["bully", "raft", "gossip"])
    f.add_argument("--nodes", type=int, default=3)
    f.add_argument("--kills", type=int, default=10)
    f.add_argument("--election-timeout", default="300ms", metavar="DURATION")
    f.add_argument("--election-interval", default="50ms", metavar="DURATION")
    f.set_defaults(func=cmd_failover)
    r = bench_sub.add_parser("raft", help="Raft commits per second on real node processes")
    r.add_argument("--nodes", type=int, default=3)
    r.add_argument("--window", type=int, default=64, help="proposals in flight")
    r.add_argument("--seconds", type=float, default=10.0)
    r.add_argument("--election-timeout", default="1s", metavar="DURATION")
    r.add_argument("--election-interval", default="100ms", metavar="DURATION")
    r.set_defaults(func=cmd_raft)


def _check(args: argparse.Namespace) -> None:
    parse_duration(args.election_timeout, "--election-timeout")
    parse_duration(args.election_interval, "--election-interval")
    if not 2 <= args.nodes <= 15:
        raise ConfigError(f"--nodes={args.nodes}: must be from 2 to 15")


def cmd_failover(args: argparse.Namespace) -> int:
    try:
        _check(args)
        if args.kills < 1:
            raise ConfigError(f"--kills={args.kills}: must be >= 1")
        out = bench_failover(
            args.election, args.nodes, args.kills, args.election_timeout, args.election_interval
        )
    except (ConfigError, RuntimeError) as e:
        print(f"troupe bench failover: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    print(
        f"{out['algorithm']}, {out['nodes']} nodes, {out['kills']} kills: "
        f"failover p50 {out['failover_p50_ms']} ms, p90 {out['failover_p90_ms']} ms, "
        f"min {out['failover_min_ms']} ms, max {out['failover_max_ms']} ms"
    )
    print(json.dumps(out, sort_keys=True))
    return 0


def cmd_raft(args: argparse.Namespace) -> int:
    try:
        _check(args)
        out = bench_raft(args.nodes, args.window, args.seconds, args.election_timeout, args.election_interval)
    except (ConfigError, RuntimeError) as e:
        print(f"troupe bench raft: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    print(
        f"raft, {out['nodes']} real nodes, window {out['window']}: {out['commits']} commits in "
        f"{out['seconds']} s = {out['commits_per_s']} commits/s"
    )
    print(json.dumps(out, sort_keys=True))
    return 0
