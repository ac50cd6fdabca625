"""``troupe bench jobs``: end-to-end no-op jobs per second and submit-to-start latency, on real processes.

How it works
------------
Everything runs on this machine and is started here, in a temporary directory:

- for ``--store redis``, a ``redis-server`` of its own on a free port of 127.0.0.1, with
  ``appendonly yes`` and ``appendfsync`` as ``--redis-fsync`` says (``everysec`` by default, Redis'
  recommended setting; ``always`` fsyncs before every reply) and no RDB snapshots; the system
  Redis is never used;
- ``--nodes`` node processes (``python -m transport.cli node ...``, as ``troupe cluster up``
  starts them) with ``STORE=<store>``, ``WORKER_COUNT=--workers`` and the bench processors
  (:mod:`transport.bench_processors`), each writing its events to a file and the start time of
  every job it runs to a start log of its own.

It waits until every node names the same leader, runs a few warm-up jobs, then measures:

1. **throughput**: ``--n`` no-op jobs are submitted as fast as one client process can, keeping
   ``--window`` submits in flight, spread over every node's gateway, or with ``--submit
   direct`` (the default on ``redis``) straight to Redis by one
   :class:`~transport.redis_producer.RedisProducer` (each submit is acknowledged once the store
   holds it durably). Each submit's time is taken before its job is made, so making the job
   counts, as it does for Huey in ``troupe bench huey``.
   Jobs per second = N / (time from the first submit to the moment the store's ``stats`` show
   all N of them ``SUCCESS``; stats are polled every 100 ms, every 50 ms near the end);
2. **latency**: ``--latency-jobs`` jobs submitted one by one at ``--rate`` jobs per second;
   submit-to-start = the processor's start time minus the client's submit time (both
   ``time.time()`` on this machine), reported as p50 and p99 in milliseconds.

Then the nodes are stopped (SIGTERM, so their start logs are complete) and every acknowledged
job is looked up: ``lost`` counts acknowledged submits that are not ``SUCCESS`` in the store,
``duplicates`` counts executions beyond one per job (from the start logs: starts per job minus
one; if a start log misses a job, the store's attempts beyond the first instead). With
``--repeat K`` the whole run (fresh Redis, fresh nodes) is repeated K times and each figure is
the median, with min-max as spread.

The output is readable lines, then last one JSON line with ``store``, ``n``, ``jobs_per_s``,
``p50_ms``, ``p99_ms``, ``lost``, ``duplicates`` (and ``nodes``, ``workers``, ``repeat``,
``spread``, ...).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import trio

from .bench_processors import FLUSH_ENV, LOG_ENV, read_starts
from .cluster import free_ports
from .redis_server import RedisServer
from .service_settings import ConfigError
from .testing import ROOT

STORES = ("redis", "sqlite", "raft")


@dataclass(frozen=True, slots=True)
class JobsBenchSpec:
    """What one ``troupe bench jobs`` run does (see the module docstring)."""

    store: str = "redis"
    n: int = 20_000
    nodes: int = 2
    workers: int = 256
    rate: float = 200.0
    latency_jobs: int = 2_000
    window: int = 512
    redis_fsync: str = "everysec"
    submit: str = "gateway"
    """How the client submits: ``gateway`` (to the nodes' gateways over TCP) or ``direct``
    (straight to Redis with :class:`~transport.redis_producer.RedisProducer`; redis store only)."""
    warmup: int = 200
    node_env: dict[str, str] = field(default_factory=dict)
    keep: bool = False
    """Keep each run's directory (node event logs, start logs, Redis files) and print its path."""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- redis-server ------------------------------------------------------------------------------


# --- node processes ----------------------------------------------------------------------------


class BenchCluster:
    """``spec.nodes`` node processes writing their events and start logs to files in ``tmp``."""

    def __init__(self, spec: JobsBenchSpec, tmp: Path, redis_port: int | None) -> None:
        self.spec = spec
        self.tmp = tmp
        self.ids = [f"n{i + 1}" for i in range(spec.nodes)]
        self.ports = dict(zip(self.ids, free_ports(spec.nodes), strict=True))
        self.redis_port = redis_port
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []

    def log_path(self, nid: str) -> Path:
        return self.tmp / f"{nid}.events.jsonl"

    def starts_path(self, nid: str) -> Path:
        return self.tmp / f"{nid}.starts"

    @property
    def addresses(self) -> list[str]:
        return [f"{nid}=127.0.0.1:{port}" for nid, port in self.ports.items()]

    def argv(self, nid: str) -> list[str]:
        spec = self.spec
        argv = [
            sys.executable, "-m", "transport.cli", "node",
            "--id", nid, "--listen", f"127.0.0.1:{self.ports[nid]}", "--cluster", "bench",
            "--data-dir", str(self.tmp / "data"), "--store", spec.store, "--workers", str(spec.workers),
            "--jobs-module", "transport.bench_processors", "--log-json",
        ]  # fmt: skip
        if self.redis_port is not None:
            argv += ["--redis-port", str(self.redis_port)]
        for other in self.ids:
            if other != nid:
                argv += ["--peer", f"{other}=127.0.0.1:{self.ports[other]}"]
        return argv

    def start(self) -> None:
        for nid in self.ids:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("NODE_", "STORE", "REDIS_"))}
            env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
            env[LOG_ENV] = str(self.starts_path(nid))
            env[FLUSH_ENV] = "1"
            # Bench nodes share this host: no HTTP API, and metrics off (not what is measured).
            env["HTTP_ENABLED"] = "false"
            env["METRICS_ENABLED"] = "false"
            env.update(self.spec.node_env)
            log = open(self.log_path(nid), "wb")  # noqa: SIM115 - closed in stop()
            self._logs.append(log)
            self.procs[nid] = subprocess.Popen(
                self.argv(nid), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.tmp
            )

    def events(self, nid: str, kind: str) -> list[dict[str, Any]]:
        """The node's events of ``kind`` so far (read from its event file)."""
        needle = f'"kind":"{kind}"'.encode()
        out: list[dict[str, Any]] = []
        try:
            data = self.log_path(nid).read_bytes()
        except FileNotFoundError:
            return out
        for line in data.split(b"\n"):
            if needle in line:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def leader(self) -> str | None:
        """The leader every node names in its latest ``leader.changed``, if they all agree."""
        views: set[Any] = set()
        for nid in self.ids:
            seen = self.events(nid, "leader.changed")
            if not seen:
                return None
            views.add(seen[-1].get("leader"))
        if len(views) == 1:
            (leader,) = views
            return str(leader) if leader in self.ids else None
        return None

    def check_alive(self) -> None:
        for nid, proc in self.procs.items():
            if proc.poll() is not None:
                tail = self.log_path(nid).read_bytes()[-600:].decode(errors="replace")
                raise RuntimeError(f"node {nid} exited with code {proc.returncode}: {tail}")

    def stop(self) -> None:
        """SIGTERM every node (they flush their start logs), SIGKILL those still up after 15 s."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self._logs:
            log.close()
        self._logs.clear()

    def starts(self) -> dict[str, list[float]]:
        """Start times by job id from every node's start log."""
        return read_starts([self.starts_path(nid) for nid in self.ids])


