"""``troupe submit``, ``troupe jobs``, ``troupe dlq`` and ``troupe stats``: the job engine from a shell.

Each command opens a :class:`~transport.jobs_client.JobClient` to the nodes given with
``--node host:port`` (repeat it, or set ``TROUPE_NODES=host:port,host:port``; default
``127.0.0.1:7001``) of cluster ``--cluster`` (``TROUPE_CLUSTER``, then ``CLUSTER_NAME``, default
``troupe``), sends one command or a few, prints a readable table (``--json``: JSON instead) and
exits: 0 on success, 1 if the cluster refused the command or did not answer, 2 for a bad
argument. Every error is one line on stderr.

::

    troupe submit email --payload '{"to": "a@example.com"}' --priority high --retries 5
    troupe submit report --delay 10m --key nightly-2024-06-01
    troupe jobs --status DEAD --type email --limit 20
    troupe jobs 3f2a...                # one job with its attempts
    troupe jobs --cancel 3f2a...
    troupe dlq list | troupe dlq requeue [IDS...] | troupe dlq purge IDS... | --all
    troupe stats
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import trio

from actors.jobs import STATUSES, parse_duration, parse_priority

from .jobs_client import SETTLED_STATUSES, JobClient, JobError, new_job, parse_nodes, tls_options

DEFAULT_NODE = "127.0.0.1:7001"


class UsageError(ValueError):
    """A bad argument (one line; exit code 2)."""


# --- argument checks -----------------------------------------------------------------------


def _nodes(args: argparse.Namespace, env: dict[str, str]) -> list[str]:
    given: list[str] = list(args.node or [])
    if not given:
        given = [env.get("TROUPE_NODES") or DEFAULT_NODE]
    try:
        parse_nodes(given)
    except JobError as e:
        raise UsageError(f"--node/TROUPE_NODES: {e}") from None
    return given


def _cluster(args: argparse.Namespace, env: dict[str, str]) -> str:
    return str(args.cluster or env.get("TROUPE_CLUSTER") or env.get("CLUSTER_NAME") or "troupe")


def _seconds(text: str | None, flag: str, *, allow_zero: bool = False) -> float | None:
    if text is None:
        return None
    try:
        value = parse_duration(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        low = ">= 0" if allow_zero else "> 0"
        raise UsageError(f"{flag}={text!r}: must be a duration {low} such as 500ms, 5s, 10m or 1.5")
    return value


def _count(text: str | None, flag: str, low: int, high: int, default: int) -> int:
    if text is None:
        return default
    if not text.strip().isdigit() or not low <= int(text) <= high:
        raise UsageError(f"{flag}={text!r}: must be a whole number from {low} to {high}")
    return int(text)


def _at(text: str | None) -> float | None:
    """``--at``: UNIX seconds, or an ISO 8601 time such as 2030-01-01T12:00:00Z."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--at={text!r}: give UNIX seconds (such as {int(time.time()) + 60}) or an ISO time "
            "such as 2030-01-01T12:00:00Z"
        ) from None
    return when.timestamp()


def _status(text: str | None) -> str | None:
    if text is None:
        return None
    status = text.strip().upper()
    if status not in STATUSES:
        raise UsageError(f"--status={text!r}: choose one of {', '.join(STATUSES)}")
    return status


def _payload(text: str | None) -> Any:
    if text is None:
        return None
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise UsageError(f"--payload={text!r}: cannot read the file: {e.strerror or e}") from None
    try:
        return json.loads(text)
    except ValueError as e:
        raise UsageError(
            f'--payload: not valid JSON ({e}); for example --payload \'{{"to": "a@example.com"}}\''
        ) from None


# --- output --------------------------------------------------------------------------------


def _clock(t: float | None) -> str:
    if t is None:
        return "-"
    return time.strftime("%H:%M:%S", time.localtime(t))


def _short(text: Any, width: int) -> str:
    s = "" if text is None else " ".join(str(text).split())
    return s if len(s) <= width else s[: width - 1] + "…"


def _last_error(job: dict[str, Any]) -> str | None:
    for attempt in reversed(job.get("attempts") or []):
        if attempt.get("error"):
            return str(attempt["error"])
    return None


