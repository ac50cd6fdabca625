"""Checkers for the gossip election (``actors/elections/gossip.py``), and its statistics.

They rebuild each node's views from the events it emitted (``leader.changed``,
``member.{alive,suspect,dead,left}``), per life of the node (a restart starts a new life with
an empty view), and test three promises. With ``n`` the number of nodes, ``M`` the awareness
cap, ``I`` the interval, all bounds in the node's local seconds (divided by ``1 + drift``):

- ``gossip.completeness``: a member crashed at ``T`` that an observer held alive or suspect
  is dead (or left) in that observer's view by ``T + detection_bound(n) + spread(n)``, if the
  observer was up and unpaused throughout. ``detection_bound = 2n*I*M + suspicion_max(n)``:
  the observer probes it itself within ``2n`` of its (stretched) periods, whatever the network
  does, and no suspicion outlives ``suspicion_max``; ``spread = retransmit_limit(n)*I*M`` is
  how long a refutation sent just before the crash can still arrive and restart the cycle.
- ``gossip.accuracy``: a member declared dead while it was up, unpaused and with every link to
  and from it open over the suspicion window (``suspicion_max + spread + I*M``) is a false
  positive. False positives are counted in ``result.stats`` (``gossip.false_positives``:
  declarations; ``gossip.false_positive_members``: distinct accusations (member,
  incarnation)); one is a violation only if the run had no loss, partition, block, clog or
  pause at all before it and round trips fit the probe timeout (``2L < probe_timeout``).
- ``gossip.agreement``: once the last fault is ``convergence_bound(n)`` old (and the network
  ends lossless, unpartitioned, with nobody paused), every live node (up, not left) names the
  leader the rule picks over the live nodes, all with the same epoch, and no view changes
  again until the end. ``convergence_bound = detection_bound + election_timeout (one
  reconnect round) + push_pull period + 2 * spread``: a crash to detect, both sides of a
  healed partition to reconnect, refutations and the epoch to spread.
"""

from __future__ import annotations

from collections.abc import Sequence

from actors.elections import NAME
from actors.elections.gossip import GossipConfig

from .faults import crashes
from .result import Emitted, RunResult, Violation

EPSILON = 1e-6
_STATE = {"member.alive": "alive", "member.suspect": "suspect", "member.dead": "dead", "member.left": "left"}


def spread(config: GossipConfig, n: int) -> float:
    """Local seconds a rumour keeps being retransmitted, at the slowest (stretched) period."""
    return config.retransmit_limit(n) * config.interval * config.awareness_max_multiplier


def completeness_bound(config: GossipConfig, n: int) -> float:
    """Local seconds from a crash until every live observer holds the member dead."""
    return config.detection_bound(n) + spread(config, n) + config.interval


def convergence_bound(config: GossipConfig, n: int) -> float:
    """Local seconds after the last fault by which every live node agrees on the leader."""
    pp = config.push_pull_every(n) if config.push_pull_interval > 0 else 0.0
    return config.detection_bound(n) + config.election_timeout + pp + 2 * spread(config, n)


def leader_by_rule(config: GossipConfig, members: Sequence[str]) -> str | None:
    """The leader ``config.leader_rule`` picks among ``members``."""
    if not members:
        return None
    if config.leader_rule == "lowest_id":
        return min(members)
    return max(members, key=config.rank)


class GossipViews:
    """Each node's leader and member views over time, rebuilt from a run's events."""

    def __init__(self, result: RunResult, actor: str = NAME):
        self.result = result
        self.events: dict[str, list[Emitted]] = {n: [] for n in result.nodes}
        for e in result.emitted:
            if e.actor == actor and e.node in self.events:
                self.events[e.node].append(e)
        # Lives: (start time, simulator incarnation), one per down -> up transition.
        self.lives: dict[str, list[tuple[float, int]]] = {n: [] for n in result.nodes}
        for n in result.nodes:
            inc, down = 0, True
            for snap in result.timeline.snapshots:
                if down and n not in snap.down:
                    inc += 1
                    self.lives[n].append((snap.at, inc))
                down = n in snap.down

    def life(self, node: str, t: float) -> tuple[float, int]:
        """(start time, incarnation) of ``node``'s life in force at ``t`` ((-1, 0): none)."""
        out = (-1.0, 0)
        for start in self.lives[node]:
            if start[0] <= t:
                out = start
        return out

    def _current(self, node: str, t: float) -> list[Emitted]:
        inc = self.life(node, t)[1]
        return [e for e in self.events[node] if e.t <= t and e.incarnation == inc]

    def leader(self, node: str, t: float) -> tuple[str | None, int] | None:
        """(leader, epoch) in ``node``'s view at ``t``; None if it named none in this life."""
        out = None
        for e in self._current(node, t):
            if e.kind == "leader.changed":
                out = (e.fields.get("leader"), int(e.fields.get("epoch", 0)))
        return out

    def member(self, observer: str, member: str, t: float) -> str | None:
        """``member``'s state in ``observer``'s view at ``t`` (None: never heard of it)."""
        out = None
        for e in self._current(observer, t):
            if e.kind in _STATE and e.fields.get("member") == member:
                out = _STATE[e.kind]
        return out

    def has_left(self, node: str, t: float) -> bool:
        return self.member(node, node, t) == "left"


