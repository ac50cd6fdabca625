"""What ``GET /api/v1/election/algorithms/{name}`` says about each election algorithm.

The descriptions and properties are written here once; the defaults are read from the
algorithm's own config class (:func:`actors.elections.select.default_config`), so they never
drift from what a node actually runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from actors.elections import ALGORITHMS
from actors.elections.select import default_config

_INFO: dict[str, tuple[str, dict[str, Any]]] = {
    "bully": (
        "The highest-ranked live node (priority, then id) becomes coordinator; followers that "
        "stop hearing its heartbeats hold an election, and a recovering higher node takes over.",
        {
            "consistency": "eventual: two coordinators can briefly coexist during a partition",
            "needs_quorum": False,
            "leader_rule": "highest priority, then highest id",
            "failure_detection": "coordinator heartbeats",
            "best_for": "small, stable clusters (2-10 nodes)",
        },
    ),
    "raft": (
        "Raft consensus: a candidate needs a majority of votes for a term, so there is at most "
        "one leader per term; with STORE=raft the job queue is Raft's replicated log.",
        {
            "consistency": "strong: at most one leader per term, committed entries survive",
            "needs_quorum": True,
            "leader_rule": "a majority vote for the candidate with the most up-to-date log",
            "failure_detection": "leader heartbeats with randomised election timeouts",
            "best_for": "3-7 nodes that need strong consistency",
        },
    ),
    "gossip": (
        "SWIM gossip membership (memberlist's profile with Lifeguard): members probe each other "
        "and spread rumours; every member picks the leader from its view of the live members.",
        {
            "consistency": "eventual: views converge once rumours have spread",
            "needs_quorum": False,
            "leader_rule": "lowest live node id (or highest priority)",
            "failure_detection": "random probes, indirect probes and suspicion",
            "best_for": "large, dynamic clusters (10+ nodes)",
        },
    ),
}


def algorithm_info(name: str) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """``(description, properties, defaults)`` of an election algorithm, or None if unknown."""
    key = name.strip().lower()
    if key not in ALGORITHMS or key not in _INFO:
        return None
    description, properties = _INFO[key]
    config = default_config(key)
    defaults = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if isinstance(getattr(config, f.name), (bool, int, float, str))  # not seeds, machine, ...
    }
    return description, dict(properties), defaults
