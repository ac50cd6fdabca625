"""The simulated world: a deterministic, fault-injecting driver for Troupe's pure actors.

Same scenario and seed give the same trace, byte for byte (``RunResult.trace_sha256``).

Quick use from a notebook::

    import sim
    result = sim.run_scenario("scenarios/heartbeat-crash-restart.toml", seed=1)
    result.violations, result.emitted[:5], result.stats

or, without a scenario file, from any :data:`actors.NodeBlueprint`::

    s = sim.Simulation(blueprint, ["n1", "n2", "n3"], seed=1, network=sim.NetworkConfig(loss=0.01))
    s.schedule(sim.Fault(10.0, "crash", node="n2"))
    result = s.run(until=30.0)

or many seeds, each with a random fault mix, checked (see :mod:`sim.swarm`)::

    report = sim.swarm("scenarios/heartbeat-crash-restart.toml", range(1, 101), faults="heavy")
    report.failing_seeds, report.replay_command(report.failing_seeds[0])
"""

from .checkers import check_heartbeat as check_heartbeat
from .checkers import detections as detections
from .clock import ClockConfig as ClockConfig
from .faults import Fault as Fault
from .faults import Timeline as Timeline
from .jobs import JobModel as JobModel
from .jobs import JobSpec as JobSpec
from .network import Constant as Constant
from .network import Exponential as Exponential
from .network import LinkConfig as LinkConfig
from .network import LogNormal as LogNormal
from .network import NetworkConfig as NetworkConfig
from .network import Normal as Normal
from .network import Uniform as Uniform
from .nodes import SimulationError as SimulationError
from .result import Emitted as Emitted
from .result import RunResult as RunResult
from .result import Violation as Violation
from .runner import DeterminismReport as DeterminismReport
from .runner import build_simulation as build_simulation
from .runner import check_determinism as check_determinism
from .runner import run_scenario as run_scenario
from .scenario import Scenario as Scenario
from .scenario import ScenarioError as ScenarioError
from .scenario import load_scenario as load_scenario
from .scenario import parse_scenario as parse_scenario
from .swarm import FAULT_LEVELS as FAULT_LEVELS
from .swarm import SeedOutcome as SeedOutcome
from .swarm import SwarmResult as SwarmResult
from .swarm import swarm as swarm
from .swarm import swarm_scenario as swarm_scenario
from .systems import SYSTEMS as SYSTEMS
from .systems import System as System
from .systems import register_system as register_system
from .trace import Trace as Trace
from .world import Simulation as Simulation
