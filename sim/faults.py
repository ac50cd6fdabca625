"""Faults (the nemesis) and the timeline of what was broken when.

A :class:`Fault` is plain data: a true time, an action and the action's arguments. The
simulator applies it at its time (faults at the same time apply in the order given) and, after
each one, appends a :class:`Snapshot` to the run's :class:`Timeline`: which nodes are down
(crashed, stopped, or late and not yet started) or paused, which directed links are obstructed
(partitioned, blocked or clogged) and whether the network loses messages. Checkers ask the
timeline whether a node or link was healthy over a window instead of re-deriving it from the
fault list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

ACTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "partition": (("groups",), ()),
    "block": (("from", "to"), ()),
    "unblock": (("from", "to"), ()),
    "heal": ((), ()),
    "clog": (("from", "to"), ()),
    "unclog": ((), ("from", "to")),
    "crash": (("node",), ()),
    "restart": (("node",), ()),
    "start": (("node",), ()),
    "stop": (("node",), ()),
    "pause": (("node",), ()),
    "resume": (("node",), ()),
    "clock_jump": (("node", "by"), ()),
    "set_loss": (("value",), ()),
    "set_duplicate": (("value",), ()),
    "set_reorder": (("value",), ()),
}
"""Action -> (required argument names, optional argument names), as scenario files spell them."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault at true time ``at``. Only the fields the action uses are set.

    Actions: ``partition(groups)``, ``block(src, dst)``, ``unblock(src, dst)``, ``heal()``,
    ``clog(src, dst)``, ``unclog([src, dst])``, ``crash(node)``, ``restart(node)``,
    ``start(node)`` (a restart, for a late node that never ran), ``stop(node)`` (graceful:
    ``on_stop`` runs and its messages go out, then the node is down as after a crash),
    ``pause(node)``, ``resume(node)``, ``clock_jump(node, by)``, ``set_loss(value)``,
    ``set_duplicate(value)``, ``set_reorder(value)``.
    """

    at: float
    action: str
    node: str | None = None
    groups: tuple[tuple[str, ...], ...] = ()
    src: str | None = None
    dst: str | None = None
    by: float = 0.0
    value: float = 0.0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}")

    def describe(self) -> str:
        """A short human description such as ``crash(n3)``."""
        a = self.action
        if a == "partition":
            return "partition(" + " | ".join(",".join(g) for g in self.groups) + ")"
        if a in ("block", "unblock", "clog") or (a == "unclog" and self.src is not None):
            return f"{a}({self.src}->{self.dst})"
        if a == "clock_jump":
            return f"clock_jump({self.node}, {self.by:+g}s)"
        if a.startswith("set_"):
            return f"{a}({self.value:g})"
        if self.node is not None:
            return f"{a}({self.node})"
        return f"{a}()"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state of the world from true time ``at`` until the next snapshot."""

    at: float
    down: frozenset[str]
    paused: frozenset[str]
    obstructed: frozenset[tuple[str, str]]
    lossy: bool


@dataclass(slots=True)
class Timeline:
    """Snapshots in time order (several may share a time: faults at the same instant)."""

    snapshots: list[Snapshot] = field(default_factory=list)

    def during(self, start: float, end: float) -> list[Snapshot]:
        """Every snapshot in force at some point of ``[start, end]`` (a snapshot replaced at
        exactly ``start`` is not; one in force for an instant inside the window is)."""
        snaps = self.snapshots
        out: list[Snapshot] = []
        for i, s in enumerate(snaps):
            nxt = snaps[i + 1].at if i + 1 < len(snaps) else float("inf")
            if s.at <= end and nxt > start:
                out.append(s)
        return out

    def node_healthy(self, node: str, start: float, end: float) -> bool:
        """``node`` was up and not paused throughout ``[start, end]``."""
        return all(node not in s.down and node not in s.paused for s in self.during(start, end))

    def link_open(self, src: str, dst: str, start: float, end: float) -> bool:
        """No partition, block or clog on ``src -> dst`` at any point of ``[start, end]``."""
        return all((src, dst) not in s.obstructed for s in self.during(start, end))

    def lossless(self, start: float, end: float) -> bool:
        """No message loss was configured at any point of ``[start, end]``."""
        return not any(s.lossy for s in self.during(start, end))

    def down_at(self, node: str, at: float) -> bool:
        """``node`` is crashed at ``at`` (by the last snapshot not after ``at``)."""
        state = None
        for s in self.snapshots:
            if s.at > at:
                break
            state = s
        return state is not None and node in state.down


def crashes(faults: Sequence[Fault]) -> list[tuple[float, str, float | None]]:
    """(crash time, node, next restart time or None) for every crash in ``faults``."""
    return _outages(faults, ("crash",), ("restart",))


def outages(faults: Sequence[Fault]) -> list[tuple[float, str, float | None]]:
    """(time, node, time it next came back or None) for every crash or graceful stop in
    ``faults``; ``restart`` and ``start`` both bring a node back."""
    return _outages(faults, ("crash", "stop"), ("restart", "start"))


def _outages(
    faults: Sequence[Fault], down: tuple[str, ...], up: tuple[str, ...]
) -> list[tuple[float, str, float | None]]:
    out: list[tuple[float, str, float | None]] = []
    for i, f in enumerate(faults):
        if f.action not in down or f.node is None:
            continue
        back = next((g.at for g in faults[i + 1 :] if g.action in up and g.node == f.node), None)
        out.append((f.at, f.node, back))
    return out
