"""The cluster over HTTP: ``/health``, leader, nodes, workers and the election algorithms.

- ``GET /health`` (no auth): ``ok``, or ``degraded`` with the problems (no leader known, the
  store not answering within :data:`HEALTH_STORE_TIMEOUT`); always 200 while the node serves.
- ``GET /api/v1/leader``: this node's election view (the Raft term is the epoch).
- ``GET /api/v1/nodes`` (admin): every node as this node's heartbeat detector sees it
  (``alive``/``suspect``/``dead``), read from the local ``heartbeat`` actor without changing it.
- ``GET /api/v1/workers`` (admin): the workers the leader's balancer knows (asked through
  :class:`~transport.http.cluster_view.ClusterView`), ``ONLINE`` or ``OFFLINE``; 503 while no
  leader is known or it does not answer.
- ``GET /api/v1/election/algorithms/{name}``: description, properties and defaults of
  ``bully``, ``raft`` or ``gossip``; 404 for another name.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal, cast

from fastapi import APIRouter, Path

from actors.heartbeat import NAME as HEARTBEAT
from actors.heartbeat import HeartbeatDetector

from .cluster_view import NoAnswer
from .election_info import algorithm_info
from .errors import ApiError
from .guard import CanAdminCluster, CanReadCluster
from .models import (
    AlgorithmOut,
    ErrorOut,
    HealthOut,
    LeaderOut,
    NodeOut,
    NodesOut,
    WorkerOut,
    WorkersOut,
    utc,
)
from .state import Api, ApiDep

router = APIRouter(tags=["cluster"])

_State = Literal["alive", "suspect", "dead"]
HEALTH_STORE_TIMEOUT = 2.0
"""Seconds ``/health`` waits for the store's answer before calling it unreachable."""


def algorithm_in_use(api: Api) -> str:
    """The election algorithm this node runs (``raft`` whenever the store is Raft)."""
    settings = api.handle.settings
    return "raft" if settings.store == "raft" else settings.election


@router.get("/health", response_model=HealthOut, summary="Is this node serving? (no auth)")
async def health(api: ApiDep) -> HealthOut:
    problems: list[str] = []
    leader = api.view.leader
    if leader is None:
        problems.append("no leader known")
    result = await api.handle.bridge.request({"op": "stats"}, HEALTH_STORE_TIMEOUT)
    reachable = "error" not in result
    if not reachable:
        problems.append(f"store: {result['error']}")
    return HealthOut(
        status="degraded" if problems else "ok",
        node_id=api.node_id,
        leader=leader,
        store_reachable=reachable,
        uptime_seconds=round(max(0.0, time.time() - api.handle.started_wall), 3),
        problems=problems,
    )


@router.get("/api/v1/leader", response_model=LeaderOut, summary="Who leads, as this node sees it")
async def leader(api: ApiDep, _: CanReadCluster) -> LeaderOut:
    algorithm = algorithm_in_use(api)
    view = api.view
    return LeaderOut(
        leader=view.leader,
        epoch=view.epoch,
        term=view.epoch if algorithm == "raft" else None,
        algorithm=algorithm,
        node_id=api.node_id,
        is_leader=view.leader == api.node_id,
    )


@router.get("/api/v1/nodes", response_model=NodesOut, summary="Every node and its heartbeat state (admin)")
async def nodes(api: ApiDep, _: CanAdminCluster) -> NodesOut:
    settings = api.handle.settings
    detector = api.handle.runtime.actor(HEARTBEAT)
    seen = detector.status().peers if isinstance(detector, HeartbeatDetector) else {}
    addresses = {nid: f"{host}:{port}" for nid, (host, port) in settings.peers.items()}
    host, port = getattr(api.handle.transport, "listen_address", None) or settings.listen
    addresses[api.node_id] = f"{host}:{port}"
    leader_id = api.view.leader
    out = []
    for nid in sorted({api.node_id, *addresses, *seen}):
        state = "alive" if nid == api.node_id else seen.get(nid, "ALIVE").lower()
        out.append(
            NodeOut(
                id=nid,
                address=addresses.get(nid),
                state=cast(_State, state if state in ("alive", "suspect", "dead") else "dead"),
                leader=nid == leader_id,
                self=nid == api.node_id,
            )
        )
    return NodesOut(node_id=api.node_id, leader=leader_id, nodes=out)


@router.get(
    "/api/v1/workers",
    response_model=WorkersOut,
    summary="The workers the leader's balancer knows (admin)",
)
async def workers(api: ApiDep, _: CanAdminCluster) -> WorkersOut:
    try:
        report = await api.view.workers()
    except NoAnswer as e:
        raise ApiError(503, str(e)) from None
    now = time.time()
    return WorkersOut(
        leader=report.node,
        strategy=report.strategy,
        workers=[
            WorkerOut(
                id=w.id,
                node=w.id.partition("/")[0],
                capacity=w.capacity,
                load=w.load,
                held=[job_id for job_id, _ in w.held],
                state="ONLINE" if w.online else "OFFLINE",
                last_seen=utc(now - w.silent),
                silent_seconds=w.silent,
            )
            for w in report.workers
        ],
    )


@router.get(
    "/api/v1/election/algorithms/{algorithm}",
    response_model=AlgorithmOut,
    summary="What an election algorithm does, and its defaults",
    responses={404: {"model": ErrorOut, "description": "Not bully, raft or gossip"}},
)
async def election_algorithm(
    algorithm: Annotated[str, Path(max_length=32, description="bully, raft or gossip")],
    api: ApiDep,
    _: CanReadCluster,
) -> AlgorithmOut:
    info = algorithm_info(algorithm)
    if info is None:
        raise ApiError(404, f"unknown election algorithm {algorithm!r}: use bully, raft or gossip")
    description, properties, defaults = info
    name = algorithm.strip().lower()
    return AlgorithmOut(
        name=name,
        description=description,
        properties=properties,
        defaults=defaults,
        in_use=name == algorithm_in_use(api),
    )
