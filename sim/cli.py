"""``troupe sim run``, ``troupe sim swarm``, ``troupe sim check-determinism``, ``troupe bench sim``.

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
from .swarm import FAULT_LEVELS, SeedOutcome, replay_command, swarm, swarm_scenario
from .systems import SYSTEMS


def register(subparsers: Any) -> None:
    """Add the ``sim`` commands to the ``troupe`` parser."""
    sim_p = subparsers.add_parser("sim", help="run fault scenarios in the deterministic simulator")
    sim_sub = sim_p.add_subparsers(dest="sim_command", required=True, metavar="SUBCOMMAND")

    run_p = sim_sub.add_parser("run", help="run a scenario with a seed and check its promises")
    run_p.add_argument("scenario", help="scenario TOML file")
    run_p.add_argument("--seed", type=int, required=True)
    run_p.add_argument("--trace", metavar="FILE", help="write the trace (.jsonl or .msgpack)")
    run_p.add_argument("--no-codec-checks", action="store_true", help="skip encode/decode of messages")
    run_p.add_argument(
        "--swarm", action="store_true", help="replace the faults by the swarm fault mix of --seed"
    )
    _swarm_flags(run_p)
    run_p.set_defaults(func=cmd_run)

    swarm_p = sim_sub.add_parser(
        "swarm", help="run many seeds, each with a random fault mix, and report failing ones"
    )
    swarm_p.add_argument("scenario", help="scenario TOML file (system, nodes, network, duration)")
    swarm_p.add_argument("--seeds", required=True, metavar="A-B", help="inclusive seed range, e.g. 1-100")
    swarm_p.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (default 1)")
    _swarm_flags(swarm_p)
    swarm_p.set_defaults(func=cmd_swarm)

    det_p = sim_sub.add_parser("check-determinism", help="run a seed twice and compare trace hashes")
    det_p.add_argument("scenario", help="scenario TOML file")
    det_p.add_argument("--seed", type=int, required=True)
    det_p.set_defaults(func=cmd_check_determinism)


def register_bench(bench_sub: Any) -> None:
    """Add ``troupe bench sim`` to the ``bench`` subcommands."""
    bsim = bench_sub.add_parser("sim", help="simulator deliveries per second vs a bare heap loop")
    bsim.add_argument("--repeat", type=int, default=5)
    bsim.add_argument("--quick", action="store_true", help="10x smaller workloads")
    bsim.set_defaults(func=cmd_bench_sim)


def _swarm_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--faults", choices=list(FAULT_LEVELS), default=None, help="swarm fault level (default: default)"
    )
    p.add_argument(
        "--liveness",
        type=float,
        metavar="SECONDS",
        help="length of the fault-free phase after the faults (default: the system's bound)",
    )


def cmd_run(args: argparse.Namespace) -> int:
    try:
        sc = load_scenario(args.scenario)
    except ScenarioError as e:
        print(e, file=sys.stderr)
        return 2
    if not args.swarm and (args.faults is not None or args.liveness is not None):
        print("troupe sim run: --faults and --liveness need --swarm", file=sys.stderr)
        return 2
    if args.swarm:
        sc = swarm_scenario(sc, args.seed, args.faults or "default", args.liveness)
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
    if sc.clocks:
        print("clocks    " + ", ".join(f"{n} {c.offset:+g}s {c.drift:+g}" for n, c in sc.clocks.items()))
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


def _seed_range(text: str) -> range:
    first, sep, last = text.partition("-")
    try:
        a = int(first)
        b = int(last) if sep else a
    except ValueError:
        raise ValueError(f"--seeds: expected A-B (e.g. 1-100), got {text!r}") from None
    if a < 0 or b < a:
        raise ValueError(f"--seeds: expected 0 <= A <= B, got {text!r}")
    return range(a, b + 1)


def cmd_swarm(args: argparse.Namespace) -> int:
    try:
        seeds = _seed_range(args.seeds)
        if args.jobs < 1:
            raise ValueError(f"--jobs: must be >= 1, got {args.jobs}")
        sc = load_scenario(args.scenario)
    except (ScenarioError, ValueError) as e:
        print(e, file=sys.stderr)
        return 2
    level = args.faults or "default"
    print(
        f"swarm  {sc.name} ({sc.source}), system {sc.system}, seeds {seeds.start}-{seeds.stop - 1}, "
        f"faults {level}, jobs {args.jobs}",
        flush=True,
    )
    wall0 = time.perf_counter()
    state = {"done": 0, "failing": 0, "shown": wall0}

    def report(o: SeedOutcome) -> None:
        state["done"] += 1
        if o.violations:
            state["failing"] += 1
            first = "; ".join(str(v) for v in o.violations[:2])
            more = f" (+{len(o.violations) - 2} more)" if len(o.violations) > 2 else ""
            replay = replay_command(args.scenario, o.seed, level, args.liveness)
            print(f"FAIL seed {o.seed}: {first}{more} | replay: {replay}", flush=True)
        now = time.perf_counter()
        if now - state["shown"] >= 5.0:
            state["shown"] = now
            rate = state["done"] / (now - wall0)
            print(
                f"  {state['done']}/{len(seeds)} seeds, {state['failing']} failing, {rate:.1f} seeds/s",
                file=sys.stderr,
                flush=True,
            )

    result = swarm(sc, seeds, level, jobs=args.jobs, liveness=args.liveness, on_outcome=report)
    summary = result.summary_json()
    summary["scenario"] = args.scenario
    print(json.dumps(summary, sort_keys=True))
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
