"""A node's job engine as a blueprint: election, scheduler, balancer, worker, gateway and store.

``store`` picks where the queue lives:

- ``"raft"``: the queue is Raft's replicated :class:`JobMachine`; every node runs a
  :class:`RaftStore` and the election is Raft (whatever ``election`` says);
- ``"memory"``: one :class:`MemoryStore` actor on ``store_node`` (the simulator's store node);
- ``"external"``: the runtime hosts a store service named ``store`` (SQLite on ``store_node``,
  or Redis on every node); the blueprint adds no store actor.
"""

from __future__ import annotations

from .._actor import Actor, NodeBlueprint
from .._messages import ActorRef
from ..elections.select import election_blueprint
from .balancer import Balancer
from .config import JobsConfig
from .gateway import Gateway
from .messages import BALANCER, GATEWAY, SCHEDULER, WORKER
from .protocol import STORE
from .scheduler import Scheduler
from .stores import MemoryStore, RaftStore, machine_factory
from .worker import Worker

STORE_MODES = ("raft", "memory", "external")

RAFT_SNAPSHOT_EVERY = 10_000
"""Applied entries between snapshots of the Raft store: a snapshot holds every job record
(about 340 bytes each), so it is taken far less often than Raft's default of 1,000."""


def jobs_blueprint(
    nodes: tuple[str, ...],
    *,
    config: JobsConfig | None = None,
    store: str = "raft",
    store_node: str | None = None,
    election: str = "raft",
    election_timeout: float | None = None,
    interval: float | None = None,
    workers: tuple[str, ...] | None = None,
) -> NodeBlueprint:
    """The blueprint of a job cluster of ``nodes``.

    Args:
        nodes: the cluster's nodes (each runs election, scheduler, balancer, gateway, and a
            worker if listed in ``workers``).
        config: the engine's settings.
        store: ``raft``, ``memory`` or ``external`` (see the module docstring).
        store_node: the node holding the store for ``memory`` (may be outside ``nodes``: it then
            runs only the store) and for an external store that lives on one node (SQLite);
            None means each node's own ``store``.
        election: the election algorithm when ``store`` is not ``raft``.
        workers: nodes that run a worker pool (default: all of ``nodes``).

    Raises:
        ValueError: an unknown store mode or election, or a memory store without a node.
    """
    cfg = config or JobsConfig()
    if store not in STORE_MODES:
        raise ValueError(f"unknown store mode {store!r}: use one of {', '.join(STORE_MODES)}")
    if store == "memory" and store_node is None:
        raise ValueError("the memory store needs store_node (the node that holds it)")
    algorithm = "raft" if store == "raft" else election
    elect = election_blueprint(
        algorithm,
        nodes,
        election_timeout=election_timeout,
        interval=interval,
        machine=machine_factory(cfg.policy) if store == "raft" else None,
        snapshot_threshold=RAFT_SNAPSHOT_EVERY if store == "raft" else None,
    )
    pool = nodes if workers is None else workers

    def build(node_id: str) -> dict[str, Actor]:
        if node_id not in nodes:
            return {STORE: MemoryStore(cfg.policy)} if node_id == store_node and store == "memory" else {}
        store_ref = ActorRef(store_node or node_id, STORE)
        actors: dict[str, Actor] = dict(elect(node_id))
        actors[SCHEDULER] = Scheduler(cfg, store_ref, nodes)
        actors[BALANCER] = Balancer(cfg)
        actors[GATEWAY] = Gateway(
            store_ref,
            default_max_retries=cfg.policy.max_retries,
            nodes=nodes,
            lane_slots=cfg.lane_slots if node_id in pool else 0,
            lease=cfg.lease,
        )
        if node_id in pool:
            actors[WORKER] = Worker(cfg, store_ref)
        if store == "raft":
            actors[STORE] = RaftStore()
        elif store == "memory" and node_id == store_node:
            actors[STORE] = MemoryStore(cfg.policy)
        return actors

    return build
