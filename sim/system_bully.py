"""Simulation of the Bully election: scenario parameters, blueprint and checkers (registered in
:data:`sim.systems.SYSTEMS` under ``"bully"``).

Scenario table (seconds; every key optional, defaults as :class:`~actors.elections.bully.BullyConfig`)::

    [bully]
    election_timeout = 0.6        # follower silence before it elects
    interval = 0.15               # coordinator heartbeat period
    answer_timeout = 0.15         # wait for an Answer from a higher node
    coordinator_timeout = 0.4     # wait for the Coordinator after an Answer
    seeds = ["n1"]                # whom a (re)starting node announces itself to (default: all)
    [bully.priorities]            # node -> priority, higher wins (unlisted: 0, then by id)
    n1 = 10

The checkers are :func:`sim.checkers_bully.check_bully`.
"""

from __future__ import annotations

from actors import NodeBlueprint
from actors.elections import bully

from .checkers_bully import check_bully
from .result import RunResult, Violation
from .scenario import Fields
from .systems import System, register_system


def parse(f: Fields) -> bully.BullyConfig:
    """The ``[bully]`` table as a :class:`~actors.elections.bully.BullyConfig`."""
    d = bully.BullyConfig()
    election_timeout = f.number("election_timeout", d.election_timeout)
    interval = f.number("interval", d.interval)
    answer_timeout = f.number("answer_timeout", d.answer_timeout)
    coordinator_timeout = f.number("coordinator_timeout", d.coordinator_timeout)
    seeds = f.get("seeds", list, [])
    if not all(type(s) is str for s in seeds):
        raise f.error("seeds", "expected an array of node ids")
    priorities: dict[str, int] = {}
    if f.has("priorities"):
        f.get("priorities", dict)
        p = f.sub("priorities")
        for node in list(p.table):
            priorities[node] = p.get(node, int)
        p.done()
    f.done()
    try:
        return bully.BullyConfig(
            election_timeout=election_timeout,
            interval=interval,
            priorities=priorities,
            seeds=tuple(seeds),
            answer_timeout=answer_timeout,
            coordinator_timeout=coordinator_timeout,
        )
    except ValueError as e:
        raise f.error("", str(e)) from None


def blueprint(config: bully.BullyConfig, nodes: tuple[str, ...]) -> NodeBlueprint:
    """Every node runs a Bully actor knowing all scenario ``nodes``."""
    return bully.blueprint(nodes, config)


def check(result: RunResult, config: bully.BullyConfig) -> list[Violation]:
    """The Bully checkers (see :mod:`sim.checkers_bully`)."""
    return check_bully(result, config)


register_system(System("bully", parse, blueprint, check))
