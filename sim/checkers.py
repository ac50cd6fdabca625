"""Checkers: the promises of a system, tested against what a run actually did.

Checkers read a :class:`~sim.result.RunResult` (emitted events and the fault timeline) and
return violations as data; they never raise for a broken promise.

Heartbeat detector (see ``actors/heartbeat.py``), with ``I = interval``, ``D = dead_after``,
``L`` the largest possible one-way delay (latency bound plus reordering delay) and ``r`` the
observer's clock drift (local seconds last ``1/(1+r)`` true seconds):

- accuracy: when no loss is configured, a peer that is up, not paused and reachable both ways
  (no partition, block or clog) together with the observer throughout ``[t - D/(1+r), t]`` is
  never declared dead at ``t``. Checked only when ``L`` is bounded and ``2L < D - I`` (the
  detector's own precondition); unbounded latency distributions make no accuracy promise.
- completeness: a node crashed at ``T`` and not restarted by ``T + (D + I)/(1+r)`` is DEAD in
  the view of every observer that was up and not paused over that whole window.
- recovery: after a restart at ``R``, an observer that can reach it both ways without loss no
  longer sees it DEAD at ``R + I/(1+r) + 2L`` (its next ping is answered).

A graceful ``stop`` counts as a crash and a ``start`` as a restart (the detector has no
``on_stop``); a late node is down, so never "up and reachable", until it starts.
"""

from __future__ import annotations

from collections.abc import Sequence

from actors import heartbeat as hb

from .faults import outages
from .result import Emitted, RunResult, Violation

EPSILON = 1e-6
_KINDS = ("peer.dead", "peer.suspect", "peer.alive")
_STATE = {"peer.dead": hb.DEAD, "peer.suspect": hb.SUSPECT, "peer.alive": hb.ALIVE}


class _Views:
    """Each observer's view of each peer over time, rebuilt from the emitted events."""

    def __init__(self, result: RunResult, actor: str):
        self.events: dict[tuple[str, str], list[Emitted]] = {}
        for e in result.emitted:
            if e.actor == actor and e.kind in _KINDS:
                self.events.setdefault((e.node, str(e.fields.get("peer"))), []).append(e)
        # Incarnation of each node over time: +1 at every down -> up transition (a late node
        # is down in the first snapshot, incarnation 0, until it starts).
        snaps = result.timeline.snapshots
        prev_down = snaps[0].down if snaps else frozenset()
        self.starts: dict[str, list[tuple[float, int]]] = {
            n: [(0.0, 0 if n in prev_down else 1)] for n in result.nodes
        }
        for snap in result.timeline.snapshots:
            for n in result.nodes:
                if n in prev_down and n not in snap.down:
                    starts = self.starts[n]
                    starts.append((snap.at, starts[-1][1] + 1))
            prev_down = snap.down

    def incarnation(self, node: str, t: float) -> int:
        inc = 1
        for at, i in self.starts[node]:
            if at <= t:
                inc = i
        return inc

    def state(self, observer: str, peer: str, t: float) -> str:
        """The observer's view of ``peer`` at ``t`` (a new incarnation starts all ALIVE)."""
        inc = self.incarnation(observer, t)
        state = hb.ALIVE
        for e in self.events.get((observer, peer), ()):
            if e.t > t:
                break
            if e.incarnation == inc:
                state = _STATE[e.kind]
        return state


def check_heartbeat(result: RunResult, config: hb.HeartbeatConfig, actor: str = hb.NAME) -> list[Violation]:
    """Check accuracy, completeness and recovery of the heartbeat detector in ``result``."""
    views = _Views(result, actor)
    out: list[Violation] = []
    out += _accuracy(result, config, views)
    out += _completeness(result, config, views)
    out += _recovery(result, config, views)
    return sorted(out, key=lambda v: (v.t, v.node, v.checker, v.description))


def _rate(result: RunResult, node: str) -> float:
    return 1.0 + result.drift.get(node, 0.0)


def _both_open(result: RunResult, a: str, b: str, start: float, end: float) -> bool:
    tl = result.timeline
    return tl.link_open(a, b, start, end) and tl.link_open(b, a, start, end)


def _accuracy(result: RunResult, cfg: hb.HeartbeatConfig, views: _Views) -> list[Violation]:
    bound = result.latency_bound
    if bound is None or not 2 * bound < cfg.dead_after - cfg.interval:
        return []
    tl = result.timeline
    out = []
    for (observer, peer), events in views.events.items():
        for e in events:
            if e.kind != "peer.dead":
                continue
            start = max(0.0, e.t - cfg.dead_after / _rate(result, observer) - EPSILON)
            if (
                tl.lossless(start, e.t)
                and tl.node_healthy(peer, start, e.t)
                and tl.node_healthy(observer, start, e.t)
                and _both_open(result, observer, peer, start, e.t)
            ):
                out.append(
                    Violation(
                        "heartbeat.accuracy",
                        e.t,
                        observer,
                        f"declared {peer} dead although it was up and reachable both ways "
                        f"without loss since t={start:.6f}",
                    )
                )
    return out


def _completeness(result: RunResult, cfg: hb.HeartbeatConfig, views: _Views) -> list[Violation]:
    tl = result.timeline
    out = []
    for crashed_at, peer, restart_at in outages(result.faults):
        for observer in _others(result.nodes, peer):
            deadline = crashed_at + (cfg.dead_after + cfg.interval) / _rate(result, observer) + EPSILON
            if deadline > result.sim_seconds or (restart_at is not None and restart_at <= deadline):
                continue
            if not tl.node_healthy(observer, crashed_at, deadline):
                continue
            state = views.state(observer, peer, deadline)
            if state != hb.DEAD:
                out.append(
                    Violation(
                        "heartbeat.completeness",
                        deadline,
                        observer,
                        f"{peer} crashed at t={crashed_at:.6f} but is still {state} here at the "
                        f"deadline t={deadline:.6f}",
                    )
                )
    return out


def _recovery(result: RunResult, cfg: hb.HeartbeatConfig, views: _Views) -> list[Violation]:
    bound = result.latency_bound
    if bound is None:
        return []
    tl = result.timeline
    out = []
    for _, peer, restart_at in outages(result.faults):
        if restart_at is None:
            continue
        for observer in _others(result.nodes, peer):
            deadline = restart_at + cfg.interval / _rate(result, observer) + 2 * bound + EPSILON
            if deadline > result.sim_seconds:
                continue
            if not (
                tl.lossless(restart_at, deadline)
                and tl.node_healthy(peer, restart_at, deadline)
                and tl.node_healthy(observer, restart_at, deadline)
                and _both_open(result, observer, peer, restart_at, deadline)
            ):
                continue
            if views.state(observer, peer, deadline) == hb.DEAD:
                out.append(
                    Violation(
                        "heartbeat.recovery",
                        deadline,
                        observer,
                        f"{peer} restarted at t={restart_at:.6f} and is reachable, but is still "
                        f"DEAD here at t={deadline:.6f}",
                    )
                )
    return out


def _others(nodes: Sequence[str], node: str) -> list[str]:
    return [n for n in nodes if n != node]


def detections(result: RunResult, actor: str = hb.NAME) -> dict[str, int]:
    """How many ``peer.dead`` / ``peer.suspect`` / ``peer.alive`` events the run emitted."""
    counts = dict.fromkeys(_KINDS, 0)
    for e in result.emitted:
        if e.actor == actor and e.kind in counts:
            counts[e.kind] += 1
    return counts