def wait_for(pred: Callable[[], bool], timeout: float, what: str, check: Callable[[], None]) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {timeout:g} s")
        time.sleep(0.05)


# --- the client side ---------------------------------------------------------------------------


@dataclass(slots=True)
class Phases:
    """What the client measured in one run."""

    throughput_s: float = 0.0
    submit_s: float = 0.0
    submitted: dict[str, float] = field(default_factory=dict)  # job id -> time.time() of submit
    latency_ids: list[str] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # job id -> record at the end


def _job_id() -> str:
    return uuid.uuid4().hex


async def _submit_all(clients: list[Any], ids: list[str], window: int, acked: dict[str, float]) -> None:
    """Submit a no-op job for each of ``ids`` keeping ``window`` in flight, spread over
    ``clients`` (one per node's gateway, or one producer); note each acknowledged id with its
    submit time, taken before the job is made (as Huey's bench times making and enqueueing)."""
    it = iter(ids)

    async def lane(client: Any) -> None:
        for jid in it:
            at = time.time()
            await client.submit("bench", jid, id=jid)
            acked[jid] = at

    async with trio.open_nursery() as nursery:
        for i in range(min(window, len(ids))):
            nursery.start_soon(lane, clients[i % len(clients)])


async def _success(client: Any) -> int:
    stats = await client.stats()
    return int(stats["by_status"].get("SUCCESS", 0))


