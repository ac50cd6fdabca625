"""``troupe bench sim``: simulator deliveries per wall second against a bare heap loop.

Three workloads, each measured ``repeat`` times in the same process (median, min, max):

- baseline: the smallest heap event loop that can ping-pong a message between two handlers
  with 1 ms latency (``heapq`` push/pop of ``(time, seq, target, msg)`` and a trivial call);
- ping-pong: two actors on two nodes of a :class:`~sim.world.Simulation`, 1 ms latency;
- heartbeat: 50 nodes running the heartbeat detector (2,450 pings and pongs per interval).

The ratio simulator/baseline is what the simulator costs over the floor of any Python heap loop.
"""

from __future__ import annotations

import heapq
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from actors import Actor, ActorRef, Context, message
from actors import heartbeat as hb

from .network import Constant, NetworkConfig
from .world import Simulation


@message("bench.Ball")
@dataclass(frozen=True, slots=True)
class Ball:
    n: int


class _Player(Actor):
    def __init__(self, peer: ActorRef, serve: bool):
        self.peer = peer
        self.serve = serve

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        if self.serve:
            ctx.send(self.peer, Ball(0))

    def receive(self, ctx: Context, msg: Any) -> None:
        ctx.reply(Ball(msg.n + 1))


def baseline(messages: int) -> tuple[int, float]:
    """A bare heap loop ping-ponging ``messages`` messages; returns (deliveries, seconds)."""
    heap: list[tuple[float, int, int, int]] = []
    push = heapq.heappush
    pop = heapq.heappop
    counts = [0, 0]

    def handler(target: int, msg: int) -> int:
        counts[target] += 1
        return msg + 1

    push(heap, (0.0, 0, 0, 0))
    seq = 1
    t0 = time.perf_counter()
    n = 0
    while heap and n < messages:
        t, _, target, msg = pop(heap)
        reply = handler(target, msg)
        push(heap, (t + 0.001, seq, 1 - target, reply))
        seq += 1
        n += 1
    return n, time.perf_counter() - t0


def ping_pong(messages: int, codec_checks: bool) -> tuple[int, float]:
    """Two simulated actors exchanging ``messages`` messages with 1 ms latency."""
    a, b = ActorRef("n1", "player"), ActorRef("n2", "player")

    def build(node: str) -> dict[str, Actor]:
        return {"player": _Player(b if node == "n1" else a, serve=node == "n1")}

    sim = Simulation(
        build, ["n1", "n2"], seed=1, network=NetworkConfig(Constant(0.001)), codec_checks=codec_checks
    )
    t0 = time.perf_counter()
    res = sim.run(until=messages * 0.001 - 0.0005)
    return res.deliveries, time.perf_counter() - t0


def heartbeat(nodes: int, seconds: float, codec_checks: bool) -> tuple[int, float]:
    """``nodes`` heartbeat detectors (interval 1 s) for ``seconds`` simulated seconds."""
    ids = tuple(f"n{i}" for i in range(1, nodes + 1))
    bp = hb.blueprint(ids, hb.HeartbeatConfig(interval=1.0, suspect_after=2.0, dead_after=3.0))
    sim = Simulation(bp, ids, seed=1, network=NetworkConfig(Constant(0.001)), codec_checks=codec_checks)
    t0 = time.perf_counter()
    res = sim.run(until=seconds)
    return res.deliveries, time.perf_counter() - t0


@dataclass(frozen=True, slots=True)
class Figure:
    """Deliveries per wall second over several repeats."""

    median: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.median:>10,.0f}/s  (min {self.low:,.0f}, max {self.high:,.0f})"


def measure(fn: Callable[[], tuple[int, float]], repeat: int) -> Figure:
    rates = []
    for _ in range(repeat):
        n, secs = fn()
        rates.append(n / secs)
    return Figure(statistics.median(rates), min(rates), max(rates))


def run_bench(repeat: int = 5, quick: bool = False, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure and print every figure; return the JSON summary (heartbeat ratio first)."""
    scale = 0.1 if quick else 1.0
    pp_n = int(200_000 * scale)
    hb_secs = 20.0 * scale
    out(f"simulator benchmark: {repeat} repeats each, median (min, max) deliveries per wall second")
    base = measure(lambda: baseline(pp_n), repeat)
    out(f"  bare heap loop baseline          {base}")
    results: dict[str, Any] = {}
    for codec in (False, True):
        tag = "codec on " if codec else "codec off"
        pp = measure(lambda c=codec: ping_pong(pp_n, c), repeat)  # type: ignore[misc]
        out(f"  ping-pong, 2 actors, {tag}     {pp}  ratio {pp.median / base.median:.3f}")
        hbf = measure(lambda c=codec: heartbeat(50, hb_secs, c), repeat)  # type: ignore[misc]
        out(f"  heartbeat, 50 nodes, {tag}     {hbf}  ratio {hbf.median / base.median:.3f}")
        key = "codec_on" if codec else "codec_off"
        results[key] = {"ping_pong_per_s": round(pp.median), "heartbeat_per_s": round(hbf.median)}
    off = results["codec_off"]
    return {
        "deliveries_per_s": off["heartbeat_per_s"],
        "baseline_per_s": round(base.median),
        "ratio": round(off["heartbeat_per_s"] / base.median, 3),
        "ping_pong_per_s": off["ping_pong_per_s"],
        "ping_pong_ratio": round(off["ping_pong_per_s"] / base.median, 3),
        "codec_on": results["codec_on"],
        "repeat": repeat,
    }
