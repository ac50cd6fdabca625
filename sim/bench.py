"""``troupe bench sim``: simulator deliveries per wall second against bare heap loops.

Each simulator workload is paired with a baseline that runs the *same event pattern* through
the smallest possible Python heap loop, so the ratio is the simulator's own cost (actor calls,
the effect path, network model, crash/partition bookkeeping, every event traced and its SHA-256)
and not a difference in workload:

- ping-pong: two actors on two nodes, 1 ms latency, one message in flight. Baseline: a heap of
  ``(time, seq, target, msg)`` whose targets are two objects answering a frozen message with a
  new one (the loop FINDINGS.md measured);
- heartbeat: 50 nodes running the heartbeat detector, interval 1 s, 1 ms latency (2,450 pings
  and 2,450 pongs per second, about 2,500 entries in the heap). Baseline: the same ticks, pings
  and pongs through a bare heap with trivial handlers.

Also printed, for scale: the floor of any heap loop (ints only, one entry in the heap).
Repeats are interleaved (baseline, simulator, baseline, ...) so machine noise hits both alike;
each figure is the median with min and max.
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


def floor(messages: int) -> tuple[int, float]:
    """The cheapest heap loop: int targets and messages, one entry in the heap."""
    heap: list[tuple[int, int, int, int]] = []
    push = heapq.heappush
    pop = heapq.heappop
    push(heap, (0, 0, 0, 0))
    seq = 1
    n = 0
    t0 = time.perf_counter()
    while heap and n < messages:
        t, _, target, msg = pop(heap)
        push(heap, (t + 1_000_000, seq, 1 - target, msg + 1))
        seq += 1
        n += 1
    return n, time.perf_counter() - t0


class _BarePlayer:
    __slots__ = ("peer",)

    def __init__(self) -> None:
        self.peer: _BarePlayer = self

    def receive(self, msg: Ball) -> Ball:
        return Ball(msg.n + 1)


def ping_pong_baseline(messages: int) -> tuple[int, float]:
    """Two objects ping-ponging ``messages`` frozen messages through a bare heap, 1 ms apart."""
    heap: list[tuple[int, int, _BarePlayer, Ball]] = []
    push = heapq.heappush
    pop = heapq.heappop
    a, b = _BarePlayer(), _BarePlayer()
    a.peer, b.peer = b, a
    push(heap, (0, 0, a, Ball(0)))
    seq = 1
    n = 0
    t0 = time.perf_counter()
    while heap and n < messages:
        t, _, target, msg = pop(heap)
        reply = target.receive(msg)
        push(heap, (t + 1_000_000, seq, target.peer, reply))
        seq += 1
        n += 1
    return n, time.perf_counter() - t0


def heartbeat_baseline(nodes: int, seconds: float) -> tuple[int, float]:
    """The heartbeat workload's events (ticks, pings, pongs) through a bare heap loop."""
    tick, ping, pong = 0, 1, 2
    latency, interval, end = 1_000_000, 1_000_000_000, round(seconds * 1e9)
    heap: list[tuple[int, int, int, int, int, int]] = []
    push = heapq.heappush
    pop = heapq.heappop
    last_heard: list[dict[int, int]] = [{} for _ in range(nodes)]
    seq = 0
    for node in range(nodes):
        push(heap, (0, seq, tick, node, -1, 0))
        seq += 1
    n = 0
    t0 = time.perf_counter()
    while heap and heap[0][0] <= end:
        t, _, kind, target, src, sent_at = pop(heap)
        if kind == tick:
            for peer in range(nodes):
                if peer != target:
                    push(heap, (t + latency, seq, ping, peer, target, t))
                    seq += 1
            push(heap, (t + interval, seq, tick, target, -1, 0))
            seq += 1
        elif kind == ping:
            n += 1
            push(heap, (t + latency, seq, pong, src, target, sent_at))
            seq += 1
        else:
            n += 1
            last_heard[target][src] = sent_at
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


def _figure(rates: list[float]) -> Figure:
    return Figure(statistics.median(rates), min(rates), max(rates))


def measure_pair(
    base: Callable[[], tuple[int, float]], sim: Callable[[], tuple[int, float]], repeat: int
) -> tuple[Figure, Figure]:
    """Run baseline and simulator alternately ``repeat`` times; deliveries/s of each."""
    base_rates: list[float] = []
    sim_rates: list[float] = []
    for _ in range(repeat):
        n, secs = base()
        base_rates.append(n / secs)
        n, secs = sim()
        sim_rates.append(n / secs)
    return _figure(base_rates), _figure(sim_rates)


def run_bench(repeat: int = 5, quick: bool = False, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure and print every figure; return the JSON summary (heartbeat, codec off, first)."""
    scale = 0.1 if quick else 1.0
    pp_n = int(200_000 * scale)
    hb_secs = 20.0 * scale
    out(f"simulator benchmark: {repeat} interleaved repeats, median (min, max) deliveries per wall second")
    low = _figure([n / secs for n, secs in (floor(pp_n) for _ in range(repeat))])
    out(f"  heap-loop floor (ints, 1 entry)          {low}")
    pp_base, pp_off = measure_pair(lambda: ping_pong_baseline(pp_n), lambda: ping_pong(pp_n, False), repeat)
    hb_base, hb_off = measure_pair(
        lambda: heartbeat_baseline(50, hb_secs), lambda: heartbeat(50, hb_secs, False), repeat
    )
    pp_on = _figure([n / s for n, s in (ping_pong(pp_n, True) for _ in range(repeat))])
    hb_on = _figure([n / s for n, s in (heartbeat(50, hb_secs, True) for _ in range(repeat))])
    out("ping-pong, 2 actors, 1 ms latency")
    out(f"  bare heap-loop baseline                  {pp_base}")
    out(f"  simulator, codec checks off              {pp_off}  ratio {pp_off.median / pp_base.median:.3f}")
    out(f"  simulator, codec checks on               {pp_on}  ratio {pp_on.median / pp_base.median:.3f}")
    out("heartbeat, 50 nodes, interval 1 s, 1 ms latency")
    out(f"  bare heap-loop baseline (same events)    {hb_base}")
    out(f"  simulator, codec checks off              {hb_off}  ratio {hb_off.median / hb_base.median:.3f}")
    out(f"  simulator, codec checks on               {hb_on}  ratio {hb_on.median / hb_base.median:.3f}")
    return {
        "deliveries_per_s": round(hb_off.median),
        "baseline_per_s": round(hb_base.median),
        "ratio": round(hb_off.median / hb_base.median, 3),
        "spread": [round(hb_off.low), round(hb_off.high)],
        "baseline_spread": [round(hb_base.low), round(hb_base.high)],
        "codec_on_per_s": round(hb_on.median),
        "ping_pong_per_s": round(pp_off.median),
        "ping_pong_baseline_per_s": round(pp_base.median),
        "ping_pong_ratio": round(pp_off.median / pp_base.median, 3),
        "floor_per_s": round(low.median),
        "repeat": repeat,
    }