def job_table(jobs: Sequence[dict[str, Any]]) -> list[str]:
    """Lines of a table of ``jobs``: id, type, status, priority, attempts, updated, last error."""
    head = f"{'ID':<32}  {'TYPE':<12} {'STATUS':<9} {'PRI':>3} {'TRIES':>5}  {'UPDATED':<8}  LAST ERROR"
    lines = [head]
    for j in jobs:
        lines.append(
            f"{j['id']:<32}  {_short(j['type'], 12):<12} {j['status']:<9} {j['priority']:>3} "
            f"{len(j.get('attempts') or []):>5}  {_clock(j.get('updated_at')):<8}  "
            f"{_short(_last_error(j) or '', 60)}"
        )
    return lines


def job_detail(job: dict[str, Any]) -> list[str]:
    """Lines describing one job and its attempts."""
    lines = [
        f"id          {job['id']}",
        f"type        {job['type']}",
        f"status      {job['status']}",
        f"priority    {job['priority']}",
        f"payload     {json.dumps(job.get('payload'), default=repr)}",
        f"retries     {job['max_retries']} allowed, requeued {job.get('requeue_count', 0)} times",
        f"timeout     {job['timeout_seconds']:g} s",
        f"created     {_clock(job.get('created_at'))}",
        f"updated     {_clock(job.get('updated_at'))}",
    ]
    if job.get("scheduled_at") is not None:
        lines.append(f"scheduled   {_clock(job['scheduled_at'])}")
    if job.get("idempotency_key"):
        lines.append(f"key         {job['idempotency_key']}")
    attempts = job.get("attempts") or []
    lines.append(f"attempts    {len(attempts)}")
    for a in attempts:
        took = "" if a.get("finished") is None else f" {a['finished'] - a['started']:.3f} s"
        err = f"  {_short(a['error'], 80)}" if a.get("error") else ""
        lines.append(
            f"  #{a['number']:<3} {a['outcome']:<13} on {a['worker']:<8} at {_clock(a['started'])}{took}{err}"
        )
    return lines


def stats_lines(stats: dict[str, Any]) -> list[str]:
    """Lines of ``stats``: counts by status, then the queue's numbers."""
    by = stats.get("by_status", {})
    lines = [f"{'STATUS':<10} {'JOBS':>7}"]
    lines += [f"{s:<10} {int(by.get(s, 0)):>7}" for s in STATUSES]
    lines.append(f"{'total':<10} {int(stats.get('total', 0)):>7}")
    lines.append(
        f"ready {stats.get('ready', 0)}, delayed {stats.get('delayed', 0)}, "
        f"running {stats.get('running', 0)}, retrying {stats.get('retrying', 0)}, "
        f"dead-lettered {stats.get('dlq', 0)}; scheduler epoch {stats.get('epoch', 0)}"
    )
    return lines


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=repr))


# --- commands -------------------------------------------------------------------------------


def _run(
    args: argparse.Namespace,
    prepare: Callable[[], Any],
    body: Callable[[JobClient, Any], Awaitable[int]],
) -> int:
    """Check arguments (``prepare``), open a client and run ``body``; map errors to exit codes."""
    name = f"troupe {args.command}"
    env = dict(os.environ)
    try:
        nodes = _nodes(args, env)
        cluster = _cluster(args, env)
        timeout = _seconds(args.request_timeout, "--request-timeout") or 10.0
        tls = tls_options(env)
        checked = prepare()
    except (UsageError, JobError) as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 2

    async def main() -> int:
        async with JobClient(nodes, cluster, timeout, attempt_timeout=min(6.0, timeout), **tls) as client:
            return await body(client, checked)

    try:
        return trio.run(main)
    except JobError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 1


