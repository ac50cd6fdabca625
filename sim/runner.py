"""Running scenarios: build the simulation, run it, check it; and the determinism self-check."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .result import RunResult
from .scenario import Scenario, load_scenario
from .systems import SYSTEMS, System
from .trace import first_difference
from .world import Simulation


def build_simulation(
    scenario: Scenario, seed: int, *, codec_checks: bool | None = None, system: System | None = None
) -> Simulation:
    """A :class:`Simulation` of ``scenario`` with every fault scheduled, not yet run.

    Args:
        scenario: a parsed scenario.
        seed: the run seed.
        codec_checks: overrides the scenario's ``codec_checks`` when not None.
        system: overrides the registered system named by ``scenario.system`` (for tests of
            deliberately broken actors).
    """
    system = system or SYSTEMS[scenario.system]
    sim = Simulation(
        system.blueprint(scenario.params, scenario.nodes),
        scenario.nodes,
        seed=seed,
        network=scenario.network,
        clocks=scenario.clocks,
        jobs=scenario.jobs,
        codec_checks=scenario.codec_checks if codec_checks is None else codec_checks,
        name=scenario.name,
        late=scenario.late,
    )
    for fault in scenario.faults:
        sim.schedule(fault)
    return sim


def run_scenario(
    scenario: Scenario | str | Path,
    seed: int,
    *,
    codec_checks: bool | None = None,
    system: System | None = None,
) -> RunResult:
    """Run a scenario (object or TOML path) with ``seed`` and check the system's promises.

    ``system`` overrides the registered system the scenario names (see :func:`build_simulation`).

    Returns:
        The :class:`RunResult`, with ``violations`` filled by the system's checkers.

    Raises:
        ScenarioError: the scenario file is invalid.
    """
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    wall0 = time.perf_counter()
    sim = build_simulation(sc, seed, codec_checks=codec_checks, system=system)
    result = sim.run(sc.duration)
    result.wall_seconds = time.perf_counter() - wall0
    result.violations = (system or SYSTEMS[sc.system]).check(result, sc.params)
    return result


@dataclass(frozen=True, slots=True)
class DeterminismReport:
    """Two runs of one seed: equal hashes, or where their traces first differ."""

    seed: int
    first_sha256: str
    second_sha256: str
    first_difference: tuple[int, Any, Any] | None

    @property
    def identical(self) -> bool:
        return self.first_sha256 == self.second_sha256


def check_determinism(scenario: Scenario | str | Path, seed: int) -> DeterminismReport:
    """Run ``scenario`` twice with ``seed`` and compare the trace hashes."""
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    a = build_simulation(sc, seed).run(sc.duration)
    b = build_simulation(dataclasses.replace(sc), seed).run(sc.duration)
    diff = None if a.trace_sha256 == b.trace_sha256 else first_difference(a.trace, b.trace)
    return DeterminismReport(seed, a.trace_sha256, b.trace_sha256, diff)
