"""Swarm testing (VOPR-style): many seeds, each with its own random fault mix, all checked.

How it works
------------
For each seed, :func:`swarm_scenario` turns the scenario into a two-phase run. Everything
random comes from one stream, ``random.Random(derive_seed(seed, "swarm"))``, so the mix is a
pure function of (scenario, seed, level, liveness):

1. **safety phase** (``[0, duration)``, the scenario's own duration): a random number of fault
   events at uniform random times. A small model of the world (who is up, paused, crashed,
   stopped or not yet started; which links are blocked or clogged; whether a partition is in
   force) makes every event meaningful: only a crashed node is restarted, only a paused node
   resumed, only a started late node stopped, and at most ``max_down`` of the nodes are crashed
   at once. Events: crash/restart, pause/resume, symmetric partitions and heal, one-way
   block/unblock, clog/unclog, loss/duplication/reordering probabilities, clock jumps and, when
   the scenario has ``late`` nodes, their start and (graceful) stop. Each node may also get a
   random clock offset and drift. The scenario's own faults are replaced; its system, nodes,
   parameters and network (latency) stay.
2. **liveness phase** (``liveness`` seconds more): at the boundary everything is repaired (heal,
   unclog, resume, loss/duplication/reordering set to 0, crashed nodes restarted; stopped or
   never-started late nodes stay down) and no fault follows, so liveness promises come due.

The run seed is the swarm seed, so ``troupe sim run SCENARIO --seed N --swarm`` rebuilds the
same scenario and replays the same trace, byte for byte. :func:`swarm` runs a range of seeds,
in this process or in ``jobs`` worker processes (spawned: no state leaks from the parent); a
seed's outcome does not depend on where it ran.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import multiprocessing
import shlex
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from random import Random

from .clock import ClockConfig, derive_seed
from .faults import Fault
from .result import Violation
from .runner import run_scenario
from .scenario import Scenario, load_scenario
from .systems import SYSTEMS, System, liveness_seconds


@dataclass(frozen=True, slots=True)
class FaultLevel:
    """How hard a swarm run hits the system.

    Attributes:
        events: (fewest, most) fault events in the safety phase.
        max_down: the largest fraction of the nodes crashed at once (at least one node).
        max_loss, max_duplicate, max_reorder: ceilings of the per-message probabilities.
        skew: the chance that a node gets a random clock offset and drift.
        max_offset, max_drift, max_jump: ceilings of clock offset (s), drift (rate) and jump (s).
    """

    events: tuple[int, int]
    max_down: float
    max_loss: float
    max_duplicate: float
    max_reorder: float
    skew: float
    max_offset: float
    max_drift: float
    max_jump: float


FAULT_LEVELS: dict[str, FaultLevel] = {
    "light": FaultLevel((3, 8), 0.34, 0.05, 0.05, 0.1, 0.3, 1.0, 1e-4, 1.0),
    "default": FaultLevel((8, 20), 0.5, 0.2, 0.2, 0.3, 0.5, 10.0, 1e-3, 30.0),
    "heavy": FaultLevel((20, 50), 0.9, 0.5, 0.5, 0.5, 1.0, 100.0, 0.02, 300.0),
}
"""Fault level name -> :class:`FaultLevel`."""

# Action -> weight; an action with no candidate at that moment is left out of the draw.
_WEIGHTS: dict[str, int] = {
    "crash": 3,
    "restart": 3,
    "pause": 2,
    "resume": 2,
    "partition": 2,
    "heal": 2,
    "block": 1,
    "unblock": 1,
    "clog": 1,
    "unclog": 1,
    "set_loss": 2,
    "set_duplicate": 1,
    "set_reorder": 1,
    "clock_jump": 1,
    "start": 3,
    "stop": 2,
}


_UNDO_CHANCE = 0.75
"""The chance that a crash, pause, partition, block, clog or loss is undone after a while."""
_EPISODE = 0.1
"""The mean time until that undo, as a fraction of the safety phase."""


class _Nemesis:
    """The fault generator and its model of the world (lists in node order: no set order)."""

    def __init__(self, sc: Scenario, level: FaultLevel, rng: Random):
        self.sc = sc
        self.level = level
        self.rng = rng
        self.nodes = sc.nodes
        self.state = {n: ("unstarted" if n in sc.late else "up") for n in sc.nodes}
        self.partitioned = False
        self.blocked: list[tuple[str, str]] = []
        self.clogged: list[tuple[str, str]] = []
        net = sc.network
        self.net = {"loss": net.loss, "duplicate": net.duplicate, "reorder": net.reorder}
        self.max_crashed = max(1, int(level.max_down * len(sc.nodes)))
        self.faults: list[Fault] = []
        self.undos: list[tuple[float, int, Fault]] = []

    def _in(self, *states: str) -> list[str]:
        return [n for n in self.nodes if self.state[n] in states]

    def _pair(self) -> tuple[str, str]:
        src, dst = self.rng.sample(list(self.nodes), 2)
        return (src, dst)

    def candidates(self) -> list[str]:
        """The actions that would change something now."""
        ok = {
            "crash": bool(self._in("up", "paused")) and len(self._in("crashed")) < self.max_crashed,
            "restart": bool(self._in("crashed")),
            "pause": bool(self._in("up")),
            "resume": bool(self._in("paused")),
            "partition": len(self.nodes) > 1,
            "heal": self.partitioned or bool(self.blocked),
            "block": len(self.nodes) > 1,
            "unblock": bool(self.blocked),
            "clog": len(self.nodes) > 1,
            "unclog": bool(self.clogged),
            "set_loss": self.level.max_loss > 0,
            "set_duplicate": self.level.max_duplicate > 0,
            "set_reorder": self.level.max_reorder > 0,
            "clock_jump": self.level.max_jump > 0,
            "start": bool(self._in("unstarted", "stopped")),
            "stop": any(self.state[n] in ("up", "paused") for n in self.sc.late),
        }
        return [a for a in _WEIGHTS if ok[a]]

    def step(self, at: float) -> None:
        """Draw one applicable action, record it as a fault at ``at`` and maybe plan its undo."""
        actions = self.candidates()
        if not actions:
            return
        rng = self.rng
        a = rng.choices(actions, weights=[_WEIGHTS[x] for x in actions])[0]
        if a in ("crash", "restart", "pause", "resume", "start", "stop", "clock_jump"):
            pool = {
                "crash": self._in("up", "paused"),
                "restart": self._in("crashed"),
                "pause": self._in("up"),
                "resume": self._in("paused"),
                "start": self._in("unstarted", "stopped"),
                "stop": [n for n in self.sc.late if self.state[n] in ("up", "paused")],
                "clock_jump": list(self.nodes),
            }[a]
            node = rng.choice(pool)
            jump = self.level.max_jump
            by = round(rng.uniform(-jump, jump), 6) if a == "clock_jump" else 0.0
            self._record(Fault(at, a, node=node, by=by))
            undo = {"crash": "restart", "pause": "resume"}.get(a)
            if undo is not None:
                self._later(at, Fault(at, undo, node=node))
        elif a == "partition":
            order = list(self.nodes)
            rng.shuffle(order)
            cuts = sorted(rng.sample(range(1, len(order)), min(len(order) - 1, rng.choice((1, 1, 2)))))
            bounds = [0, *cuts, len(order)]
            groups = tuple(tuple(order[i:j]) for i, j in itertools.pairwise(bounds))
            self._record(Fault(at, a, groups=groups))
            self._later(at, Fault(at, "heal"))
        elif a in ("block", "clog"):
            src, dst = self._pair()
            self._record(Fault(at, a, src=src, dst=dst))
            self._later(at, Fault(at, "un" + a, src=src, dst=dst))
        elif a in ("unblock", "unclog"):
            links = self.blocked if a == "unblock" else self.clogged
            src, dst = links[rng.randrange(len(links))]
            self._record(Fault(at, a, src=src, dst=dst))
        elif a == "heal":
            self._record(Fault(at, a))
        else:  # set_loss, set_duplicate, set_reorder
            name = a[4:]
            ceiling = getattr(self.level, f"max_{name}")
            value = 0.0 if self.net[name] > 0 and rng.random() < 0.5 else rng.uniform(0.0, ceiling)
            self._record(Fault(at, a, value=round(value, 6)))
            if value > 0:
                self._later(at, Fault(at, a, value=0.0))

    def _later(self, at: float, undo: Fault) -> None:
        """Most faults are undone after a while (else a later event or the repair ends them)."""
        if self.rng.random() < _UNDO_CHANCE:
            when = round(at + self.rng.expovariate(1.0 / (_EPISODE * self.sc.duration)), 6)
            heapq.heappush(self.undos, (max(when, at + 1e-6), len(self.faults), undo))

    def undo_until(self, at: float) -> None:
        """Apply the planned undos due before ``at`` that still change something."""
        while self.undos and self.undos[0][0] < at:
            when, _, f = heapq.heappop(self.undos)
            a = f.action
            node_state = self.state.get(f.node or "")
            if (
                (a == "restart" and node_state == "crashed")
                or (a == "resume" and node_state == "paused")
                or (a == "heal" and self.partitioned)
                or (a == "unblock" and (f.src, f.dst) in self.blocked)
                or (a == "unclog" and (f.src, f.dst) in self.clogged)
                or (a.startswith("set_") and self.net[a[4:]] > 0)
            ):
                self._record(dataclasses.replace(f, at=when))

    def _record(self, f: Fault) -> None:
        """Append ``f`` and update the model of the world."""
        a = f.action
        if f.node is not None and a != "clock_jump":
            self.state[f.node] = {"crash": "crashed", "pause": "paused", "stop": "stopped"}.get(a, "up")
        elif a == "partition":
            self.partitioned = True
        elif a == "heal":
            self.partitioned, self.blocked = False, []
        elif a in ("block", "clog"):
            links = self.blocked if a == "block" else self.clogged
            if (f.src, f.dst) not in links and f.src is not None and f.dst is not None:
                links.append((f.src, f.dst))
        elif a in ("unblock", "unclog"):
            links = self.blocked if a == "unblock" else self.clogged
            links.remove((str(f.src), str(f.dst)))
        elif a.startswith("set_"):
            self.net[a[4:]] = f.value
        self.faults.append(f)

    def repair(self, at: float) -> None:
        """The faults that end the safety phase: after them the world is whole and quiet."""
        out = self.faults
        if self.partitioned or self.blocked:
            out.append(Fault(at, "heal"))
        if self.clogged:
            out.append(Fault(at, "unclog"))
        out += [Fault(at, "resume", node=n) for n in self._in("paused")]
        out += [Fault(at, f"set_{name}", value=0.0) for name, v in self.net.items() if v > 0]
        out += [Fault(at, "restart", node=n) for n in self._in("crashed")]


def swarm_scenario(
    scenario: Scenario, seed: int, faults: str = "default", liveness: float | None = None
) -> Scenario:
    """``scenario`` with the random fault mix and clocks of swarm ``seed`` (see the module doc).

    Args:
        scenario: supplies the system, nodes, ``late`` nodes, parameters, network and the
            safety phase's length (its ``duration``); its faults are replaced.
        seed: the swarm seed (also the run seed).
        faults: a key of :data:`FAULT_LEVELS`.
        liveness: the quiet phase's length; None: the system's :func:`liveness_seconds`.

    Raises:
        ValueError: unknown fault level.
    """
    if faults not in FAULT_LEVELS:
        raise ValueError(f"unknown fault level {faults!r} (one of {', '.join(FAULT_LEVELS)})")
    level = FAULT_LEVELS[faults]
    rng = Random(derive_seed(seed, "swarm"))
    safety = scenario.duration
    if liveness is None:
        liveness = liveness_seconds(SYSTEMS[scenario.system], scenario.params)
    clocks = dict(scenario.clocks)
    for node in scenario.nodes:
        offset = rng.uniform(-level.max_offset, level.max_offset)
        drift = rng.uniform(-level.max_drift, level.max_drift)
        if rng.random() < level.skew:
            clocks[node] = ClockConfig(round(offset, 6), round(drift, 9))
    nemesis = _Nemesis(scenario, level, rng)
    times = sorted(round(rng.uniform(0.0, safety), 6) for _ in range(rng.randint(*level.events)))
    for at in times:
        nemesis.undo_until(at)
        nemesis.step(at)
    nemesis.undo_until(safety)
    nemesis.repair(safety)
    return dataclasses.replace(
        scenario,
        name=f"{scenario.name}+swarm",
        description=f"swarm seed {seed}, {faults} faults for {safety:g} s, then {liveness:g} s quiet",
        clocks=clocks,
        faults=tuple(nemesis.faults),
        duration=safety + liveness,
    )


@dataclass(frozen=True, slots=True)
class SeedOutcome:
    """One swarm seed: its trace hash, size, number of faults and what the checkers found."""

    seed: int
    trace_sha256: str
    events: int
    faults: int
    violations: tuple[Violation, ...]


@dataclass(frozen=True, slots=True)
class SwarmResult:
    """Every seed of a swarm run, in seed order (plain data)."""

    scenario: str
    system: str
    faults: str
    liveness: float | None
    outcomes: tuple[SeedOutcome, ...]
    wall_seconds: float

    @property
    def failing_seeds(self) -> list[int]:
        return [o.seed for o in self.outcomes if o.violations]

    @property
    def violations(self) -> int:
        return sum(len(o.violations) for o in self.outcomes)

    def hashes(self) -> dict[int, str]:
        """Seed -> trace_sha256."""
        return {o.seed: o.trace_sha256 for o in self.outcomes}

    def replay_command(self, seed: int) -> str:
        """The ``troupe sim run`` command that replays ``seed`` byte for byte."""
        return replay_command(self.scenario, seed, self.faults, self.liveness)

    def summary_json(self) -> dict[str, object]:
        """The one-line JSON summary ``troupe sim swarm`` prints last."""
        return {
            "scenario": self.scenario,
            "system": self.system,
            "faults": self.faults,
            "seeds": len(self.outcomes),
            "violations": self.violations,
            "failing_seeds": self.failing_seeds,
            "wall_seconds": round(self.wall_seconds, 3),
        }


def replay_command(scenario: str, seed: int, faults: str = "default", liveness: float | None = None) -> str:
    """``troupe sim run SCENARIO --seed N --swarm [--faults L] [--liveness S]``."""
    cmd = ["troupe", "sim", "run", scenario, "--seed", str(seed), "--swarm"]
    if faults != "default":
        cmd += ["--faults", faults]
    if liveness is not None:
        cmd += ["--liveness", repr(liveness)]
    return shlex.join(cmd)


def run_seed(
    scenario: Scenario,
    seed: int,
    faults: str = "default",
    liveness: float | None = None,
    system: System | None = None,
) -> SeedOutcome:
    """Generate, run and check swarm ``seed`` of ``scenario``."""
    sc = swarm_scenario(scenario, seed, faults, liveness)
    res = run_scenario(sc, seed, system=system)
    return SeedOutcome(seed, res.trace_sha256, res.events, len(sc.faults), tuple(res.violations))


def _run_task(task: tuple[Scenario, int, str, float | None, System | None]) -> SeedOutcome:
    return run_seed(*task)


def swarm(
    scenario: Scenario | str | Path,
    seeds: Iterable[int],
    faults: str = "default",
    *,
    jobs: int = 1,
    liveness: float | None = None,
    system: System | None = None,
    on_outcome: Callable[[SeedOutcome], None] | None = None,
) -> SwarmResult:
    """Run swarm ``seeds`` of ``scenario`` and check every one.

    Args:
        scenario: a :class:`Scenario` or the path of a scenario file.
        seeds: the seeds, e.g. ``range(1, 101)``.
        faults: a fault level, a key of :data:`FAULT_LEVELS` (``light``, ``default``, ``heavy``).
        jobs: worker processes (1: run here). Outcomes do not depend on it.
        liveness: the quiet phase's length; None: the system's :func:`liveness_seconds`.
        system: overrides the registered system (jobs=1 only unless it can be pickled).
        on_outcome: called with each seed's outcome, in seed order, as it arrives.

    Returns:
        A :class:`SwarmResult` with every seed's hash and violations, in seed order.

    Raises:
        ScenarioError: the scenario file is invalid.
        ValueError: unknown fault level or ``jobs < 1``.
    """
    wall0 = time.perf_counter()
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    if faults not in FAULT_LEVELS:
        raise ValueError(f"unknown fault level {faults!r} (one of {', '.join(FAULT_LEVELS)})")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    ordered: Sequence[int] = sorted(set(seeds))
    tasks = [(sc, seed, faults, liveness, system) for seed in ordered]
    outcomes: list[SeedOutcome] = []
    if jobs == 1 or len(tasks) < 2:
        for task in tasks:
            outcomes.append(_run_task(task))
            if on_outcome is not None:
                on_outcome(outcomes[-1])
    else:
        ctx = multiprocessing.get_context("spawn")
        chunk = max(1, min(16, len(tasks) // (jobs * 4)))
        with ctx.Pool(min(jobs, len(tasks))) as pool:
            for outcome in pool.imap(_run_task, tasks, chunksize=chunk):
                outcomes.append(outcome)
                if on_outcome is not None:
                    on_outcome(outcome)
    name = sc.source or sc.name
    return SwarmResult(
        name,
        (system or SYSTEMS[sc.system]).name,
        faults,
        liveness,
        tuple(outcomes),
        time.perf_counter() - wall0,
    )
