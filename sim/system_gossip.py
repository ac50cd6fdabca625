"""Simulation of the gossip election: scenario parameters, blueprint and checkers (registered
in :data:`sim.systems.SYSTEMS` under ``"gossip"``).

Scenario table (every key optional; defaults are :class:`actors.elections.gossip.GossipConfig`'s)::

    [gossip]
    interval = 1.0                    # protocol period (s)
    probe_timeout = 0.5               # direct ack wait before indirect probes (s)
    indirect_checks = 3               # k helpers for indirect probes
    suspicion_mult = 4                # min suspicion = mult * max(1, log10 n) * interval
    suspicion_max_timeout_mult = 6    # max suspicion = this * min (no confirmations)
    retransmit_mult = 4               # rumours sent mult * ceil(log10(n + 1)) times
    awareness_max_multiplier = 8      # Lifeguard local health: period stretch cap
    push_pull_interval = 30.0         # anti-entropy state exchange (s); 0 = off
    max_piggyback = 16                # rumours per message
    election_timeout = 15.0           # lead alone if no seed answers; reconnect period (s)
    leader_rule = "lowest_id"         # or "highest_priority"
    seeds = ["n1", "n2"]              # join through these (default: every node)
    priorities = { n3 = 10 }          # for highest_priority
"""

from __future__ import annotations

from typing import Any

from actors import NodeBlueprint
from actors.elections import gossip

from .checkers_gossip import check_gossip, convergence_bound
from .scenario import Fields
from .systems import System, register_system

_NUMBERS = ("interval", "probe_timeout", "push_pull_interval", "election_timeout")
_INTS = (
    "indirect_checks",
    "suspicion_mult",
    "suspicion_max_timeout_mult",
    "retransmit_mult",
    "awareness_max_multiplier",
    "max_piggyback",
)


def parse(f: Fields) -> gossip.GossipConfig:
    """The ``[gossip]`` table -> a validated :class:`GossipConfig` (one-line ScenarioError)."""
    kw: dict[str, Any] = {}
    for key in _NUMBERS:
        if f.has(key):
            kw[key] = f.number(key)
    for key in _INTS:
        if f.has(key):
            kw[key] = f.get(key, int)
    if f.has("leader_rule"):
        kw["leader_rule"] = f.get("leader_rule", str)
    if f.has("seeds"):
        seeds = f.get("seeds", list)
        if not all(type(s) is str for s in seeds):
            raise f.error("seeds", "expected an array of node ids")
        kw["seeds"] = tuple(seeds)
    if f.has("priorities"):
        prios = f.get("priorities", dict)
        for node, p in prios.items():
            if type(p) is not int:
                raise f.error(f"priorities.{node}", f"expected int, got {type(p).__name__} {p!r}")
        kw["priorities"] = dict(prios)
    f.done()
    try:
        return gossip.GossipConfig(**kw)
    except ValueError as e:
        raise f.error("", str(e)) from None


def build(config: gossip.GossipConfig, nodes: tuple[str, ...]) -> NodeBlueprint:
    return gossip.blueprint(nodes, config)


def _liveness(config: gossip.GossipConfig) -> float:
    # The convergence bound grows with n; scenario runners give no n, so assume up to 10 nodes.
    return convergence_bound(config, 10)


register_system(System("gossip", parse, build, check_gossip, liveness_seconds=_liveness))
