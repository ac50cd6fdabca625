"""The pull API (the reference orchestrator's worker routes), for workers in any language.

``POST /workers/register``, ``POST /workers/heartbeat``, ``POST /jobs/next`` (a long poll of
up to ``wait`` seconds; 204 when no job came), ``POST /jobs/report`` and ``GET /workers``
(role ``worker`` or ``admin``). Each calls the node's pull-worker registry
(:class:`transport.pull_workers.PullWorkers`, ``handle.extras["pull"]``), whose refusals
(:class:`~transport.pull_workers.PullError`) keep their status: 400 a bad value, 404 an
unknown worker, 409 a job the worker does not hold, 503 the node cannot take it now.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from ..pull_workers import PullError, PullWorkers
from .errors import ApiError
from .guard import CanPull
from .models import (
    ErrorOut,
    HeartbeatIn,
    HeartbeatOut,
    NextIn,
    PulledJobOut,
    PullWorkersOut,
    RegisterIn,
    RegisterOut,
    ReportIn,
    ReportOut,
    json_safe,
)
from .state import Api, ApiDep

UNKNOWN: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "Unknown worker"}}
NOT_HELD: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "A job this worker does not hold (or a refused report)"}
}

router = APIRouter(tags=["pull workers"])


def _pull(api: Api) -> PullWorkers:
    pull = api.handle.extras.get("pull")
    if pull is None:
        raise ApiError(503, "this node has no pull-worker registry (the job engine is off)")
    registry: PullWorkers = pull
    return registry


def _refused(e: PullError) -> ApiError:
    return ApiError(e.status if 400 <= e.status < 600 else 400, str(e))


@router.post("/workers/register", response_model=RegisterOut, summary="Register a worker")
async def register(body: RegisterIn, api: ApiDep, _: CanPull) -> dict[str, Any]:
    try:
        return _pull(api).register(body.worker_id, body.hostname, body.capacity)
    except PullError as e:
        raise _refused(e) from None


@router.post(
    "/workers/heartbeat", response_model=HeartbeatOut, summary="A worker is alive", responses=UNKNOWN
)
async def heartbeat(body: HeartbeatIn, api: ApiDep, _: CanPull) -> dict[str, Any]:
    try:
        return _pull(api).heartbeat(body.worker_id, body.load)
    except PullError as e:
        raise _refused(e) from None


@router.post(
    "/jobs/next",
    response_model=PulledJobOut,
    summary="The next job for a worker (204: none came within wait seconds)",
    responses={**UNKNOWN, 204: {"description": "No job came within wait seconds"}},
)
async def next_job(body: NextIn, api: ApiDep, _: CanPull) -> Any:
    try:
        job = await _pull(api).next(body.worker_id, body.wait)
    except PullError as e:
        raise _refused(e) from None
    return Response(status_code=204) if job is None else {**job, "payload": json_safe(job.get("payload"))}


@router.post(
    "/jobs/report",
    response_model=ReportOut,
    summary="The outcome of a job taken with /jobs/next",
    responses={**UNKNOWN, **NOT_HELD},
)
async def report(body: ReportIn, api: ApiDep, _: CanPull) -> dict[str, Any]:
    try:
        return await _pull(api).report(
            body.worker_id, body.job_id, body.attempt, body.status == "SUCCESS", body.error, body.result
        )
    except PullError as e:
        raise _refused(e) from None


@router.get("/workers", response_model=PullWorkersOut, summary="The pull workers registered with this node")
async def list_workers(api: ApiDep, _: CanPull) -> PullWorkersOut:
    return PullWorkersOut(workers=_pull(api).list())
