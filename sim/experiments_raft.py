"""Measured Raft figures: time from a leader crash to a new leader, and messages per election.

For each seed: ``n`` nodes (election timeout 150-300 ms, 50 ms heartbeats, constant one-way
latency 15 ms, no client load) run until ``warmup``; the leader of that moment crashes; the run
goes on until a new leader is elected. Reported per ``n``: percentiles of the failover time
(crash to the first ``leader.elected`` after it, true seconds), of the number of election
messages (``RequestVote`` and ``VoteResponse``, pre-votes included) sent in that window, and
how many campaigns (terms) it took.

Run it as ``python -m sim.experiments_raft --seeds 1000 --nodes 3 5 7``; from a notebook,
:func:`failover` returns the raw samples.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass
from typing import Any

from actors import tag_of
from actors.elections import NAME
from actors.elections.raft import LEADER, Raft, RaftConfig, RequestVote, VoteResponse
from actors.elections.raft import blueprint as raft_blueprint

from .faults import Fault
from .network import Constant, NetworkConfig, Uniform
from .world import Simulation


@dataclass(frozen=True, slots=True)
class Failover:
    """One seed's outcome: failover seconds (None: no new leader in time), messages, terms."""

    seed: int
    seconds: float | None
    messages: int
    campaigns: int


def failover(
    n: int,
    seed: int,
    *,
    election_timeout: float = 0.15,
    interval: float = 0.05,
    latency: float | tuple[float, float] = 0.015,
    warmup: float = 2.0,
    horizon: float = 10.0,
    pre_vote: bool = True,
    check_quorum: bool = True,
    randomness: float | None = None,
    crash_jitter: float = 0.0,
) -> Failover:
    """Crash the leader at ``warmup`` (plus a seeded random part of ``crash_jitter``, as the
    paper crashed it at a random point of its heartbeat interval) and measure how long until
    the next one is elected."""
    nodes = tuple(f"n{i}" for i in range(1, n + 1))
    cfg = RaftConfig(
        election_timeout=election_timeout,
        interval=interval,
        pre_vote=pre_vote,
        check_quorum=check_quorum,
        election_randomness=randomness,
    )
    warmup += random.Random(seed).uniform(0, crash_jitter) if crash_jitter else 0.0
    s = Simulation(
        raft_blueprint(nodes, cfg),
        nodes,
        seed=seed,
        network=NetworkConfig(latency=Uniform(*latency) if isinstance(latency, tuple) else Constant(latency)),
        codec_checks=False,
    )
    s.run(warmup)
    leaders = [m for m in nodes if isinstance(a := s.actor(m, NAME), Raft) and a.role == LEADER]
    if not leaders:
        return Failover(seed, None, 0, 0)
    start = len(s.emitted)
    first_record = len(s.trace)
    s.schedule(Fault(warmup, "crash", node=leaders[0]))
    elected_at = None
    until = warmup
    while elected_at is None and until < warmup + horizon:
        until += 0.25
        s.run(until)
        elected_at = next((e.t for e in s.emitted[start:] if e.kind == "leader.elected"), None)
    if elected_at is None:
        return Failover(seed, None, 0, 0)
    end_ns = round(elected_at * 1_000_000_000)  # trace times are integer ns
    election = (tag_of(RequestVote), tag_of(VoteResponse))
    messages = sum(
        1
        for r in s.trace.records[first_record:]
        if r[1] == "send" and r[0] <= end_ns and r[7][0] in election  # r[7]: [tag, field, ...]
    )
    campaigns = sum(1 for e in s.emitted[start:] if e.kind == "raft.campaign" and e.t <= elected_at)
    return Failover(seed, elected_at - warmup, messages, campaigns)


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summarize(samples: list[Failover]) -> dict[str, Any]:
    """Percentiles (ms for times) over the samples that elected a new leader."""
    ok = [x for x in samples if x.seconds is not None]
    secs = [x.seconds * 1000 for x in ok if x.seconds is not None]
    msgs = [float(x.messages) for x in ok]
    camps = [float(x.campaigns) for x in ok]
    if not ok:
        return {"runs": len(samples), "elected": 0}
    return {
        "runs": len(samples),
        "elected": len(ok),
        "failover_ms": {p: round(_pct(secs, q), 1) for p, q in (("p50", 50), ("p99", 99), ("max", 100))},
        "messages": {p: _pct(msgs, q) for p, q in (("p50", 50), ("p99", 99), ("max", 100))},
        "messages_mean": round(sum(msgs) / len(msgs), 2),
        "campaigns_mean": round(sum(camps) / len(camps), 3),
        "campaigns_max": max(camps),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--nodes", type=int, nargs="+", default=[3, 5, 7])
    ap.add_argument("--no-pre-vote", action="store_true")
    ap.add_argument(
        "--paper",
        action="store_true",
        help="the Raft paper's Figure 16 setup: 5 nodes, timeouts 150 ms + 5 ms and + 50 ms of "
        "randomness, heartbeats every 75 ms, crash at a random point of it, no pre-vote or check-quorum",
    )
    ap.add_argument(
        "--latency-ms",
        type=float,
        nargs="+",
        default=[15.0],
        help="one-way latency: one value (constant) or LOW HIGH (uniform); default 15",
    )
    args = ap.parse_args(argv)
    latency: float | tuple[float, float] = (
        args.latency_ms[0] / 1000
        if len(args.latency_ms) == 1
        else (args.latency_ms[0] / 1000, args.latency_ms[1] / 1000)
    )
    if args.paper:
        for spread in (0.005, 0.05):
            wall = time.perf_counter()
            samples = [
                failover(5, seed, interval=0.075, pre_vote=False, check_quorum=False,
                         randomness=spread, crash_jitter=0.075, latency=latency)
                for seed in range(1, args.seeds + 1)
            ]  # fmt: skip
            summary = summarize(samples)
            summary.update(
                nodes=5,
                timeouts_ms=[150, round(150 + spread * 1000)],
                latency_ms=args.latency_ms,
                wall_seconds=round(time.perf_counter() - wall, 1),
            )
            print(json.dumps(summary, sort_keys=True), flush=True)
        return 0
    for n in args.nodes:
        wall = time.perf_counter()
        samples = [
            failover(n, seed, pre_vote=not args.no_pre_vote, latency=latency)
            for seed in range(1, args.seeds + 1)
        ]
        summary = summarize(samples)
        summary.update(
            nodes=n, pre_vote=not args.no_pre_vote, wall_seconds=round(time.perf_counter() - wall, 1)
        )
        print(json.dumps(summary, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
