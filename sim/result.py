"""Plain-data results of a run, for the CLI, the checkers and notebooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .faults import Fault, Timeline
from .trace import Trace


@dataclass(frozen=True, slots=True)
class Emitted:
    """An ``Emit`` effect: ``kind`` with ``fields``, by ``actor`` on ``node`` at true time ``t``."""

    t: float
    node: str
    actor: str
    incarnation: int
    kind: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Violation:
    """A broken promise found by a checker; ``description`` is one line."""

    checker: str
    t: float
    node: str
    description: str

    def __str__(self) -> str:
        return f"[{self.checker}] t={self.t:.6f} {self.node}: {self.description}"


@dataclass(slots=True)
class RunResult:
    """What a run did.

    Attributes:
        name: scenario name (or ``"simulation"``).
        seed: the run seed.
        nodes: node ids.
        late: the nodes that were not started at t=0 (see ``Simulation(late=...)``).
        sim_seconds: simulated (true) seconds run.
        wall_seconds: real seconds the run took (measured outside the run).
        events: number of trace records.
        trace_sha256: identifies the run (see :mod:`sim.trace`).
        emitted: every ``Emit`` effect, in order.
        faults: the faults applied, in order.
        stats: trace records per kind.
        violations: what the checkers found (filled by :func:`sim.run_scenario`).
        timeline: node and link health over time (for checkers).
        drift: clock drift per node.
        latency_bound: the largest possible one-way delay including reordering, or None.
        trace: the full trace (``trace.iter_canonical()`` for the records).
        durable: what every actor had synced when the run ended, by node then actor (crashed
            nodes included): checkers compare durable logs with it.
    """

    name: str
    seed: int
    nodes: tuple[str, ...]
    sim_seconds: float
    events: int
    trace_sha256: str
    emitted: list[Emitted]
    faults: list[Fault]
    stats: dict[str, int]
    timeline: Timeline
    drift: dict[str, float]
    latency_bound: float | None
    trace: Trace
    wall_seconds: float = 0.0
    late: tuple[str, ...] = ()
    violations: list[Violation] = field(default_factory=list)
    deliveries: int = 0
    durable: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def summary_json(self, scenario: str = "") -> dict[str, Any]:
        """The one-line JSON summary the CLI prints last."""
        return {
            "scenario": scenario or self.name,
            "seed": self.seed,
            "events": self.events,
            "deliveries": self.deliveries,
            "sim_seconds": self.sim_seconds,
            "wall_seconds": round(self.wall_seconds, 6),
            "trace_sha256": self.trace_sha256,
            "violations": len(self.violations),
        }
