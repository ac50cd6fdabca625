"""``troupe bench versus``: Troupe on Redis and Huey, interleaved round by round, with their ratio.

How it works
------------
This machine's speed drifts by a third or more within minutes, so two blocks of runs taken one
after the other can differ by more than the systems do. This command alternates them instead:
each of ``--rounds`` rounds runs one ``troupe bench jobs --store redis`` run
(:func:`transport.bench_jobs.run_once`, direct submits, 2 nodes) and one ``troupe bench huey``
run (:func:`transport.bench_huey.run_once`, 2 worker processes), both with the same ``--n``,
``--latency-jobs``, ``--rate`` and Redis settings, each on a fresh ``redis-server`` of its own;
odd rounds run Troupe first, even rounds Huey first, so neither always gets the warmer machine.

Reported: each system's medians with min-max over the rounds (as ``--repeat`` reports them),
and per round Troupe's jobs/s over Huey's and Troupe's p50 and p99 minus Huey's, as medians
with min-max: a ratio taken within a round compares the two under the same conditions. The last
line is JSON: ``troupe`` and ``huey`` (each system's summary), ``ratio_jobs_per_s``,
``p50_ms_delta``, ``p99_ms_delta`` (``median`` and ``spread``) and ``rounds``.
Needs the ``peers`` extra (``pip install -e '.[peers]'``: huey, redis).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from typing import Any

from .bench_huey import HueyBenchSpec, huey_installed
from .bench_huey import run_once as run_huey
from .bench_jobs import JobsBenchSpec, summary
from .bench_jobs import run_once as run_troupe
from .service_settings import ConfigError


def _median_spread(values: list[float], digits: int) -> dict[str, Any]:
    return {
        "median": round(statistics.median(values), digits),
        "spread": [round(min(values), digits), round(max(values), digits)],
    }


def versus(
    troupe: JobsBenchSpec, huey: HueyBenchSpec, rounds: int, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Alternate one run of each system per round; both summaries and the per-round comparisons."""
    run: dict[str, Callable[[], dict[str, Any]]] = {
        "troupe": lambda: run_troupe(troupe, lambda _line: None),
        "huey": lambda: run_huey(huey),
    }
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    for r in range(1, rounds + 1):
        order = ("troupe", "huey") if r % 2 else ("huey", "troupe")
        got = {system: run[system]() for system in order}
        t, h = got["troupe"], got["huey"]
        ours.append(t)
        theirs.append(h)
        say(
            f"round {r} ({order[0]} first): troupe {t['jobs_per_s']:,.0f} jobs/s, p50 {t['p50_ms']:.2f} ms, "
            f"p99 {t['p99_ms']:.2f} ms; huey {h['jobs_per_s']:,.0f} jobs/s, p50 {h['p50_ms']:.2f} ms, "
            f"p99 {h['p99_ms']:.2f} ms; ratio {t['jobs_per_s'] / h['jobs_per_s']:.2f}"
        )
    pairs = list(zip(ours, theirs))
    return {
        "rounds": rounds,
        "n": troupe.n,
        "rate": troupe.rate,
        "latency_jobs": troupe.latency_jobs,
        "redis_fsync": troupe.redis_fsync,
        "troupe": {"store": "redis", "submit": troupe.submit, "nodes": troupe.nodes, **summary(ours)},
        "huey": {"workers": huey.workers, **summary(theirs)},
        "ratio_jobs_per_s": _median_spread([t["jobs_per_s"] / h["jobs_per_s"] for t, h in pairs], 2),
        "p50_ms_delta": _median_spread([t["p50_ms"] - h["p50_ms"] for t, h in pairs], 2),
        "p99_ms_delta": _median_spread([t["p99_ms"] - h["p99_ms"] for t, h in pairs], 2),
    }


def register(bench_sub: Any) -> None:
    """Add ``troupe bench versus``."""
    p = bench_sub.add_parser(
        "versus", help="Troupe on Redis and Huey, interleaved round by round, compared (needs .[peers])"
    )
    p.add_argument("--rounds", type=int, default=5, help="rounds of one run each (default 5)")
    p.add_argument("--n", type=int, default=20_000, help="jobs in the throughput phase (default 20000)")
    p.add_argument("--rate", type=float, default=200.0, help="jobs/s in the latency phase (default 200)")
    p.add_argument("--latency-jobs", type=int, default=2_000, help="jobs in the latency phase (default 2000)")
    p.add_argument("--redis-fsync", default="everysec", choices=["everysec", "always"], help="appendfsync")
    p.set_defaults(func=cmd_versus)


def cmd_versus(args: argparse.Namespace) -> int:
    """Entry point of ``troupe bench versus``; returns the exit code."""
    from .jobs_client import JobError

    if not huey_installed("troupe bench versus"):
        return 2
    try:
        for name in ("rounds", "n", "latency_jobs"):
            if getattr(args, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')}={getattr(args, name)}: must be >= 1")
        if not args.rate > 0:
            raise ConfigError("--rate must be > 0")
        troupe = JobsBenchSpec(
            store="redis",
            n=args.n,
            rate=args.rate,
            latency_jobs=args.latency_jobs,
            redis_fsync=args.redis_fsync,
            submit="direct",
        )
        huey_spec = HueyBenchSpec(args.n, 2, args.rate, args.latency_jobs, args.redis_fsync)
        print(
            f"bench versus: {args.rounds} rounds of troupe (redis, direct submits, {troupe.nodes} nodes) "
            f"and huey ({huey_spec.workers} worker processes), alternating who goes first; "
            f"{args.n} no-op jobs, then {args.latency_jobs} at {args.rate:g}/s; "
            f"appendfsync {args.redis_fsync}",
            flush=True,
        )
        out = versus(troupe, huey_spec, args.rounds, lambda line: print(line, flush=True))
    except (ConfigError, RuntimeError, JobError) as e:
        print(f"troupe bench versus: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    for system in ("troupe", "huey"):
        s = out[system]
        sp = s["spread"]
        print(
            f"{system}: {s['jobs_per_s']:,} jobs/s ({sp['jobs_per_s'][0]:,.0f}-{sp['jobs_per_s'][1]:,.0f}); "
            f"p50 {s['p50_ms']} ms ({sp['p50_ms'][0]}-{sp['p50_ms'][1]}), p99 {s['p99_ms']} ms "
            f"({sp['p99_ms'][0]}-{sp['p99_ms'][1]}); lost {s['lost']}, duplicates {s['duplicates']}"
        )
    ratio, d50, d99 = out["ratio_jobs_per_s"], out["p50_ms_delta"], out["p99_ms_delta"]
    print(
        f"per round, troupe / huey jobs/s: {ratio['median']} ({ratio['spread'][0]}-{ratio['spread'][1]}); "
        f"troupe - huey p50: {d50['median']:+} ms ({d50['spread'][0]:+} to {d50['spread'][1]:+}), "
        f"p99: {d99['median']:+} ms ({d99['spread'][0]:+} to {d99['spread'][1]:+})"
    )
    print(json.dumps(out, sort_keys=True))
    return 0
