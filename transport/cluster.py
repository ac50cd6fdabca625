"""``troupe cluster up``: N real ``troupe node`` processes on loopback, and the crash demo.

How it works
------------
Ports are taken from ``--base-port`` upwards or, by default, asked of the kernel (bind port 0
on 127.0.0.1, read it, close). Each node is a child OS process running
``python -m transport.cli node ... --log-json``; a reader task per child parses its JSON
lines, remembers them (for the demo) and prints them as ``n1 | 12:00:01.234 n1 heartbeat
peer.dead peer=n3 silence=1.2``. Lines that are not JSON (tracebacks) are printed as they are.

Stopping: on SIGINT/SIGTERM or after ``--duration`` seconds every child gets SIGTERM (each
node stops gracefully) and, if it is still running 5 s later, SIGKILL.

``--demo``: wait until every node has a connection to and from every other, SIGKILL the last
node, wait for every survivor to log ``peer.dead`` for it, restart it on the same port, wait
for every survivor to log ``peer.alive`` for it, print a summary table and stop everything.
Exit 0 if every detection happened in time, 1 otherwise.

``--demo-jobs N`` (used by ``make run``): wait until the nodes agree on a leader, submit a
batch of N demo jobs of several types (:func:`transport.demo_jobs.demo_batch`, failing ones
included) with a :class:`~transport.jobs_client.JobClient`, print the counts by status every
second until every job has settled, then the final table (jobs by type and status, and the
dead-letter queue) and stop everything. Exit 0 if every job settled as its type should (the
always-failing ones dead-lettered, the others done), 1 otherwise. While it runs, only the
nodes' notable lines are echoed (leaders, stores, peers, errors).

Every node gets ``--jobs-module transport.demo_jobs`` (plus ``--jobs-module`` given here), so
the demo processors are served; with ``--demo-jobs``, retries back off from 200 ms (unless
``RETRY_BASE_DELAY`` is set) so the demo is quick.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from actors.elections import ALGORITHMS
from actors.jobs import STATUSES

from .events import EventLog, Record
from .node_cli import STORES, _float, add_election_flags, add_heartbeat_flags, parse_duration
from .service_settings import ConfigError

_HUMAN = EventLog(json_lines=False, keep=0)


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports the kernel says are free now (they may be taken later)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class ClusterSpec:
    """What ``cluster up`` starts."""

    nodes: int
    ports: list[int]
    cluster: str
    interval: float
    suspect_after: float
    dead_after: float
    data_dir: Path
    duration: float | None = None
    demo: bool = False
    election_args: list[str] = field(default_factory=list)
    """``--election ...`` flags passed to every node as given (checked by the first node)."""
    store: str | None = None
    """``--store`` for every node (None: the node's default, sqlite)."""
    demo_jobs: int = 0
    """Run the jobs demo with this many jobs (0: no jobs demo)."""
    node_args: list[str] = field(default_factory=list)
    """More flags for every node (``--workers``, ``--balancer``, ``--jobs-module``)."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment variables for every node."""
    http_base: int = 0
    """HTTP API port of the first node (the next nodes take the next ports); 0: any free port."""
    metrics_base: int = 0
    """Metrics port of the first node, as ``http_base``."""

    @property
    def ids(self) -> list[str]:
        return [f"n{i + 1}" for i in range(self.nodes)]

    def node_argv(self, index: int) -> list[str]:
        """The command line of node ``index``."""
        ids = self.ids
        argv = [
            sys.executable,
            "-m",
            "transport.cli",
            "node",
            "--id",
            ids[index],
            "--listen",
            f"127.0.0.1:{self.ports[index]}",
            "--cluster",
            self.cluster,
            "--data-dir",
            str(self.data_dir),
            "--interval",
            str(self.interval),
            "--suspect-after",
            str(self.suspect_after),
            "--dead-after",
            str(self.dead_after),
            "--log-json",
            "--http-port",
            str(self.http_base + index if self.http_base else 0),
            "--metrics-port",
            str(self.metrics_base + index if self.metrics_base else 0),
            # a local cluster serves loopback only, unless told otherwise
            *([] if "SERVER_HOST" in os.environ else ["--http-host", "127.0.0.1"]),
            *self.election_args,
            *(["--store", self.store] if self.store else []),
            *self.node_args,
        ]
        for j, other in enumerate(ids):
            if j != index:
                argv += ["--peer", f"{other}=127.0.0.1:{self.ports[j]}"]
        return argv


@dataclass
class _Child:
    node_id: str
    argv: list[str]
    process: trio.Process | None = None
    records: list[Record] = field(default_factory=list)


class Cluster:
    """Starts, watches, kills and restarts the node processes of a :class:`ClusterSpec`.

    Args:
        spec: what to run.
        out: called with each line to print (default: ``print``).
    """

    def __init__(
        self,
        spec: ClusterSpec,
        out: Callable[[str], None] = print,
        echo: Callable[[Record], bool] | None = None,
    ):
        self.spec = spec
        self.out = out
        self.echo = echo
        self.children = {nid: _Child(nid, spec.node_argv(i)) for i, nid in enumerate(spec.ids)}
        self._nursery: trio.Nursery | None = None

    async def start_all(self, nursery: trio.Nursery) -> None:
        """Start every node process; their output is read in ``nursery``."""
        self._nursery = nursery
        for nid in self.children:
            await self.start(nid)

    async def start(self, node_id: str) -> None:
        """(Re)start the process of ``node_id``."""
        assert self._nursery is not None
        child = self.children[node_id]
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.spec.env)
        cwd = str(Path(__file__).resolve().parent.parent)  # so "-m transport..." resolves
        env["PYTHONPATH"] = cwd + os.pathsep + env.get("PYTHONPATH", "")
        proc = await trio.lowlevel.open_process(
            child.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        child.process = proc
        self._nursery.start_soon(self._read, child, proc)

    def kill(self, node_id: str) -> None:
        """SIGKILL ``node_id`` (a crash: no goodbye, no graceful stop)."""
        proc = self.children[node_id].process
        if proc is not None and proc.returncode is None:
            proc.kill()

    async def stop_all(self, grace: float = 5.0) -> None:
        """SIGTERM every running node; SIGKILL those still running after ``grace`` seconds."""
        procs = [c.process for c in self.children.values() if c.process is not None]
        for p in procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        with trio.move_on_after(grace):
            for p in procs:
                await p.wait()
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()

    def events(self, kind: str, **match: Any) -> list[Record]:
        """Records of ``kind`` from every node matching every ``match`` item."""
        return [
            r
            for c in self.children.values()
            for r in c.records
            if r.get("kind") == kind and all(r.get(k) == v for k, v in match.items())
        ]

    async def _read(self, child: _Child, proc: trio.Process) -> None:
        assert proc.stdout is not None
        buf = b""
        prefix = f"{child.node_id} | "
        try:
            async for chunk in proc.stdout:
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    self._line(child, prefix, raw.decode("utf-8", "replace"))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        if buf:
            self._line(child, prefix, buf.decode("utf-8", "replace"))
        await proc.wait()
        self.out(f"{prefix}(process {proc.pid} exited with code {proc.returncode})")

    def _line(self, child: _Child, prefix: str, line: str) -> None:
        try:
            rec = json.loads(line)
        except ValueError:
            rec = None
        if isinstance(rec, dict) and "kind" in rec and "time" in rec:
            child.records.append(rec)
            if self.echo is None or self.echo(rec):
                self.out(prefix + _HUMAN.format(rec))
        elif line.strip():
            self.out(prefix + line)


async def _wait(pred: Callable[[], bool], timeout: float) -> bool:
    with trio.move_on_after(timeout):
        while not pred():
            await trio.sleep(0.05)
        return True
    return False


async def run_demo(cluster: Cluster) -> int:
    """The crash/restart demo on a started cluster; returns the exit code."""
    spec = cluster.spec
    ids = spec.ids
    victim, survivors = ids[-1], ids[:-1]
    say = cluster.out

    def linked() -> bool:
        return all(
            cluster.events("tcp.link_up", node=a, peer=b, direction=d)
            for a in ids
            for b in ids
            if a != b
            for d in ("in", "out")
        )

    say("demo | waiting until every node is connected to every other ...")
    if not await _wait(linked, 30):
        say("demo | FAILED: the nodes did not all connect within 30 s (see the lines above)")
        return 1
    await trio.sleep(2 * spec.interval)
    say(f"demo | all {len(ids)} nodes see each other; SIGKILL {victim}")
    kill_at = time.time()
    cluster.kill(victim)
    limit = spec.dead_after + spec.interval
    rows: list[tuple[str, str, str, float, str]] = []

    def after(kind: str, since: float) -> dict[str, Record]:
        found: dict[str, Record] = {}
        for s in survivors:
            recs = [r for r in cluster.events(kind, node=s, peer=victim) if r["time"] >= since]
            if recs:
                found[s] = recs[0]
        return found

    ok = await _wait(lambda: len(after("peer.dead", kill_at)) == len(survivors), limit + 10)
    for s, r in sorted(after("peer.suspect", kill_at).items()):
        rows.append(("peer.suspect", s, victim, r["time"] - kill_at, "kill"))
    for s, r in sorted(after("peer.dead", kill_at).items()):
        rows.append(("peer.dead", s, victim, r["time"] - kill_at, "kill"))
    if not ok:
        say(f"demo | FAILED: not every survivor declared {victim} dead")
    else:
        say(f"demo | every survivor declared {victim} dead; restarting it")
        restart_at = time.time()
        await cluster.start(victim)
        ok = await _wait(lambda: len(after("peer.alive", restart_at)) == len(survivors), 30)
        for s, r in sorted(after("peer.alive", restart_at).items()):
            rows.append(("peer.alive", s, victim, r["time"] - restart_at, "restart"))
        if not ok:
            say(f"demo | FAILED: not every survivor saw {victim} alive again within 30 s")
    say("")
    say(
        f"demo | summary (interval {spec.interval} s, suspect after {spec.suspect_after} s, dead after "
        f"{spec.dead_after} s; detection bound dead_after + interval = {limit:.2f} s)"
    )
    say(f"demo | {'event':<13} {'node':<5} {'peer':<5} {'time since':>12}")
    for kind, node, peer, dt, since in rows:
        say(f"demo | {kind:<13} {node:<5} {peer:<5} {dt:>7.2f} s after {since}")
    say(f"demo | result: {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


def leader_agreed(cluster: Cluster) -> str | None:
    """The leader every node names in its latest ``leader.changed``, if they all agree."""
    views: set[Any] = set()
    for child in cluster.children.values():
        seen = [r for r in child.records if r.get("kind") == "leader.changed"]
        if not seen:
            return None
        views.add(seen[-1].get("leader"))
    if len(views) == 1:
        (leader,) = views
        if leader in cluster.children:
            return str(leader)
    return None


_DEMO_ECHO = frozenset(
    {"node.ready", "leader.changed", "scheduler.active", "store.open", "store.recovered", "store.unavailable"}
)


def demo_echo(rec: Record) -> bool:
    """Which node lines the jobs demo shows: the notable ones and every error."""
    return rec.get("kind") in _DEMO_ECHO or rec.get("level") == "error"


def _counts(by_status: dict[str, Any]) -> str:
    return "  ".join(f"{s} {int(by_status.get(s, 0))}" for s in STATUSES if int(by_status.get(s, 0)))


async def run_jobs_demo(cluster: Cluster, settle_within: float = 45.0) -> int:
    """The jobs demo on a started cluster (see the module docstring); returns the exit code."""
    from .demo_jobs import demo_batch
    from .jobs_client import JobClient, JobError

    spec = cluster.spec
    say = cluster.out
    say("jobs | waiting for the nodes to agree on a leader ...")
    if not await _wait(lambda: leader_agreed(cluster) is not None, 30):
        say("jobs | FAILED: the nodes did not agree on a leader within 30 s (see the lines above)")
        return 1
    leader = leader_agreed(cluster)
    store = spec.store or "sqlite"
    say(
        f"jobs | leader {leader}; store {store}; submitting {spec.demo_jobs} jobs of {len(_DEMO_KINDS)} types"
    )
    nodes = [f"{nid}=127.0.0.1:{port}" for nid, port in zip(spec.ids, spec.ports, strict=True)]
    try:
        async with JobClient(nodes, spec.cluster, timeout=30.0) as client:
            start = trio.current_time()
            submitted = await client.submit_many(demo_batch(spec.demo_jobs))
            say(f"jobs | submitted {len(submitted)} jobs in {trio.current_time() - start:.2f} s")
            settled = False
            while True:
                stats = await client.stats()
                by = stats["by_status"]
                elapsed = trio.current_time() - start
                say(f"jobs | {elapsed:5.1f} s  {_counts(by)}")
                if sum(int(by.get(s, 0)) for s in ("PENDING", "RUNNING", "RETRYING")) == 0:
                    settled = True
                    break
                if elapsed > settle_within:
                    break
                await trio.sleep(1.0)
            took = trio.current_time() - start
            mine = {j["id"] for j in submitted}
            everything: list[dict[str, Any]] = []
            while True:
                page, total = await client.list(limit=10_000, offset=len(everything))
                everything += page
                if not page or len(everything) >= total:
                    break
            dead, _ = await client.dlq_list(limit=10_000)
    except JobError as e:
        say(f"jobs | FAILED: {e}")
        return 1
    jobs = [j for j in everything if j["id"] in mine]
    ok = settled and _report(say, jobs, [j for j in dead if j["id"] in mine])
    verdict = "OK" if ok else "FAILED"
    why = (
        f"all {len(jobs)} jobs settled in {took:.1f} s"
        if settled
        else f"jobs still active after {took:.0f} s"
    )
    say(f"jobs | result: {verdict} ({why})")
    return 0 if ok else 1


_DEMO_KINDS = ("noop", "sleep", "email", "resize", "flaky", "broken", "slow")
_MUST_SUCCEED = frozenset({"noop", "sleep", "email", "resize"})
_MUST_DIE = frozenset({"broken", "slow"})


def _report(say: Callable[[str], None], jobs: list[dict[str, Any]], dead: list[dict[str, Any]]) -> bool:
    """Print the final tables; True if every job ended as its type should."""
    shown = [s for s in STATUSES if any(j["status"] == s for j in jobs)]
    say("")
    say("jobs | final statuses by type")
    say("jobs | " + f"{'type':<8}" + "".join(f"{s:>10}" for s in shown) + f"{'total':>8}")
    ok = True
    for kind in sorted({j["type"] for j in jobs}):
        of_kind = [j for j in jobs if j["type"] == kind]
        cells = "".join(f"{sum(1 for j in of_kind if j['status'] == s):>10}" for s in shown)
        say(f"jobs | {kind:<8}{cells}{len(of_kind):>8}")
        if kind in _MUST_SUCCEED and any(j["status"] != "SUCCESS" for j in of_kind):
            ok = False
        if kind in _MUST_DIE and any(j["status"] != "DEAD" for j in of_kind):
            ok = False
    totals = "".join(f"{sum(1 for j in jobs if j['status'] == s):>10}" for s in shown)
    say(f"jobs | {'all':<8}{totals}{len(jobs):>8}")
    say("")
    say(f"jobs | dead-letter queue: {len(dead)} jobs")
    for j in dead[:12]:
        last = next((a["error"] for a in reversed(j["attempts"]) if a.get("error")), "")
        say(f"jobs |   {j['id'][:12]}  {j['type']:<7} {len(j['attempts'])} attempts  {last}")
    if len(dead) > 12:
        say(f"jobs |   ... and {len(dead) - 12} more (troupe dlq list)")
    say("")
    return ok


async def run_cluster(spec: ClusterSpec, out: Callable[[str], None] = print) -> int:
    """Run ``cluster up`` until a signal, ``spec.duration`` or the demo's end; return the exit code."""
    cluster = Cluster(spec, out, demo_echo if spec.demo_jobs else None)
    code = 0
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            try:
                await cluster.start_all(nursery)
                out(
                    f"cluster | {spec.nodes} nodes of cluster {spec.cluster!r} on ports "
                    f"{', '.join(map(str, spec.ports))}; data in {spec.data_dir}"
                )
                if (
                    not spec.demo
                    and not spec.demo_jobs
                    and "none" not in [a.strip().lower() for a in spec.election_args]
                ):
                    out(
                        f"cluster | submit jobs with: troupe submit noop --node 127.0.0.1:{spec.ports[0]} "
                        f"--cluster {spec.cluster}   (then troupe jobs / troupe stats, same flags)"
                    )
                with trio.CancelScope() as main:

                    async def on_signal() -> None:
                        async for signum in signals:
                            out(f"cluster | {signal.Signals(signum).name}: stopping the nodes")
                            main.cancel()
                            return

                    nursery.start_soon(on_signal)
                    if spec.demo_jobs:
                        code = await run_jobs_demo(cluster)
                    elif spec.demo:
                        code = await run_demo(cluster)
                    elif spec.duration is not None:
                        await trio.sleep(spec.duration)
                    else:
                        await trio.sleep_forever()
                if main.cancelled_caught and (spec.demo or spec.demo_jobs):
                    code = 130
            finally:
                with trio.CancelScope(shield=True):
                    await cluster.stop_all()
                    # let the readers print the last lines, then stop them
                    await trio.sleep(0.2)
                nursery.cancel_scope.cancel()
    out(f"cluster | stopped (exit {code})")
    return code


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``troupe cluster up``."""
    p = subparsers.add_parser("cluster", help="run a local multi-process cluster")
    sub = p.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    up = sub.add_parser("up", help="start N node processes on loopback and stream their output")
    up.add_argument("--nodes", default="3", help="how many nodes (default 3)")
    up.add_argument("--base-port", help="first port; nodes use base, base+1, ... (default: free ports)")
    up.add_argument("--cluster", default="local", help="cluster name (default local)")
    add_heartbeat_flags(up)
    add_election_flags(up)
    up.add_argument(
        "--data-dir", metavar="DIR", help="durable state directory (default: a temporary directory)"
    )
    up.add_argument(
        "--duration", metavar="SECONDS", help="stop after this many seconds (default: until Ctrl-C)"
    )
    up.add_argument("--demo", action="store_true", help="kill and restart a node, show detection, then exit")
    up.add_argument(
        "--store", metavar="KIND", help=f"job store of every node: {', '.join(STORES)} (default sqlite)"
    )
    up.add_argument(
        "--demo-jobs",
        metavar="N",
        help="submit N demo jobs, show progress and the final table of statuses, then exit",
    )
    up.add_argument("--workers", metavar="N", help="jobs each node runs at once (default 10)")
    up.add_argument(
        "--http-port",
        metavar="PORT",
        help="HTTP API port of the first node; the others take the next ports (default: free ports)",
    )
    up.add_argument(
        "--metrics-port",
        metavar="PORT",
        help="metrics port of the first node; the others take the next ports (default: free ports)",
    )
    up.add_argument("--balancer", metavar="STRATEGY", help="load-balancing strategy of the scheduler")
    up.add_argument(
        "--jobs-module",
        metavar="MODULES",
        help="more modules or .py files registering processors (transport.demo_jobs is always loaded)",
    )
    up.set_defaults(func=cmd_cluster_up)


def _spec(args: argparse.Namespace, data_dir: Path) -> ClusterSpec:
    try:
        nodes = int(args.nodes)
    except ValueError:
        nodes = 0
    if not 1 <= nodes <= 50 or (args.demo and nodes < 2):
        raise ConfigError(
            f"--nodes={args.nodes!r}: must be a whole number from {2 if args.demo else 1} to 50"
        )
    if args.base_port is None:
        ports = free_ports(nodes)
    else:
        if not args.base_port.isdigit() or not 1 <= int(args.base_port) <= 65535 - nodes:
            raise ConfigError(f"--base-port={args.base_port!r}: must be a port from 1 to {65535 - nodes}")
        ports = [int(args.base_port) + i for i in range(nodes)]
    interval = _float(args.interval, "--interval", 5.0)
    suspect = _float(args.suspect_after, "--suspect-after", 10.0)
    dead = _float(args.dead_after, "--dead-after", 15.0)
    if suspect > dead:
        raise ConfigError(f"--suspect-after={suspect} must be <= --dead-after={dead}")
    duration = None if args.duration is None else _float(args.duration, "--duration", 0)
    election_args: list[str] = []
    for flag, value in (
        ("--election", args.election),
        ("--election-timeout", args.election_timeout),
        ("--election-interval", args.election_interval),
    ):
        if value is not None:
            election_args += [flag, value]
    if args.election is not None and args.election.strip().lower() not in ("none", *ALGORITHMS):
        raise ConfigError(f"--election={args.election!r}: choose one of none, {', '.join(ALGORITHMS)}")
    for what, value in (
        ("--election-timeout", args.election_timeout),
        ("--election-interval", args.election_interval),
    ):
        parse_duration(value, what)
    store = None if args.store is None else args.store.strip().lower()
    if store is not None and store not in STORES:
        raise ConfigError(f"--store={args.store!r}: choose one of {', '.join(STORES)}")
    if store is not None and args.election is not None and args.election.strip().lower() == "none":
        raise ConfigError("--store needs the job engine, which needs an election: drop --election none")
    demo_jobs = 0
    if args.demo_jobs is not None:
        if not args.demo_jobs.isdigit() or not 1 <= int(args.demo_jobs) <= 100_000:
            raise ConfigError(f"--demo-jobs={args.demo_jobs!r}: must be a whole number from 1 to 100000")
        demo_jobs = int(args.demo_jobs)
        if args.demo:
            raise ConfigError("give --demo or --demo-jobs, not both")
        if args.election is not None and args.election.strip().lower() == "none":
            raise ConfigError(
                "--demo-jobs needs the job engine, which needs an election: drop --election none"
            )
    modules = ",".join(["transport.demo_jobs", *([args.jobs_module] if args.jobs_module else [])])
    node_args = ["--jobs-module", modules]
    for flag, value in (("--workers", args.workers), ("--balancer", args.balancer)):
        if value is not None:
            node_args += [flag, value]
    bases = [
        _base_port(flag, value, nodes)
        for flag, value in (("--http-port", args.http_port), ("--metrics-port", args.metrics_port))
    ]
    env: dict[str, str] = {}
    if demo_jobs and "RETRY_BASE_DELAY" not in os.environ:
        env["RETRY_BASE_DELAY"] = "200ms"
    return ClusterSpec(
        nodes,
        ports,
        args.cluster,
        interval,
        suspect,
        dead,
        data_dir,
        duration,
        args.demo,
        election_args,
        store,
        demo_jobs,
        node_args,
        env,
        bases[0],
        bases[1],
    )


def _base_port(flag: str, value: str | None, nodes: int) -> int:
    if value is None:
        return 0
    if not value.isdigit() or not 1 <= int(value) <= 65535 - nodes:
        raise ConfigError(f"{flag}={value!r}: must be a port from 1 to {65535 - nodes}")
    return int(value)


def cmd_cluster_up(args: argparse.Namespace) -> int:
    """Entry point of ``troupe cluster up``; returns the exit code."""
    with tempfile.TemporaryDirectory(prefix="troupe-cluster-") as tmp:
        try:
            spec = _spec(args, Path(args.data_dir) if args.data_dir else Path(tmp))
        except ConfigError as e:
            print(f"troupe cluster up: error: {e}", file=sys.stderr)
            return 2

        def out(line: str) -> None:
            print(line, flush=True)

        return trio.run(run_cluster, spec, out)