def cmd_submit(args: argparse.Namespace) -> int:
    """``troupe submit``."""

    def prepare() -> dict[str, Any]:
        try:
            priority = parse_priority(args.priority)
        except ValueError as e:
            raise UsageError(f"--priority: {e}") from None
        if args.delay is not None and args.at is not None:
            raise UsageError("give --delay or --at, not both")
        try:
            return new_job(
                args.type,
                _payload(args.payload),
                priority=priority,
                delay=_seconds(args.delay, "--delay", allow_zero=True),
                scheduled_at=_at(args.at),
                max_retries=None if args.retries is None else _count(args.retries, "--retries", 0, 1000, 3),
                timeout=_seconds(args.timeout, "--timeout"),
                idempotency_key=args.key,
            )
        except JobError as e:
            raise UsageError(str(e)) from None

    async def body(client: JobClient, job: dict[str, Any]) -> int:
        result = await client.request({"op": "submit", "job": job})
        job, created = result["job"], bool(result.get("created", True))
        if args.wait:
            job = await _wait_settled(client, job["id"], args.wait_timeout)
        if args.json:
            _print_json(job)
        else:
            verb = "submitted" if created else "already submitted (same idempotency key)"
            print(f"{verb} {job['id']}  {job['type']}  priority {job['priority']}  {job['status']}")
            if args.wait and _last_error(job) and job["status"] != "SUCCESS":
                print(f"last error: {_last_error(job)}")
        return 0 if not args.wait or job["status"] == "SUCCESS" else 1

    return _run(args, prepare, body)


async def _wait_settled(client: JobClient, job_id: str, timeout_text: str | None) -> dict[str, Any]:
    limit = _seconds(timeout_text, "--wait-timeout") or 60.0
    deadline = trio.current_time() + limit
    while True:
        job = await client.get(job_id)
        if job is None:
            raise JobError(f"job {job_id} vanished (purged?)")
        if job["status"] in SETTLED_STATUSES or trio.current_time() >= deadline:
            return job
        await trio.sleep(0.2)


def cmd_jobs(args: argparse.Namespace) -> int:
    """``troupe jobs``."""

    def prepare() -> dict[str, Any]:
        if args.cancel and args.id:
            raise UsageError("give a job ID to show or --cancel ID, not both")
        return {
            "status": _status(args.status),
            "limit": _count(args.limit, "--limit", 1, 10_000, 20),
            "offset": _count(args.offset, "--offset", 0, 10**9, 0),
        }

    async def body(client: JobClient, opts: dict[str, Any]) -> int:
        if args.cancel:
            job = await client.cancel(args.cancel, reason="cancelled from the command line")
            if args.json:
                _print_json(job)
            else:
                print(f"cancelled {job['id']}  {job['type']}  {job['status']}")
            return 0
        if args.id:
            one = await client.get(args.id)
            if one is None:
                raise JobError(f"no job {args.id!r}")
            if args.json:
                _print_json(one)
            else:
                print("\n".join(job_detail(one)))
            return 0
        jobs, total = await client.list(opts["status"], args.type, opts["limit"], opts["offset"])
        if args.json:
            _print_json({"jobs": jobs, "total": total})
            return 0
        print("\n".join(job_table(jobs)))
        first = opts["offset"] + 1 if jobs else opts["offset"]
        print(f"-- {first}-{opts['offset'] + len(jobs)} of {total} jobs")
        return 0

    return _run(args, prepare, body)


def cmd_dlq(args: argparse.Namespace) -> int:
    """``troupe dlq list|requeue|purge``."""

    def prepare() -> dict[str, Any]:
        if args.action == "list":
            return {
                "limit": _count(args.limit, "--limit", 1, 10_000, 20),
                "offset": _count(args.offset, "--offset", 0, 10**9, 0),
            }
        if args.action == "purge" and not args.ids and not args.all:
            raise UsageError("purge deletes jobs for good: give their IDS, or --all for the whole queue")
        if args.ids and getattr(args, "all", False):
            raise UsageError("give IDS or --all, not both")
        return {"ids": list(args.ids) or None}

    async def body(client: JobClient, opts: dict[str, Any]) -> int:
        if args.action == "list":
            jobs, total = await client.dlq_list(opts["limit"], opts["offset"])
            if args.json:
                _print_json({"jobs": jobs, "total": total})
            else:
                print("\n".join(job_table(jobs)))
                print(f"-- {len(jobs)} shown of {total} dead-lettered jobs")
            return 0
        if args.action == "requeue":
            ids = await client.dlq_requeue(opts["ids"])
            if args.json:
                _print_json({"requeued": ids})
            else:
                print(f"requeued {len(ids)} jobs" + (": " + " ".join(ids) if 0 < len(ids) <= 20 else ""))
            return 0
        ids = await client.dlq_purge(opts["ids"])
        if args.json:
            _print_json({"purged": ids})
        else:
            print(f"purged {len(ids)} jobs" + (": " + " ".join(ids) if 0 < len(ids) <= 20 else ""))
        return 0

    return _run(args, prepare, body)