async def _wait_success(client: Any, target: int, timeout: float, started: float) -> float:
    """Poll stats until ``target`` jobs are SUCCESS; the monotonic time it was seen."""
    from .jobs_client import JobError

    while True:
        done = await _success(client)
        now = time.monotonic()
        if done >= target:
            return now
        if now - started > timeout:
            raise JobError(f"only {done} of {target} jobs succeeded after {timeout:g} s")
        await trio.sleep(0.05 if target - done < max(50, target // 20) else 0.1)


async def _everything(client: Any) -> dict[str, dict[str, Any]]:
    jobs: dict[str, dict[str, Any]] = {}
    offset = 0
    while True:
        page, total = await client.list(limit=2000, offset=offset)
        for j in page:
            jobs[j["id"]] = j
        offset += len(page)
        if not page or offset >= total:
            return jobs


async def drive(
    spec: JobsBenchSpec, addresses: list[str], say: Callable[[str], None], redis_port: int | None = None
) -> Phases:
    """Warm up, then the throughput and latency phases (see the module docstring).

    Submits are spread over every node's gateway (one client connection per node, taking turns),
    as producers behind a load balancer would, or go straight to Redis (``submit="direct"``: one
    producer); stats and the final listing use any node.
    """
    from .jobs_client import JobClient
    from .redis_producer import RedisProducer

    out = Phases()
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(JobClient(addresses, "bench", timeout=60.0))
        gateways: list[Any]
        if spec.submit == "direct":
            assert redis_port is not None
            gateways = [await stack.enter_async_context(RedisProducer(port=redis_port, timeout=60.0))]
        else:
            gateways = [
                await stack.enter_async_context(JobClient([a], "bench", timeout=60.0)) for a in addresses
            ]
        warm = [_job_id() for _ in range(spec.warmup)]
        base = await _success(client)
        await _submit_all(gateways, warm, spec.window, {})
        await _wait_success(client, base + len(warm), 60, time.monotonic())
        await trio.sleep(0.5)

        # 1. throughput
        jobs = [_job_id() for _ in range(spec.n)]
        base = await _success(client)
        started = time.monotonic()
        submit_acked: dict[str, float] = {}
        done_at = 0.0

        async def watch() -> None:
            nonlocal done_at
            done_at = await _wait_success(client, base + spec.n, max(120.0, spec.n / 100), started)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await _submit_all(gateways, jobs, spec.window, submit_acked)
            out.submit_s = time.monotonic() - started
        out.throughput_s = done_at - started
        out.submitted.update(submit_acked)
        say(
            f"throughput: {spec.n} jobs submitted in {out.submit_s:.2f} s, all SUCCESS after "
            f"{out.throughput_s:.2f} s = {spec.n / out.throughput_s:,.0f} jobs/s"
        )
        await trio.sleep(0.5)

        # 2. latency at a fixed rate
        if spec.latency_jobs:
            lat = [_job_id() for _ in range(spec.latency_jobs)]
            base = await _success(client)
            acked: dict[str, float] = {}
            t0 = time.monotonic() + 0.05

            async def one(gateway: Any, jid: str) -> None:
                at = time.time()
                await gateway.submit("bench", jid, id=jid)
                acked[jid] = at

            async with trio.open_nursery() as nursery:
                for i, jid in enumerate(lat):
                    await trio.sleep(max(0.0, t0 + i / spec.rate - time.monotonic()))
                    nursery.start_soon(one, gateways[i % len(gateways)], jid)
            await _wait_success(client, base + len(lat), 60, time.monotonic())
            out.submitted.update(acked)
            out.latency_ids = lat
            say(f"latency: {len(lat)} jobs submitted at {spec.rate:g} jobs/s, all SUCCESS")

        out.jobs = await _everything(client)
    return out


# --- one run, and the summary ------------------------------------------------------------------


def run_once(spec: JobsBenchSpec, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Start Redis (if needed) and the nodes, measure, stop everything; one run's figures."""
    tmp = Path(tempfile.mkdtemp(prefix="troupe-bench-jobs-"))
    if spec.keep:
        say(f"files of this run: {tmp}")
    redis: RedisServer | None = None
    cluster: BenchCluster | None = None
    try:
        if spec.store == "redis":
            redis = RedisServer(tmp / "redis", fsync=spec.redis_fsync)
            redis.start()
        cluster = BenchCluster(spec, tmp, redis.port if redis else None)
        cluster.start()
        wait_for(
            lambda: cluster.leader() is not None,
            60,
            "the nodes did not agree on a leader",
            cluster.check_alive,
        )
        try:
            phases = trio.run(drive, spec, cluster.addresses, say, redis.port if redis else None)
        except BaseExceptionGroup as group:  # report the first error, in one line
            first: BaseException = group
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None
        cluster.stop()  # SIGTERM: the nodes write out their start logs
        starts = cluster.starts()
    finally:
        if cluster is not None:
            cluster.stop()
        if redis is not None:
            redis.stop()
        if not spec.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    acked = phases.submitted
    lost = sum(1 for jid in acked if phases.jobs.get(jid, {}).get("status") != "SUCCESS")
    extra_attempts = sum(max(0, len(phases.jobs[jid]["attempts"]) - 1) for jid in acked if jid in phases.jobs)
    extra_starts = sum(max(0, len(starts.get(jid, [])) - 1) for jid in acked)
    never_recorded = sum(1 for jid in acked if jid not in starts)
    latencies = [
        (min(starts[jid]) - acked[jid]) * 1000 for jid in phases.latency_ids if jid in starts and jid in acked
    ]
    return {
        "jobs_per_s": spec.n / phases.throughput_s,
        "submit_per_s": spec.n / phases.submit_s,
        "p50_ms": _percentile(latencies, 0.5),
        "p99_ms": _percentile(latencies, 0.99),
        "lost": lost,
        # executions beyond one per job, from the start logs (the store's extra attempts if a
        # start log is incomplete: an attempt may also have been opened and never run)
        "duplicates": extra_starts if never_recorded == 0 else max(extra_starts, extra_attempts),
        "extra_attempts": extra_attempts,
        "unrecorded": never_recorded,
    }


def bench_jobs(spec: JobsBenchSpec, repeat: int = 1, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ``repeat`` times; the medians (and min-max spread) of every figure."""
    runs: list[dict[str, Any]] = []
    for r in range(1, repeat + 1):
        if repeat > 1:
            say(f"--- run {r} of {repeat}")
        run = run_once(spec, say)
        say(
            f"run {r}: {run['jobs_per_s']:,.0f} jobs/s end to end (submits acknowledged at "
            f"{run['submit_per_s']:,.0f}/s); submit-to-start p50 {run['p50_ms']:.1f} ms, p99 "
            f"{run['p99_ms']:.1f} ms; lost {run['lost']}, duplicates {run['duplicates']}"
        )
        runs.append(run)
    return {
        "store": spec.store,
        "n": spec.n,
        **summary(runs),
        "extra_attempts": sum(r["extra_attempts"] for r in runs),
        "nodes": spec.nodes,
        "workers": spec.workers,
        "rate": spec.rate,
        "latency_jobs": spec.latency_jobs,
        "window": spec.window,
        "repeat": repeat,
        "submit": spec.submit,
        **({"redis_fsync": spec.redis_fsync} if spec.store == "redis" else {}),
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Over ``runs``: the medians of jobs/s, submits/s, p50 and p99 with the min-max ``spread``
    of the first three figures, and the lost and duplicated jobs summed."""

    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    def spread(key: str, digits: int) -> list[float]:
        return [round(min(r[key] for r in runs), digits), round(max(r[key] for r in runs), digits)]

    return {
        "jobs_per_s": round(med("jobs_per_s")),
        "submit_per_s": round(med("submit_per_s")),
        "p50_ms": round(med("p50_ms"), 2),
        "p99_ms": round(med("p99_ms"), 2),
        "lost": sum(r["lost"] for r in runs),
        "duplicates": sum(r["duplicates"] for r in runs),
        "spread": {
            "jobs_per_s": spread("jobs_per_s", 0),
            "p50_ms": spread("p50_ms", 2),
            "p99_ms": spread("p99_ms", 2),
        },
    }


def register(bench_sub: Any) -> None:
    """Add ``troupe bench jobs``."""
    p = bench_sub.add_parser(
        "jobs", help="end-to-end no-op jobs/s and submit-to-start latency, real processes"
    )
    p.add_argument("--store", default="redis", choices=STORES, help="job store (default redis)")
    p.add_argument("--n", type=int, default=20_000, help="jobs in the throughput phase (default 20000)")
    p.add_argument("--nodes", type=int, help="node processes (default 2, or 3 for raft)")
    p.add_argument("--workers", type=int, default=256, help="WORKER_COUNT of each node (default 256)")
    p.add_argument("--rate", type=float, default=200.0, help="jobs/s in the latency phase (default 200)")
    p.add_argument("--latency-jobs", type=int, default=2_000, help="jobs in the latency phase (default 2000)")
    p.add_argument("--window", type=int, default=512, help="submits in flight (default 512)")
    p.add_argument("--repeat", type=int, default=1, help="runs; figures are medians with min-max (default 1)")
    p.add_argument(
        "--redis-fsync",
        default="everysec",
        choices=["everysec", "always"],
        help="the bench Redis' appendfsync (appendonly is on; default everysec)",
    )
    p.add_argument(
        "--submit",
        choices=["gateway", "direct"],
        help=(
            "gateway: submits go to the nodes' gateways; direct: straight to Redis with a "
            "RedisProducer (redis store only; its default)"
        ),
    )
    p.add_argument("--keep", action="store_true", help="keep each run's files (node logs) and print where")
    p.set_defaults(func=cmd_jobs)


def cmd_jobs(args: argparse.Namespace) -> int:
    """Entry point of ``troupe bench jobs``; returns the exit code."""
    from .jobs_client import JobError

    try:
        nodes = args.nodes if args.nodes is not None else (3 if args.store == "raft" else 2)
        if not 1 <= nodes <= 15:
            raise ConfigError(f"--nodes={nodes}: must be from 1 to 15")
        for name in ("n", "workers", "window", "repeat"):
            if getattr(args, name) < 1:
                raise ConfigError(f"--{name}={getattr(args, name)}: must be >= 1")
        if args.latency_jobs < 0 or not args.rate > 0:
            raise ConfigError("--latency-jobs must be >= 0 and --rate > 0")
        submit = args.submit or ("direct" if args.store == "redis" else "gateway")
        if submit == "direct" and args.store != "redis":
            raise ConfigError(f"--submit direct: only the redis store takes direct submits, not {args.store}")
        spec = JobsBenchSpec(
            store=args.store,
            n=args.n,
            nodes=nodes,
            workers=args.workers,
            rate=args.rate,
            latency_jobs=args.latency_jobs,
            window=args.window,
            redis_fsync=args.redis_fsync,
            submit=submit,
            keep=args.keep,
        )
        fsync = f", Redis appendonly with appendfsync {spec.redis_fsync}" if spec.store == "redis" else ""
        print(
            f"bench jobs: store {spec.store}{fsync}, submits to {spec.submit}, {spec.nodes} node processes "
            f"with {spec.workers} "
            f"workers each; {spec.n} no-op jobs, then {spec.latency_jobs} at {spec.rate:g} jobs/s"
            + (f"; {args.repeat} runs" if args.repeat > 1 else ""),
            flush=True,
        )
        out = bench_jobs(spec, args.repeat, lambda line: print(line, flush=True))
    except (ConfigError, RuntimeError, JobError) as e:
        print(f"troupe bench jobs: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    s = out["spread"]
    many = out["repeat"] > 1
    print(
        f"{out['store']}, {out['nodes']} nodes: {out['jobs_per_s']:,} jobs/s"
        + (f" ({s['jobs_per_s'][0]:,.0f}-{s['jobs_per_s'][1]:,.0f})" if many else "")
        + f"; submit-to-start at {out['rate']:g}/s p50 {out['p50_ms']} ms"
        + (f" ({s['p50_ms'][0]}-{s['p50_ms'][1]})" if many else "")
        + f", p99 {out['p99_ms']} ms"
        + (f" ({s['p99_ms'][0]}-{s['p99_ms'][1]})" if many else "")
        + f"; lost {out['lost']}, duplicates {out['duplicates']}"
    )
    print(json.dumps(out, sort_keys=True))
    return 0