def check_gossip(result: RunResult, config: GossipConfig) -> list[Violation]:
    """Check completeness, accuracy and agreement; record false-positive counts in
    ``result.stats``."""
    views = GossipViews(result)
    out = _completeness(result, config, views)
    fps, members, strict = _false_positives(result, config, views)
    result.stats["gossip.false_positives"] = fps
    result.stats["gossip.false_positive_members"] = members
    out += strict
    out += _agreement(result, config, views)
    return sorted(out, key=lambda v: (v.t, v.node, v.checker, v.description))


def _rate(result: RunResult, node: str) -> float:
    return 1.0 + result.drift.get(node, 0.0)


def _completeness(result: RunResult, cfg: GossipConfig, views: GossipViews) -> list[Violation]:
    tl = result.timeline
    n = len(result.nodes)
    out = []
    for crashed_at, peer, back in crashes(result.faults):
        for obs in result.nodes:
            if obs == peer:
                continue
            deadline = crashed_at + completeness_bound(cfg, n) / _rate(result, obs) + EPSILON
            if deadline > result.sim_seconds or (back is not None and back <= deadline):
                continue
            if not tl.node_healthy(obs, crashed_at, deadline) or views.has_left(obs, deadline):
                continue
            if views.member(obs, peer, crashed_at) not in ("alive", "suspect"):
                continue
            state = views.member(obs, peer, deadline)
            if state not in ("dead", "left"):
                out.append(
                    Violation(
                        "gossip.completeness",
                        deadline,
                        obs,
                        f"{peer} crashed at t={crashed_at:.6f} but is still {state} here at the "
                        f"deadline t={deadline:.6f}",
                    )
                )
    return out


def _reachable(result: RunResult, node: str, start: float, end: float) -> bool:
    tl = result.timeline
    if not tl.node_healthy(node, start, end):
        return False
    return all(node not in pair for s in tl.during(start, end) for pair in s.obstructed)


def _pristine_until(result: RunResult, t: float) -> bool:
    """No loss, obstruction or pause at any time up to ``t``."""
    return not any(s.lossy or s.obstructed or s.paused for s in result.timeline.snapshots if s.at <= t)


def _false_positives(
    result: RunResult, cfg: GossipConfig, views: GossipViews
) -> tuple[int, int, list[Violation]]:
    n = len(result.nodes)
    window = cfg.suspicion_max(n) + spread(cfg, n) + cfg.interval * cfg.awareness_max_multiplier
    bound = result.latency_bound
    strict_ok = bound is not None and 2 * bound < cfg.probe_timeout
    count = 0
    accusations: set[tuple[str, int]] = set()
    out = []
    for obs, events in views.events.items():
        for e in events:
            if e.kind != "member.dead":
                continue
            peer = str(e.fields.get("member"))
            start = max(0.0, e.t - window / _rate(result, obs))
            if views.life(peer, start) != views.life(peer, e.t) or views.has_left(peer, e.t):
                continue  # it restarted or left meanwhile: an old life did end
            if not _reachable(result, peer, start, e.t):
                continue
            count += 1
            accusations.add((peer, int(e.fields.get("incarnation", 0))))
            if strict_ok and _pristine_until(result, e.t):
                out.append(
                    Violation(
                        "gossip.accuracy",
                        e.t,
                        obs,
                        f"declared {peer} dead although it was up and reachable, with no loss, "
                        f"partition or pause in the run so far",
                    )
                )
    return count, len(accusations), out


def false_positives(result: RunResult, config: GossipConfig) -> tuple[int, int]:
    """(false dead declarations, distinct false accusations) in ``result``."""
    fps, members, _ = _false_positives(result, config, GossipViews(result))
    return fps, members


def agreement_deadline(result: RunResult, config: GossipConfig) -> float | None:
    """True time by which agreement is due, or None if the run ends disrupted or too early."""
    snaps = result.timeline.snapshots
    if not snaps:
        return None
    final = snaps[-1]
    if final.lossy or final.obstructed or final.paused:
        return None
    last = max([0.0] + [f.at for f in result.faults])
    slowest = min(_rate(result, n) for n in result.nodes)
    deadline = last + convergence_bound(config, len(result.nodes)) / slowest + EPSILON
    return deadline if deadline <= result.sim_seconds else None


def _agreement(result: RunResult, cfg: GossipConfig, views: GossipViews) -> list[Violation]:
    deadline = agreement_deadline(result, cfg)
    if deadline is None:
        return []
    end = result.sim_seconds
    final = result.timeline.snapshots[-1]
    live = [n for n in result.nodes if n not in final.down and not views.has_left(n, end)]
    expected = leader_by_rule(cfg, live)
    out = []
    epochs: dict[int, list[str]] = {}
    for node in live:
        view = views.leader(node, deadline)
        if view is None or view[0] != expected:
            named = "no leader" if view is None else f"leader {view[0]}"
            out.append(
                Violation("gossip.agreement", deadline, node, f"names {named}; the rule picks {expected}")
            )
        elif view is not None:
            epochs.setdefault(view[1], []).append(node)
        later = [e for e in views._current(node, end) if e.kind == "leader.changed" and e.t > deadline]
        if later:
            out.append(
                Violation(
                    "gossip.agreement",
                    later[0].t,
                    node,
                    f"changed its leader view after convergence (to {later[0].fields.get('leader')})",
                )
            )
    if len(epochs) > 1:
        split = "; ".join(f"epoch {ep}: {','.join(ns)}" for ep, ns in sorted(epochs.items()))
        out.append(Violation("gossip.agreement", deadline, "*", f"nodes disagree on the epoch ({split})"))
    return out
