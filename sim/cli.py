"""``troupe sim run``, ``troupe sim check-determinism`` and ``troupe bench sim``.

Every handler returns the exit code: 0 fine, 1 violations or differing traces, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from .checkers import detections
from .runner import build_simulation, check_determinism
from .scenario import ScenarioError, load_scenario
from .systems import SYSTEMS


def register(subparsers: Any) -> None:
    """Add the ``sim`` and ``bench`` commands to the ``troupe`` parser."""
    sim_p = subparsers.add_parser("sim", help="run fault scenarios in the deterministic simulator")
    sim_sub = sim_p.add_subparsers(dest="sim_command", required=True, metavar="SUBCOMMAND")

    run_p = sim_sub.add_parser("run", help="run a scenario with a seed and check its promises")
    run_p.add_argument("scenario", help="scenario TOML file")
    run_p.add_argument("--seed", type=int, required=True)
    run_p.add_argument("--trace", metavar="FILE", help="write the trace (.jsonl or .msgpack)")
    run_p.add_argument("--no-codec-checks", action="store_true", help="skip encode/decode of messages")
    run_p.set_defaults(func=cmd_run)

    det_p = sim_sub.add_parser("check-determinism", help="run a seed twice and compare trace hashes")
    det_p.add_argument("scenario", help="scenario TOML file")
    det_p.add_argument("--seed", type=int, required=True)
    det_p.set_defaults(func=cmd_check_determinism)

    bench_p = subparsers.add_parser("bench", help="benchmarks")
    bench_sub = bench_p.add_subparsers(dest="bench_command", required=True, metavar="TARGET")
    bsim = bench_sub.add_parser("sim", help="simulator deliveries per second vs a bare heap loop")
    bsim.add_argument("--repeat", type=int, default=5)
    bsim.add_argument("--quick", action="store_true", help="10x smaller workloads")
    bsim.set_defaults(func=cmd_bench_sim)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        sc = load_scenario(args.scenario)
    except ScenarioError as e:
        print(e, file=sys.stderr)
        return 2
    wall0 = time.perf_counter()
    sim = build_simulation(sc, args.seed, codec_checks=False if args.no_codec_checks else None)
    result = sim.run(sc.duration)
    result.wall_seconds = time.perf_counter() - wall0
    result.violations = SYSTEMS[sc.system].check(result, sc.params)
    if args.trace:
        result.trace.write(args.trace)
    print(f"scenario  {sc.name} ({sc.source}), system {sc.system}, seed {args.seed}")
    if sc.description:
        print(f"          {sc.description}")
    print(f"nodes     {len(sc.nodes)}: {', '.join(sc.nodes)}")
    print(f"faults    {len(result.faults)} applied")
    for f in result.faults:
        print(f"  t={f.at:>9.3f}  {f.describe()}")
    print("events    " + ", ".join(f"{k} {v}" for k, v in result.stats.items()))
    if sc.system == "heartbeat":
        print("detected  " + ", ".join(f"{k} {v}" for k, v in detections(result).items()))
    print(f"violations {len(result.violations)}")
    for v in result.violations:
        print(f"  {v}")
    if args.trace:
        print(f"trace     written to {args.trace}")
    print(json.dumps(result.summary_json(args.scenario), sort_keys=True))
    return 1 if result.violations else 0


def cmd_check_determinism(args: argparse.Namespace) -> int:
    try:
        report = check_determinism(args.scenario, args.seed)
    except ScenarioError as e:
        print(e, file=sys.stderr)
        return 2
    print(f"run 1  {report.first_sha256}")
    print(f"run 2  {report.second_sha256}")
    if report.identical:
        print(f"deterministic: seed {args.seed} gives identical traces")
        return 0
    print(f"NOT deterministic: seed {args.seed} gives different traces")
    if report.first_difference is not None:
        index, a, b = report.first_difference
        print(f"first difference at event {index}:\n  run 1: {a}\n  run 2: {b}")
    return 1


def cmd_bench_sim(args: argparse.Namespace) -> int:
    from .bench import run_bench

    summary = run_bench(repeat=args.repeat, quick=args.quick)
    print(json.dumps(summary, sort_keys=True))
    return 0
