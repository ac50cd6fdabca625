"""``troupe bench huey``: ``troupe bench jobs``' workload on Huey, for a head-to-head in one session.

How it works
------------
Huey is the Python peer with the best submit-to-start latency on Redis. This command runs it
on the same machine, in the same session, with the same workload and the same Redis settings
as ``troupe bench jobs --store redis``, so the two are compared honestly:

- a ``redis-server`` of its own on a free port (``appendonly yes``, ``appendfsync everysec``
  or ``--redis-fsync always``, no RDB snapshots; never the system Redis);
- one Huey consumer with ``--workers`` worker processes (2 by default, ``-k process``), running
  :mod:`transport.bench_huey_tasks`, whose no-op task appends its start time to a log;
- in this process, the producer: 200 warm-up tasks, then **throughput**: ``--n`` tasks
  enqueued one by one as fast as one process can (Huey's enqueue is one ``LPUSH`` that Redis
  acknowledges); jobs/s = N / (first enqueue to the moment every one of them has started, seen
  in the start logs, polled every 50 ms); then **latency**: ``--latency-jobs`` tasks at
  ``--rate`` per second, submit-to-start = the task's start time minus ``time.time()`` taken
  just before its enqueue, p50 and p99.

``lost`` counts enqueued tasks that never started, ``duplicates`` starts beyond one per task.
With ``--repeat K`` everything (Redis, consumer) is started afresh K times and each figure is
the median with min-max. The last line is JSON with the keys of ``troupe bench jobs``
(``system: huey``). Needs the ``peers`` extra (``pip install -e '.[peers]'``: huey, redis).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .bench_jobs import _percentile, summary
from .redis_server import RedisServer
from .service_settings import ConfigError

WARMUP = 200


@dataclass(frozen=True, slots=True)
class HueyBenchSpec:
    """What one ``troupe bench huey`` run does (see the module docstring)."""

    n: int = 20_000
    workers: int = 2
    rate: float = 200.0
    latency_jobs: int = 2_000
    redis_fsync: str = "everysec"


def _starts(log: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for path in log.parent.glob(log.name + ".*"):
        for line in path.read_text().splitlines():
            key, _, at = line.partition(" ")
            if at:
                out.setdefault(key, []).append(float(at))
    return out


def _wait_started(log: Path, keys: list[str], timeout: float, consumer: subprocess.Popen[bytes]) -> float:
    """Poll the start logs until every key started; the time.time() it was seen."""
    deadline = time.monotonic() + timeout
    while True:
        started = _starts(log)
        if all(k in started for k in keys):
            return time.time()
        if consumer.poll() is not None:
            raise RuntimeError(f"the huey consumer exited with code {consumer.returncode}")
        if time.monotonic() > deadline:
            missing = sum(1 for k in keys if k not in started)
            raise RuntimeError(f"{missing} of {len(keys)} huey tasks did not start in {timeout:g} s")
        time.sleep(0.05)


def run_once(spec: HueyBenchSpec) -> dict[str, Any]:
    """Start Redis and the consumer, measure, stop everything; one run's figures."""
    tmp = Path(tempfile.mkdtemp(prefix="troupe-bench-huey-"))
    redis = RedisServer(tmp / "redis", fsync=spec.redis_fsync)
    consumer: subprocess.Popen[bytes] | None = None
    log = tmp / "starts"
    try:
        redis.start()
        from . import bench_huey_tasks as tasks

        # this process only enqueues: point its connection at this run's server
        tasks.huey.storage.conn.connection_pool.reset()
        tasks.huey.storage.conn.connection_pool.connection_kwargs["port"] = redis.port
        argv = [sys.executable, "-m", "huey.bin.huey_consumer", "transport.bench_huey_tasks.huey"]
        argv += ["-w", str(spec.workers), "-k", "process", "-q"]
        env = {
            **os.environ,
            "TROUPE_HUEY_PORT": str(redis.port),
            "TROUPE_BENCH_LOG": str(log),
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }
        consumer = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        warm = [f"w{i}" for i in range(WARMUP)]
        for key in warm:
            tasks.noop(key)
        _wait_started(log, warm, 60, consumer)
        time.sleep(0.5)

        keys = [f"t{i}" for i in range(spec.n)]
        t0 = time.time()
        for key in keys:
            tasks.noop(key)
        submit_s = time.time() - t0
        done = _wait_started(log, keys, max(120.0, spec.n / 100), consumer)
        time.sleep(0.5)

        submitted: dict[str, float] = {}
        start = time.monotonic() + 0.05
        for i in range(spec.latency_jobs):
            pause = start + i / spec.rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            key = f"l{i}"
            submitted[key] = time.time()
            tasks.noop(key)
        _wait_started(log, list(submitted), 60, consumer)
        time.sleep(0.2)
        starts = _starts(log)
    finally:
        if consumer is not None and consumer.poll() is None:
            consumer.send_signal(signal.SIGINT)
            try:
                consumer.wait(15)
            except subprocess.TimeoutExpired:
                consumer.kill()
                consumer.wait()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    every = [*keys, *submitted]
    latencies = [(min(starts[k]) - at) * 1000 for k, at in submitted.items()]
    return {
        "jobs_per_s": spec.n / (done - t0),
        "submit_per_s": spec.n / submit_s,
        "p50_ms": _percentile(latencies, 0.5),
        "p99_ms": _percentile(latencies, 0.99),
        "lost": sum(1 for k in every if k not in starts),
        "duplicates": sum(len(starts[k]) - 1 for k in every if k in starts),
    }


