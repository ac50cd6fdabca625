"""``/api/v1/jobs``, ``/api/v1/dlq`` and ``/api/v1/stats``: the job store over HTTP.

Every route turns its request into one store command (see :mod:`actors.jobs.machine`) and
sends it through the node's gateway (:meth:`transport.http.state.Api.ask`), so every node
serves them all. ``DELETE /api/v1/jobs/{id}`` (admin) cancels the job like
``POST /api/v1/jobs/{id}/cancel``: job records are history and are kept; only the dead-letter
purge deletes records. A submit with an ``idempotency_key`` already used answers 200 with the
job it made the first time (201 when a job is created).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response

from actors.jobs import STATUSES

from ..jobs_client import JobError, new_job
from .auth import Principal
from .errors import ApiError, one_line
from .guard import (
    CanDeleteJobs,
    CanPurgeDlq,
    CanReadDlq,
    CanReadJobs,
    CanReadStats,
    CanRequeueDlq,
    CanWriteJobs,
)
from .models import (
    MAX_OFFSET,
    MAX_PAGE,
    MAX_TEXT,
    CancelIn,
    ErrorOut,
    IdsIn,
    JobIn,
    JobListOut,
    JobOut,
    PurgeOut,
    RequeueOut,
    StatsOut,
    job_out,
)
from .state import Api, ApiDep

router = APIRouter(prefix="/api/v1", tags=["jobs"])

STATUS_ALIASES = {"completed": "SUCCESS", "succeeded": "SUCCESS", "canceled": "CANCELLED"}
"""Other names clients use for a status (the reference says ``completed``)."""
STATUS_VALUES = ["", *(s.lower() for s in STATUSES), *STATUSES, *STATUS_ALIASES]

JobId = Annotated[str, Path(min_length=1, max_length=MAX_TEXT, description="The job's id")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "No such job"}}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "The job has finished and cannot be cancelled"}
}


def _status(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    key = text.strip()
    status = STATUS_ALIASES.get(key.lower(), key.upper())
    if status not in STATUSES:
        raise ApiError(400, f"status: must be one of {', '.join(s.lower() for s in STATUSES)}")
    return status


def _jobs(result: dict[str, Any]) -> list[JobOut]:
    return [job_out(j) for j in result.get("jobs", [])]


@router.post(
    "/jobs",
    status_code=201,
    response_model=JobOut,
    summary="Submit a job",
    responses={200: {"model": JobOut, "description": "The idempotency key matched: the job made before"}},
)
async def submit_job(
    body: JobIn,
    response: Response,
    api: ApiDep,
    _: CanWriteJobs,
) -> JobOut:
    now = time.time()
    try:
        plain = new_job(
            body.type,
            body.payload,
            priority=int(body.priority),
            scheduled_at=body.scheduled_unix(now),
            max_retries=body.max_retries,
            timeout=body.timeout_seconds,
            idempotency_key=body.idempotency_key,
            now=now,
        )
    except (JobError, ValueError) as e:
        raise ApiError(400, one_line(e)) from None
    result = await api.ask({"op": "submit", "job": plain})
    if not result.get("created", True):
        response.status_code = 200
    return job_out(result["job"])


@router.get("/jobs", response_model=JobListOut, summary="List jobs in submission order")
async def list_jobs(
    api: ApiDep,
    _: CanReadJobs,
    status: Annotated[
        str | None,
        Query(
            max_length=32,
            description="Any case: pending, running, ...",
            json_schema_extra={"enum": STATUS_VALUES},
        ),
    ] = None,
    type: Annotated[str | None, Query(max_length=MAX_TEXT, description="Only jobs of this type")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> JobListOut:
    command: dict[str, Any] = {"op": "list", "limit": limit, "offset": offset}
    wanted = _status(status)
    if wanted is not None:
        command["status"] = wanted
    if type:
        command["type"] = type
    result = await api.ask(command)
    return JobListOut(jobs=_jobs(result), limit=limit, offset=offset, total=result.get("total"))


@router.get("/jobs/{job_id}", response_model=JobOut, summary="One job", responses=NOT_FOUND)
async def get_job(job_id: JobId, api: ApiDep, _: CanReadJobs) -> JobOut:
    result = await api.ask({"op": "get", "id": job_id})
    if result.get("job") is None:
        raise ApiError(404, f"no job {job_id!r}")
    return job_out(result["job"])


async def _cancel(api: Api, job_id: str, reason: str | None, who: Principal) -> JobOut:
    command: dict[str, Any] = {"op": "cancel", "id": job_id, "at": time.time()}
    command["reason"] = reason or f"cancelled by {who.username}"
    result = await api.ask(command)
    return job_out(result["job"])


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobOut,
    summary="Cancel a pending, running or retrying job",
    responses={**NOT_FOUND, **CONFLICT},
)
async def cancel_job(
    job_id: JobId,
    api: ApiDep,
    who: CanWriteJobs,
    body: Annotated[CancelIn | None, Body()] = None,
) -> JobOut:
    return await _cancel(api, job_id, body.reason if body else None, who)


@router.delete(
    "/jobs/{job_id}",
    response_model=JobOut,
    summary="Delete a job (admin): cancels it; its record is kept as history",
    responses={**NOT_FOUND, **CONFLICT},
)
async def delete_job(job_id: JobId, api: ApiDep, who: CanDeleteJobs) -> JobOut:
    return await _cancel(api, job_id, None, who)


@router.get("/dlq", response_model=JobListOut, summary="Dead-lettered jobs, oldest first")
async def list_dlq(
    api: ApiDep,
    _: CanReadDlq,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> JobListOut:
    result = await api.ask({"op": "dlq_list", "limit": limit, "offset": offset})
    return JobListOut(jobs=_jobs(result), limit=limit, offset=offset, total=result.get("total"))


@router.post("/dlq/requeue", response_model=RequeueOut, summary="Requeue dead jobs with a fresh retry budget")
async def requeue_dlq(
    api: ApiDep,
    _: CanRequeueDlq,
    body: Annotated[IdsIn | None, Body()] = None,
) -> RequeueOut:
    command: dict[str, Any] = {"op": "dlq_requeue", "at": time.time()}
    if body is not None and body.ids is not None:
        command["ids"] = list(body.ids)
    result = await api.ask(command)
    return RequeueOut(requeued=[str(i) for i in result.get("requeued", [])])


@router.post("/dlq/purge", response_model=PurgeOut, summary="Delete dead jobs for good (admin)")
async def purge_dlq(
    api: ApiDep,
    _: CanPurgeDlq,
    body: Annotated[IdsIn | None, Body()] = None,
) -> PurgeOut:
    command: dict[str, Any] = {"op": "dlq_purge"}
    if body is not None and body.ids is not None:
        command["ids"] = list(body.ids)
    result = await api.ask(command)
    ids = [str(i) for i in result.get("ids", [])]
    return PurgeOut(purged=int(result.get("purged", len(ids))), ids=ids)


@router.get("/stats", response_model=StatsOut, summary="Counts of jobs by status and queue")
async def stats(api: ApiDep, _: CanReadStats) -> StatsOut:
    result = await api.ask({"op": "stats"})
    return StatsOut(**{**result, "node_id": api.node_id, "leader": api.view.leader})
