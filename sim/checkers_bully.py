"""Checkers of the Bully election (``actors/elections/bully.py``), read from the emitted events.

Each node's view is rebuilt from its ``leader.changed`` events (a new incarnation starts with
no leader); ``leader.elected`` marks a node becoming coordinator; ``member.left`` a graceful
leave. The promises, with ``E = election_timeout``, ``I = interval``, ``A = answer_timeout``,
``C = coordinator_timeout``, ``L`` the largest one-way delay (latency bound plus reordering)
and ``f = 1 / (1 + min drift)`` (how long a local second can last in true time):

- ``bully.rank`` (always): a node only ever names itself or a node that outranks it.
- ``bully.epochs`` (always, across restarts): the epochs in a node's views never decrease, and
  a node that becomes coordinator takes an epoch larger than every epoch it saw before (so a
  restarted node never reuses one).
- ``bully.convergence`` / ``bully.one_coordinator`` / ``bully.stable``: take each quiet window
  between two consecutive faults (or a fault and the end) in which the network loses nothing and
  every obstruction is symmetric (a partition, or blocks both ways). The live nodes (up, not
  paused, not left) split into components that can talk both ways; each must be a clique
  (every pair talks directly: Bully has no relaying, so when ``a`` and ``b`` are cut from each
  other but both reach ``c``, ``a`` never hears ``b`` and no promise is made). From ``T + B`` after the
  window's start ``T`` until the window ends, every live node names the highest-ranked node of
  its component, exactly one node of each component names itself, and no view changes, where

      B = f * (E + 2I + C + 2A) + 8L

  The highest-ranked node ``H`` of a component is coordinator by ``f(E + I + C + A) + L``:
  it notices a dead leader within ``L + f(E + I)`` and wins its election after ``fA`` (no higher
  node answers), or it was waiting (``fC``) or joining (``fA``) first. One heartbeat later
  (``fI + L``) everybody has heard it; a node holding a newer epoch answers ``Stale`` and ``H``
  re-announces (``2L``); a node still trusting a dead higher leader elects within the same
  ``L + f(E + I)`` and is answered by ``H`` (``2L``). The rest is margin. Checked only when ``L``
  is bounded and a heartbeat always beats the follower timeout:
  ``(f I + L)(1 + max drift) < E``. Unbounded latency or a lossy network makes no promise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from actors.elections import NAME
from actors.elections.bully import BullyConfig

from .faults import Snapshot
from .result import Emitted, RunResult, Violation

EPSILON = 1e-6
_KINDS = ("leader.changed", "leader.elected", "member.left")


def convergence_bound(config: BullyConfig, result: RunResult) -> float | None:
    """``B`` of the module docstring, or None when the run makes no convergence promise."""
    bound = result.latency_bound
    if bound is None:
        return None
    drifts = list(result.drift.values()) or [0.0]
    slow = 1.0 / (1.0 + min(drifts))
    if not (config.interval * slow + bound) * (1.0 + max(drifts)) < config.election_timeout:
        return None
    c = config
    return slow * (c.election_timeout + 2 * c.interval + c.coordinator_timeout + 2 * c.answer_timeout) + (
        8 * bound
    )


class _History:
    """Per-node events of the election actor and incarnations over time."""

    def __init__(self, result: RunResult, actor: str):
        self.events: dict[str, list[Emitted]] = {n: [] for n in result.nodes}
        for e in result.emitted:
            if e.actor == actor and e.kind in _KINDS:
                self.events.setdefault(e.node, []).append(e)
        self.starts: dict[str, list[float]] = {n: [0.0] for n in result.nodes}
        prev: frozenset[str] = frozenset()
        for snap in result.timeline.snapshots:
            for n in result.nodes:
                if n in prev and n not in snap.down:
                    self.starts[n].append(snap.at)
            prev = snap.down

    def incarnation(self, node: str, t: float) -> int:
        return sum(1 for at in self.starts[node] if at <= t)

    def view(self, node: str, t: float) -> tuple[str | None, bool]:
        """(leader named at ``t``, left) in the incarnation current at ``t``."""
        inc = self.incarnation(node, t)
        leader: str | None = None
        left = False
        for e in self.events.get(node, ()):
            if e.t > t:
                break
            if e.incarnation != inc:
                continue
            if e.kind == "leader.changed":
                leader = e.fields.get("leader")
            elif e.kind == "member.left":
                left = True
        return leader, left


def check_bully(result: RunResult, config: BullyConfig, actor: str = NAME) -> list[Violation]:
    """Check the Bully election's promises (see the module docstring) in ``result``."""
    history = _History(result, actor)
    out: list[Violation] = []
    out += _rank(result, config, history)
    out += _epochs(result, history)
    out += _convergence(result, config, history)
    return sorted(out, key=lambda v: (v.t, v.node, v.checker, v.description))


