"""Raft checkers: Figure 3's safety properties and liveness, tested against a run's events.

They read the events the Raft actor emits (actor ``election``):

- ``leader.elected`` (epoch = term, last_index, last_term), ``leader.changed`` (leader, epoch);
- ``raft.commit`` (term, first, entries = [[entry term, command digest], ...]) by a leader each
  time its commit index advances;
- ``raft.apply`` (index, term, what, cmd) for every entry a node applies, in order;
- ``raft.ack`` (index, term, cmd) when a leader tells a client its command committed;
- ``raft.restore`` / ``raft.install`` (index, term): the machine came from a snapshot.

Checkers (Raft §5, Figure 3):

- ``raft.election_safety``: at most one node becomes leader in a term;
- ``raft.log_matching`` (§5.3): in the durable logs every node holds at the end of the run
  (crashed nodes included), if two logs have an entry with the same index and term, they hold
  the same entries up to that index;
- ``raft.state_machine_safety``: no two nodes (or two incarnations) apply different entries
  at the same index;
- ``raft.leader_completeness``: no index is ever committed with two different entries, and a
  leader elected in term E holds (by its last index and term) every entry committed in a term
  before E;
- ``raft.durability``: a command acknowledged to a client at index i is what every node
  applies at i, and every node up at the end whose applied index reached i applied it in its
  last incarnation (or holds it in a snapshot): crashes that keep synced state lose nothing;
- ``raft.liveness``: ``settle`` seconds after the last fault, when the network is whole again,
  every live member names the same live leader, and (with proposals) commands still commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from actors.elections import NAME

from .result import Emitted, RunResult, Violation


def check_raft(
    result: RunResult,
    members: Sequence[str] | None = None,
    settle: float = 3.0,
    proposals: bool = True,
    actor: str = NAME,
) -> list[Violation]:
    """Run every Raft checker over ``result`` (see the module docstring)."""
    events = [e for e in result.emitted if e.actor == actor]
    out: list[Violation] = []
    out += election_safety(events)
    out += log_matching(result, actor)
    out += state_machine_safety(events)
    out += leader_completeness(events)
    out += durability(result, events)
    out += liveness(result, events, tuple(members or result.nodes), settle, proposals)
    return sorted(out, key=lambda v: (v.t, v.node, v.checker, v.description))


def durable_log(state: dict[str, Any]) -> dict[int, Any]:
    """Index -> ``[term, kind, data]`` of the entries a Raft actor's durable state holds."""
    return {int(k[4:]): v for k, v in state.items() if k.startswith("log/")}


