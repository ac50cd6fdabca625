"""The registry of systems a scenario can simulate (``system = "..."`` in a scenario file).

A :class:`System` turns the scenario's parameter table into a config, the config and node ids
into a :data:`~actors.NodeBlueprint`, and a finished run into checker violations. Only the
heartbeat detector exists so far; elections and job engines register here the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actors import NodeBlueprint
from actors import heartbeat as hb

from .checkers import check_heartbeat
from .result import RunResult, Violation
from .scenario import Fields


@dataclass(frozen=True, slots=True)
class System:
    """How to parse, build and check one simulated system.

    Attributes:
        name: the ``system = "..."`` of scenario files.
        parse: the scenario's parameter table -> the system's config (``params``).
        blueprint: config and node ids -> the blueprint every node runs.
        check: a finished run and the config -> the broken promises.
        liveness_seconds: config -> how long a fault-free period must last for the system's
            liveness promises to be due (used by ``troupe sim swarm`` for its quiet phase).
            None: ten times the largest timeout in the config (see :func:`liveness_seconds`).
    """

    name: str
    parse: Callable[[Fields], Any]
    blueprint: Callable[[Any, tuple[str, ...]], NodeBlueprint]
    check: Callable[[RunResult, Any], list[Violation]]
    liveness_seconds: Callable[[Any], float] | None = None


def liveness_seconds(system: System, params: Any) -> float:
    """The fault-free time ``system`` needs to keep its liveness promises under ``params``.

    The system's own ``liveness_seconds`` if it has one; else ten times the largest positive
    number among the config's dataclass fields (its longest timeout); else 30 seconds.
    """
    if system.liveness_seconds is not None:
        return float(system.liveness_seconds(params))
    numbers: list[float] = []
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        for f in dataclasses.fields(params):
            value = getattr(params, f.name)
            if type(value) in (int, float) and value > 0:
                numbers.append(float(value))
    return 10.0 * max(numbers) if numbers else 30.0


def _parse_heartbeat(f: Fields) -> hb.HeartbeatConfig:
    d = hb.HeartbeatConfig()
    interval = f.number("interval", d.interval)
    suspect = f.number("suspect_after", d.suspect_after)
    dead = f.number("dead_after", d.dead_after)
    f.done()
    try:
        return hb.HeartbeatConfig(interval, suspect, dead)
    except ValueError as e:
        raise f.error("", str(e)) from None


def _heartbeat_blueprint(config: hb.HeartbeatConfig, nodes: tuple[str, ...]) -> NodeBlueprint:
    return hb.blueprint(nodes, config)


SYSTEMS: dict[str, System] = {}
"""System name -> :class:`System`."""


def register_system(system: System) -> None:
    """Make ``system`` available to scenarios under ``system.name``."""
    SYSTEMS[system.name] = system


def _heartbeat_liveness(config: hb.HeartbeatConfig) -> float:
    # A crash is detected within dead_after + interval, a restart within one interval: five
    # detection periods leave every promise due well inside the quiet period.
    return 5.0 * (config.dead_after + config.interval)


register_system(
    System("heartbeat", _parse_heartbeat, _heartbeat_blueprint, check_heartbeat, _heartbeat_liveness)
)

# Each further system registers itself in its own module (imported last: they import this one).
from . import system_bully, system_gossip, system_jobs, system_raft  # noqa: E402, F401
