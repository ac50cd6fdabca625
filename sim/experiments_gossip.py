"""Measurements of the gossip election in the simulator: detection and convergence time against
cluster size, and the false-positive rate under message loss.

Run ``python -m sim.experiments_gossip [--sizes 10,100,1000] [--seeds 1,2] [--loss 0.01,0.05]``;
it prints one JSON line per measurement and a table at the end.

- ``scaling(n, seed)``: ``n - 1`` members start at once, joining through seeds ``n1..n3``; once
  they have converged, the last node starts late and joins through the seeds (convergence time:
  until every member has it alive), then a non-seed member crashes (detection time: until every
  live member holds it dead; the first detection is reported too).
- ``false_positive_rate(n, loss, seed)``: ``n`` members on a lossy network with nothing crashed;
  every suspicion and death of a member is false. Rates are per member-hour of run.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Any

from actors.elections.gossip import GossipConfig, blueprint

from .faults import Fault
from .network import NetworkConfig, Uniform
from .world import Simulation

LAN = Uniform(0.001, 0.010)


@dataclass(frozen=True, slots=True)
class Scaling:
    n: int
    seed: int
    convergence: float | None  # late member start -> alive at every member (s)
    first_detection: float | None  # crash -> first member declares it dead (s)
    detection: float | None  # crash -> every live member holds it dead (s)
    suspicion_min: float
    wall_seconds: float


def _config(n: int) -> GossipConfig:
    return GossipConfig(seeds=tuple(f"n{i}" for i in range(1, min(n, 3) + 1)))


def scaling(n: int, seed: int = 1, *, warmup: float | None = None) -> Scaling:
    """Join convergence and crash detection times in a cluster of ``n`` simulated nodes."""
    wall0 = time.perf_counter()
    nodes = [f"n{i}" for i in range(1, n + 1)]
    joiner, victim = nodes[-1], nodes[-2]
    cfg = _config(n)
    start_at = warmup if warmup is not None else (30.0 if n <= 100 else 150.0)
    crash_at = start_at + 40.0
    end = crash_at + cfg.suspicion_max(n) + 20 * cfg.interval
    s = Simulation(
        blueprint(tuple(nodes), cfg),
        nodes,
        seed=seed,
        network=NetworkConfig(latency=LAN),
        codec_checks=n < 100,
        late=(joiner,),
    )
    s.schedule(Fault(start_at, "start", node=joiner))
    s.schedule(Fault(crash_at, "crash", node=victim))
    res = s.run(end)
    others = set(nodes) - {joiner}
    alive_at: dict[str, float] = {}
    dead_at: dict[str, float] = {}
    for e in res.emitted:
        member = e.fields.get("member")
        if e.kind == "member.alive" and member == joiner and e.t >= start_at:
            alive_at.setdefault(e.node, e.t)
        elif e.kind == "member.dead" and member == victim and e.t >= crash_at:
            dead_at.setdefault(e.node, e.t)
    convergence = max(alive_at.values()) - start_at if set(alive_at) >= others else None
    live = set(nodes) - {victim}
    detection = max(dead_at.values()) - crash_at if set(dead_at) >= live else None
    first = min(dead_at.values()) - crash_at if dead_at else None
    return Scaling(n, seed, convergence, first, detection, cfg.suspicion_min(n), time.perf_counter() - wall0)


@dataclass(frozen=True, slots=True)
class FalsePositives:
    n: int
    loss: float
    seed: int
    duration: float
    suspicions: int  # distinct (member, incarnation) suspected although alive
    deaths: int  # distinct (member, incarnation) declared dead although alive
    suspicions_per_member_hour: float
    deaths_per_member_hour: float
    probes: int


def false_positive_rate(n: int, loss: float, seed: int = 1, duration: float = 600.0) -> FalsePositives:
    """False suspicions and deaths of ``n`` live members under ``loss`` for ``duration`` s."""
    nodes = [f"n{i}" for i in range(1, n + 1)]
    warmup = 20.0
    s = Simulation(
        blueprint(tuple(nodes), _config(n)),
        nodes,
        seed=seed,
        network=NetworkConfig(latency=LAN),
        codec_checks=False,
    )
    s.schedule(Fault(warmup, "set_loss", value=loss))
    res = s.run(warmup + duration)
    suspected = {
        (e.fields["member"], e.fields["incarnation"]) for e in res.emitted if e.kind == "member.suspect"
    }
    dead = {(e.fields["member"], e.fields["incarnation"]) for e in res.emitted if e.kind == "member.dead"}
    hours = n * duration / 3600.0
    probes = sum(1 for r in res.trace.records if r[1] == "timer" and r[4] == "probe")
    return FalsePositives(
        n, loss, seed, duration, len(suspected), len(dead), len(suspected) / hours, len(dead) / hours, probes
    )


def _row(obj: Any) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in obj.__slots__}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.experiments_gossip")
    p.add_argument("--sizes", default="10,100,1000")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--big-seeds", default="1", help="seeds for n >= 1000")
    p.add_argument("--loss", default="0.01,0.05")
    p.add_argument("--fp-nodes", type=int, default=10)
    p.add_argument("--fp-duration", type=float, default=600.0)
    args = p.parse_args(argv)
    rows: list[Scaling] = []
    for n in (int(x) for x in args.sizes.split(",") if x):
        seeds = args.big_seeds if n >= 1000 else args.seeds
        for seed in (int(x) for x in seeds.split(",")):
            r = scaling(n, seed)
            rows.append(r)
            print(json.dumps(_row(r)), flush=True)
    fps: list[FalsePositives] = []
    for loss in (float(x) for x in args.loss.split(",") if x):
        for seed in (int(x) for x in args.seeds.split(",")):
            f = false_positive_rate(args.fp_nodes, loss, seed, args.fp_duration)
            fps.append(f)
            print(json.dumps(_row(f)), flush=True)
    print("\n   n  seed  convergence  first detection  detection (all)  suspicion_min  wall")
    for r in rows:
        print(
            f"{r.n:4d}  {r.seed:4d}  {r.convergence!s:>11.6}  {r.first_detection!s:>15.6}  "
            f"{r.detection!s:>15.6}  {r.suspicion_min:13.1f}  {r.wall_seconds:5.1f}s"
        )
    print("\n   n  loss  seed  false suspicions  false deaths  (per member-hour: susp / dead)")
    for f in fps:
        print(
            f"{f.n:4d}  {f.loss:.2f}  {f.seed:4d}  {f.suspicions:16d}  {f.deaths:12d}  "
            f"{f.suspicions_per_member_hour:.2f} / {f.deaths_per_member_hour:.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