def log_matching(result: RunResult, actor: str = NAME) -> list[Violation]:
    """Raft §5.3, Log Matching, over the durable logs at the end of the run."""
    logs = {n: durable_log(result.durable.get(n, {}).get(actor, {})) for n in result.nodes}
    out: list[Violation] = []
    names = sorted(logs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            la, lb = logs[a], logs[b]
            both = sorted(set(la) & set(lb))
            # the highest index at which both hold an entry of the same term
            top = next((k for k in reversed(both) if la[k][0] == lb[k][0]), None)
            if top is None:
                continue
            for k in both:
                if k > top:
                    break
                if la[k] != lb[k]:
                    out.append(
                        Violation(
                            "raft.log_matching",
                            result.sim_seconds,
                            a,
                            f"{a} and {b} agree on the term of index {top} but differ at index {k}: "
                            f"term {la[k][0]} vs {lb[k][0]}",
                        )
                    )
                    break
    return out


def election_safety(events: Sequence[Emitted]) -> list[Violation]:
    """Raft §5.2: at most one leader per term."""
    leaders: dict[int, str] = {}
    out = []
    for e in events:
        if e.kind != "leader.elected":
            continue
        term = int(e.fields["epoch"])
        first = leaders.setdefault(term, e.node)
        if first != e.node:
            out.append(
                Violation(
                    "raft.election_safety", e.t, e.node, f"became leader of term {term}, as {first} did"
                )
            )
    return out


def state_machine_safety(events: Sequence[Emitted]) -> list[Violation]:
    """Raft §5.4.3: every node applies the same entry at a given index."""
    seen: dict[int, tuple[int, Any, str]] = {}
    bad: set[int] = set()
    out = []
    for e in events:
        if e.kind != "raft.apply":
            continue
        index = int(e.fields["index"])
        mine = (int(e.fields["term"]), e.fields["cmd"], e.node)
        first = seen.setdefault(index, mine)
        if first[:2] != mine[:2] and index not in bad:
            bad.add(index)
            out.append(
                Violation(
                    "raft.state_machine_safety",
                    e.t,
                    e.node,
                    f"applied term {mine[0]} {mine[1]!r} at index {index}, "
                    f"but {first[2]} applied term {first[0]} {first[1]!r}",
                )
            )
    return out


def leader_completeness(events: Sequence[Emitted]) -> list[Violation]:
    """Raft §5.4: committed entries never change and are in every later leader's log."""
    committed: dict[int, tuple[int, Any, str, int]] = {}  # index -> (entry term, cmd, by, term)
    newest: dict[int, tuple[int, int]] = {}  # commit term -> (highest index, its entry term)
    out = []
    for e in events:
        if e.kind != "raft.commit":
            continue
        term, first = int(e.fields["term"]), int(e.fields["first"])
        for k, (entry_term, cmd) in enumerate(e.fields["entries"]):
            index = first + k
            prior = committed.setdefault(index, (int(entry_term), cmd, e.node, term))
            if prior[:2] != (entry_term, cmd):
                out.append(
                    Violation(
                        "raft.leader_completeness",
                        e.t,
                        e.node,
                        f"committed term {entry_term} {cmd!r} at index {index} in term {term}, but "
                        f"{prior[2]} had committed term {prior[0]} {prior[1]!r} there in term {prior[3]}",
                    )
                )
            if index > newest.get(term, (0, 0))[0]:
                newest[term] = (index, int(entry_term))
    for e in events:
        if e.kind != "leader.elected":
            continue
        epoch = int(e.fields["epoch"])
        last = (int(e.fields["last_term"]), int(e.fields["last_index"]))
        earlier = [v for t, v in newest.items() if t < epoch]
        if not earlier:
            continue
        index, entry_term = max(earlier)
        if last < (entry_term, index):
            out.append(
                Violation(
                    "raft.leader_completeness",
                    e.t,
                    e.node,
                    f"elected in term {epoch} with log (last term {last[0]}, index {last[1]}) "
                    f"missing the entry of term {entry_term} committed at index {index}",
                )
            )
    return out


def _incarnations(result: RunResult) -> dict[str, list[tuple[float, int]]]:
    """Each node's incarnation over time (+1 at every down -> up transition; a node down in
    the first snapshot is a late node, at incarnation 0 until it starts)."""
    snaps = result.timeline.snapshots
    first_down = snaps[0].down if snaps else frozenset()
    starts = {n: [(0.0, 0 if n in first_down else 1)] for n in result.nodes}
    prev: frozenset[str] = first_down
    for snap in result.timeline.snapshots:
        for n in result.nodes:
            if n in prev and n not in snap.down:
                starts[n].append((snap.at, starts[n][-1][1] + 1))
        prev = snap.down
    return starts


def durability(result: RunResult, events: Sequence[Emitted]) -> list[Violation]:
    """No command acknowledged to a client is lost or replaced, whatever crashed."""
    acks: dict[int, tuple[Any, float, str]] = {}
    for e in events:
        if e.kind == "raft.ack":
            acks.setdefault(int(e.fields["index"]), (e.fields["cmd"], e.t, e.node))
    if not acks:
        return []
    out = []
    final = result.timeline.snapshots[-1] if result.timeline.snapshots else None
    last_inc = {n: inc[-1][1] for n, inc in _incarnations(result).items()}
    applied: dict[str, dict[int, Any]] = defaultdict(dict)
    reported: set[tuple[str, int]] = set()
    snap_cover: dict[str, int] = defaultdict(int)
    for e in events:
        if e.kind == "raft.apply":
            index = int(e.fields["index"])
            ack = acks.get(index)
            if ack is not None and e.fields["cmd"] != ack[0] and (e.node, index) not in reported:
                reported.add((e.node, index))
                out.append(
                    Violation(
                        "raft.durability",
                        e.t,
                        e.node,
                        f"applied {e.fields['cmd']!r} at index {index}, where {ack[2]} had "
                        f"acknowledged {ack[0]!r} to a client at t={ack[1]:.6f}",
                    )
                )
            if e.incarnation == last_inc.get(e.node):
                applied[e.node][index] = e.fields["cmd"]
        elif e.kind in ("raft.restore", "raft.install") and e.incarnation == last_inc.get(e.node):
            snap_cover[e.node] = max(snap_cover[e.node], int(e.fields["index"]))
    for node in result.nodes:
        if final is not None and node in final.down:
            continue
        mine = applied.get(node, {})
        reached = max([snap_cover[node], *mine])
        for index, (cmd, t, by) in sorted(acks.items()):
            if index > reached or index <= snap_cover[node] or (node, index) in reported:
                continue
            if mine.get(index) != cmd:
                out.append(
                    Violation(
                        "raft.durability",
                        result.sim_seconds,
                        node,
                        f"applied up to {reached} but not {cmd!r} at index {index}, "
                        f"acknowledged by {by} at t={t:.6f}",
                    )
                )
    return out


def _view(events: Sequence[Emitted], node: str, incarnation: int, t: float) -> str | None:
    leader = None
    for e in events:
        if e.t > t:
            break
        if e.node == node and e.kind == "leader.changed" and e.incarnation == incarnation:
            leader = e.fields["leader"]
    return leader


def liveness(
    result: RunResult, events: Sequence[Emitted], members: tuple[str, ...], settle: float, proposals: bool
) -> list[Violation]:
    """After the last fault plus ``settle``, one live leader named by every live member, and
    (with proposals) new commands acknowledged."""
    last_fault = max((f.at for f in result.faults), default=0.0)
    at = last_fault + settle
    if at + (1.0 if proposals else 0.0) > result.sim_seconds or not result.timeline.snapshots:
        return []
    final = result.timeline.snapshots[-1]
    if final.obstructed:
        return []  # the network never healed: no promise
    live = [n for n in members if n not in final.down and n not in final.paused]
    if not live:
        return []
    incs = _incarnations(result)
    out = []
    views = {n: _view(events, n, incs[n][-1][1], at) for n in live}
    named = {v for v in views.values()}
    if len(named) != 1 or None in named or next(iter(named)) not in live:
        detail = ", ".join(f"{n}->{v}" for n, v in sorted(views.items()))
        out.append(
            Violation(
                "raft.liveness",
                at,
                live[0],
                f"{settle:g}s after the last fault the live members do not agree on a live leader: {detail}",
            )
        )
    if proposals and not any(e.kind == "raft.ack" and e.t >= at for e in events):
        out.append(
            Violation("raft.liveness", result.sim_seconds, live[0], f"no command committed after t={at:.6f}")
        )
    return out
