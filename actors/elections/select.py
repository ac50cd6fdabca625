"""Choosing an election algorithm by name, as ``ELECTION_ALGORITHM`` does for a node."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .._actor import Actor, NodeBlueprint
from ._common import ALGORITHMS, ElectionConfig


def default_config(algorithm: str) -> ElectionConfig:
    """The algorithm's default settings (its own config class)."""
    if algorithm == "bully":
        from .bully import BullyConfig

        return BullyConfig()
    if algorithm == "raft":
        from .raft import RaftConfig

        return RaftConfig()
    if algorithm == "gossip":
        from ._swim_messages import GossipConfig

        return GossipConfig()
    raise ValueError(f"unknown election algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")


def _configure(
    algorithm: str, election_timeout: float | None, interval: float | None, seeds: tuple[str, ...]
) -> ElectionConfig:
    """The algorithm's config with the given timings; the algorithm's other timeouts are scaled
    down with them when they would not fit (Bully's answer/coordinator waits, Gossip's probe
    timeout)."""
    base = default_config(algorithm)
    timeout = base.election_timeout if election_timeout is None else election_timeout
    period = base.interval if interval is None else interval
    changes: dict[str, object] = {"seeds": seeds, "election_timeout": timeout, "interval": period}
    if algorithm == "bully":
        changes["answer_timeout"] = min(2.0, timeout / 5)
        changes["coordinator_timeout"] = min(5.0, timeout / 2)
    elif algorithm == "gossip":
        changes["probe_timeout"] = min(0.5, period / 2)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def election_blueprint(
    algorithm: str,
    nodes: tuple[str, ...],
    *,
    election_timeout: float | None = None,
    interval: float | None = None,
    seeds: tuple[str, ...] = (),
    joining: tuple[str, ...] = (),
    machine: Callable[[], Any] | None = None,
    snapshot_threshold: int | None = None,
) -> NodeBlueprint:
    """A blueprint running ``algorithm``'s election actor on every node.

    Args:
        algorithm: ``bully``, ``raft`` or ``gossip``.
        nodes: every node id the blueprint may be asked to build.
        election_timeout: overrides the algorithm's default (seconds).
        interval: overrides the algorithm's default heartbeat/probe period (seconds).
        seeds: nodes a joining node contacts first (default: all of ``nodes``).
        joining: nodes that join a running cluster instead of bootstrapping it (for Raft they
            start with no configuration and are added by a membership change).
        machine: for Raft, a factory of the replicated state machine (default: key-value).
        snapshot_threshold: for Raft, applied entries between snapshots (default: Raft's).

    Raises:
        ValueError: an unknown algorithm or settings the algorithm refuses (one line).
    """
    config = _configure(algorithm, election_timeout, interval, tuple(seeds))
    if algorithm == "bully":
        from . import bully

        return bully.blueprint(nodes, config)
    if algorithm == "raft":
        from . import raft

        assert isinstance(config, raft.RaftConfig)
        if machine is not None:
            config = dataclasses.replace(config, machine=machine)
        if snapshot_threshold is not None:
            config = dataclasses.replace(config, snapshot_threshold=snapshot_threshold)
        members = tuple(n for n in nodes if n not in joining)
        voters = raft.blueprint(nodes, config, members=members)
        if not joining:
            return voters
        from .raft._join import JOINER, RaftJoiner

        retry = config.election_timeout
        join_seeds = tuple(seeds) or members

        def build(node_id: str) -> dict[str, Actor]:
            actors = dict(voters(node_id))
            if node_id in joining:
                actors[JOINER] = RaftJoiner(tuple(s for s in join_seeds if s != node_id), retry)
            return actors

        return build
    from . import gossip
    from ._swim_messages import GossipConfig

    assert isinstance(config, GossipConfig)
    return gossip.blueprint(nodes, config)
