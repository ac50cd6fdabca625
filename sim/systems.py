"""The registry of systems a scenario can simulate (``system = "..."`` in a scenario file).

A :class:`System` turns the scenario's parameter table into a config, the config and node ids
into a :data:`~actors.NodeBlueprint`, and a finished run into checker violations. Only the
heartbeat detector exists so far; elections and job engines register here the same way.
"""

from __future__ import annotations

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
    """How to parse, build and check one simulated system."""

    name: str
    parse: Callable[[Fields], Any]
    blueprint: Callable[[Any, tuple[str, ...]], NodeBlueprint]
    check: Callable[[RunResult, Any], list[Violation]]


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


register_system(System("heartbeat", _parse_heartbeat, _heartbeat_blueprint, check_heartbeat))

# Each further system registers itself in its own module (imported last: they import this one).
from . import system_bully, system_gossip, system_raft  # noqa: E402, F401