def _rank(result: RunResult, cfg: BullyConfig, h: _History) -> list[Violation]:
    out = []
    for node, events in h.events.items():
        for e in events:
            leader = e.fields.get("leader")
            named = e.kind == "leader.changed" and leader is not None and leader != node
            if named and not cfg.rank(str(leader)) > cfg.rank(node):
                out.append(Violation("bully.rank", e.t, node, f"names {leader}, which it outranks"))
    return out


def _epochs(result: RunResult, h: _History) -> list[Violation]:
    out = []
    for node, events in h.events.items():
        seen = 0
        for e in events:
            epoch = int(e.fields.get("epoch", 0)) if e.kind != "member.left" else seen
            if e.kind == "leader.elected" and epoch <= seen:
                out.append(
                    Violation(
                        "bully.epochs", e.t, node, f"became coordinator with epoch {epoch}, seen {seen}"
                    )
                )
            elif e.kind == "leader.changed" and epoch < seen:
                out.append(
                    Violation("bully.epochs", e.t, node, f"view epoch went back from {seen} to {epoch}")
                )
            seen = max(seen, epoch)
    return out


def _windows(result: RunResult) -> list[tuple[float, float, Snapshot]]:
    """(start, end, state) of every stretch without faults."""
    snaps = result.timeline.snapshots
    out = []
    for i, s in enumerate(snaps):
        end = snaps[i + 1].at if i + 1 < len(snaps) else result.sim_seconds
        if end > s.at:
            out.append((s.at, end, s))
    return out


def _components(nodes: Sequence[str], obstructed: frozenset[tuple[str, str]]) -> list[list[str]]:
    left = list(nodes)
    comps: list[list[str]] = []
    while left:
        comp, frontier = [left.pop(0)], 0
        while frontier < len(comp):
            a = comp[frontier]
            frontier += 1
            for b in list(left):
                if (a, b) not in obstructed:
                    comp.append(b)
                    left.remove(b)
        comps.append(comp)
    return comps


def _convergence(result: RunResult, cfg: BullyConfig, h: _History) -> list[Violation]:
    bound = convergence_bound(cfg, result)
    if bound is None:
        return []
    out: list[Violation] = []
    for start, end, snap in _windows(result):
        at = start + bound
        if at >= end - EPSILON or snap.lossy:
            continue
        if any((b, a) not in snap.obstructed for a, b in snap.obstructed):
            continue  # one-way obstructions make no promise
        up = [n for n in result.nodes if n not in snap.down and n not in snap.paused]
        live = [n for n in up if not h.view(n, at)[1]]
        comps = _components(live, snap.obstructed)
        if any((a, b) in snap.obstructed for comp in comps for a in comp for b in comp):
            continue  # a non-transitive cut (a-b blocked, both reach c): no promise, see above
        for comp in comps:
            out += _check_component(cfg, h, comp, at, end)
    return out


def _check_component(
    cfg: BullyConfig, h: _History, comp: Sequence[str], at: float, end: float
) -> list[Violation]:
    out = []
    expected = max(comp, key=cfg.rank)
    views = {n: h.view(n, at)[0] for n in comp}
    for n, leader in views.items():
        if leader != expected:
            out.append(
                Violation(
                    "bully.convergence",
                    at,
                    n,
                    f"names {leader} but the highest-ranked live reachable node is {expected} "
                    f"(component {','.join(sorted(comp))})",
                )
            )
    coordinators = sorted(n for n, leader in views.items() if leader == n)
    if len(coordinators) != 1:
        out.append(
            Violation(
                "bully.one_coordinator",
                at,
                expected,
                f"{len(coordinators)} coordinators ({','.join(coordinators) or 'none'}) in component "
                f"{','.join(sorted(comp))}",
            )
        )
    for n in comp:
        for e in _changes(h.events.get(n, ()), at, end):
            out.append(
                Violation(
                    "bully.stable",
                    e.t,
                    n,
                    f"view changed to {e.fields.get('leader')} after convergence (t={at:.6f})",
                )
            )
    return out


def _changes(events: Iterable[Emitted], after: float, before: float) -> list[Emitted]:
    return [e for e in events if e.kind == "leader.changed" and after + EPSILON < e.t < before - EPSILON]


def leader_changes(result: RunResult, actor: str = NAME) -> int:
    """How many ``leader.changed`` events the run emitted (for summaries)."""
    return sum(1 for e in result.emitted if e.actor == actor and e.kind == "leader.changed")