def bench_huey(spec: HueyBenchSpec, repeat: int = 1, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ``repeat`` times; the medians (and min-max spread) of every figure."""
    runs = []
    for r in range(1, repeat + 1):
        run = run_once(spec)
        say(
            f"run {r}: {run['jobs_per_s']:,.0f} jobs/s end to end "
            f"(enqueued at {run['submit_per_s']:,.0f}/s); "
            f"submit-to-start p50 {run['p50_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms; "
            f"lost {run['lost']}, duplicates {run['duplicates']}"
        )
        runs.append(run)
    return {
        "system": "huey",
        "store": "redis",
        "n": spec.n,
        **summary(runs),
        "workers": spec.workers,
        "rate": spec.rate,
        "latency_jobs": spec.latency_jobs,
        "redis_fsync": spec.redis_fsync,
        "repeat": repeat,
    }


def register(bench_sub: Any) -> None:
    """Add ``troupe bench huey``."""
    p = bench_sub.add_parser("huey", help="the same no-op workload on Huey (peer comparison, needs .[peers])")
    p.add_argument("--n", type=int, default=20_000, help="tasks in the throughput phase (default 20000)")
    p.add_argument("--workers", type=int, default=2, help="consumer worker processes (default 2)")
    p.add_argument("--rate", type=float, default=200.0, help="tasks/s in the latency phase (default 200)")
    p.add_argument(
        "--latency-jobs", type=int, default=2_000, help="tasks in the latency phase (default 2000)"
    )
    p.add_argument("--repeat", type=int, default=1, help="runs; figures are medians with min-max (default 1)")
    p.add_argument("--redis-fsync", default="everysec", choices=["everysec", "always"], help="appendfsync")
    p.set_defaults(func=cmd_huey)


def huey_installed(prog: str) -> bool:
    """True if huey can be imported; else says how to install it, in one line, as ``prog``."""
    try:
        import huey  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        print(f"{prog}: error: huey is not installed: pip install -e '.[peers]'", file=sys.stderr)
        return False
    return True


def cmd_huey(args: argparse.Namespace) -> int:
    """Entry point of ``troupe bench huey``; returns the exit code."""
    if not huey_installed("troupe bench huey"):
        return 2
    try:
        for name in ("n", "workers", "repeat", "latency_jobs"):
            if getattr(args, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')}={getattr(args, name)}: must be >= 1")
        if not args.rate > 0:
            raise ConfigError("--rate must be > 0")
        spec = HueyBenchSpec(args.n, args.workers, args.rate, args.latency_jobs, args.redis_fsync)
        print(
            f"bench huey: Redis appendonly with appendfsync {spec.redis_fsync}, one consumer with "
            f"{spec.workers} worker processes; {spec.n} no-op tasks, then {spec.latency_jobs} at "
            f"{spec.rate:g}/s" + (f"; {args.repeat} runs" if args.repeat > 1 else ""),
            flush=True,
        )
        out = bench_huey(spec, args.repeat, lambda line: print(line, flush=True))
    except (ConfigError, RuntimeError) as e:
        print(f"troupe bench huey: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    s = out["spread"]
    print(
        f"huey, {out['workers']} worker processes: {out['jobs_per_s']:,} jobs/s ({s['jobs_per_s'][0]:,.0f}-"
        f"{s['jobs_per_s'][1]:,.0f}); submit-to-start p50 {out['p50_ms']} ms "
        f"({s['p50_ms'][0]}-{s['p50_ms'][1]}), "
        f"p99 {out['p99_ms']} ms ({s['p99_ms'][0]}-{s['p99_ms'][1]}); lost {out['lost']}, "
        f"duplicates {out['duplicates']}"
    )
    print(json.dumps(out, sort_keys=True))
    return 0