def cmd_stats(args: argparse.Namespace) -> int:
    """``troupe stats``."""

    async def body(client: JobClient, _: Any) -> int:
        stats = await client.stats()
        if args.json:
            _print_json(stats)
        else:
            print("\n".join(stats_lines(stats)))
        return 0

    return _run(args, lambda: None, body)


# --- the parsers ----------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cluster")
    g.add_argument(
        "--node",
        action="append",
        metavar="HOST:PORT",
        help=f"a node to talk to; repeat for fallbacks (TROUPE_NODES, default {DEFAULT_NODE})",
    )
    g.add_argument(
        "--cluster", metavar="NAME", help="cluster name (TROUPE_CLUSTER or CLUSTER_NAME, default troupe)"
    )
    g.add_argument(
        "--request-timeout", metavar="DURATION", help="give up on the cluster after this long (default 10s)"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``submit``, ``jobs``, ``dlq`` and ``stats`` to the ``troupe`` parser."""
    s = subparsers.add_parser("submit", help="submit a job")
    s.add_argument("type", help="job type: the processor that runs it, such as email")
    s.add_argument("--payload", metavar="JSON", help="the processor's input as JSON, or @file.json")
    s.add_argument("--priority", default="normal", help="1..10 (10 most urgent) or low, normal, high")
    s.add_argument("--delay", metavar="DURATION", help="run no sooner than this from now, such as 30s or 5m")
    s.add_argument("--at", metavar="TIME", help="run no sooner than this UNIX time or ISO time")
    s.add_argument("--retries", metavar="N", help="retries after the first attempt (default 3)")
    s.add_argument("--timeout", metavar="DURATION", help="how long one attempt may run (default 30s)")
    s.add_argument("--key", metavar="KEY", help="idempotency key: the same key returns the first job")
    s.add_argument(
        "--wait", action="store_true", help="wait until the job settles; exit 1 unless it succeeded"
    )
    s.add_argument(
        "--wait-timeout", metavar="DURATION", help="with --wait, stop waiting after this (default 60s)"
    )
    _common(s)
    s.set_defaults(func=cmd_submit)

    j = subparsers.add_parser("jobs", help="list jobs, show one, or cancel one")
    j.add_argument("id", nargs="?", help="show this job and its attempts")
    j.add_argument("--status", help=f"only jobs in this status: {', '.join(STATUSES)}")
    j.add_argument("--type", help="only jobs of this type")
    j.add_argument("--limit", metavar="N", help="at most N jobs (default 20)")
    j.add_argument("--offset", metavar="N", help="skip the first N matches (default 0)")
    j.add_argument("--cancel", metavar="ID", help="cancel this job")
    _common(j)
    j.set_defaults(func=cmd_jobs)

    d = subparsers.add_parser("dlq", help="the dead-letter queue: list, requeue or purge")
    dsub = d.add_subparsers(dest="action", required=True, metavar="ACTION")
    dl = dsub.add_parser("list", help="list dead-lettered jobs")
    dl.add_argument("--limit", metavar="N", help="at most N jobs (default 20)")
    dl.add_argument("--offset", metavar="N", help="skip the first N (default 0)")
    _common(dl)
    dr = dsub.add_parser("requeue", help="requeue dead jobs with a fresh retry budget (all if no IDS)")
    dr.add_argument("ids", nargs="*", metavar="ID")
    _common(dr)
    dp = dsub.add_parser("purge", help="delete dead jobs for good")
    dp.add_argument("ids", nargs="*", metavar="ID")
    dp.add_argument("--all", action="store_true", help="purge the whole dead-letter queue")
    _common(dp)
    d.set_defaults(func=cmd_dlq)

    st = subparsers.add_parser("stats", help="job counts by status and the queue's numbers")
    _common(st)
    st.set_defaults(func=cmd_stats)
