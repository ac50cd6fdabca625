"""The Python API of the job engine: submit, inspect, cancel and dead-letter jobs on a cluster.

How it works
------------
A :class:`JobClient` is a small node of its own: it opens a :class:`~transport.tcp.TcpTransport`
with a unique id (``client-<hex>``) that listens nowhere, dials nodes' ``NODE_LISTEN`` and sends
:class:`~actors.jobs.protocol.StoreRequest` commands (see :mod:`actors.jobs.machine`) to the
gateway actor ``jobs`` of one node, which relays them to the job store and sends the
:class:`~actors.jobs.protocol.StoreReply` back on the connection the client dialled. Every
node's transport accepts these plain TCP clients on ``NODE_LISTEN`` whatever ``TRANSPORT`` its
cluster uses (:mod:`transport.transports`), so the client never needs to know it.

With TLS (``tls=True``, or a CA file given; :func:`connect` and the CLI read ``TLS_ENABLED``,
``TLS_CA_FILE``, ``TLS_CERT_FILE``, ``TLS_KEY_FILE``) the client checks each node's certificate
against ``ca_file`` (the system store if None), host name included, and shows
``cert_file``/``key_file`` to nodes that require client certificates (``TLS_MUTUAL``).

``nodes`` are ``host:port`` (the node's id is learnt with one handshake) or ``id=host:port``.
A request goes to the node that answered last; when it does not answer within
``attempt_timeout``, cannot be connected to, or says the store is unavailable, the next node is
tried, until ``timeout`` seconds have passed. Resending is safe: every command is idempotent,
and job ids are made here (``uuid4``), so a resent submit never makes two jobs.

A command the store refuses comes back as ``{"error": "..."}`` and is raised as
:class:`JobError` with that one line; so are bad arguments caught before sending.

Use it from trio::

    async with JobClient(["127.0.0.1:7001", "127.0.0.1:7002"]) as jobs:
        job = await jobs.submit("email", {"to": "a@example.com"}, priority="high")
        print((await jobs.get(job["id"]))["status"])

or from plain code and notebooks through :func:`connect` (a :class:`SyncJobClient` running
its own trio loop in a background thread)::

    jobs = connect("127.0.0.1:7001")
    jobs.submit("noop"); jobs.stats(); jobs.close()
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import math
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import trio

from actors import ActorRef
from actors.jobs import Job, parse_priority
from actors.jobs.messages import GATEWAY
from actors.jobs.protocol import UNAVAILABLE, StoreReply, StoreRequest

from .codec import CodecError
from .events import EventLog
from .links import DIAL_ERRORS, Address, Refused, parse_address
from .tcp import TcpTransport
from .tls import TlsError, client_options_from_env, make_client_context, reason

T = TypeVar("T")
JobDict = dict[str, Any]

ACTIVE_STATUSES = ("PENDING", "RUNNING", "RETRYING")
"""Statuses of jobs that have not settled yet (they will still change by themselves)."""
SETTLED_STATUSES = ("SUCCESS", "FAILED", "DEAD", "CANCELLED")
"""Statuses a job stays in unless a user acts (requeue)."""


class JobError(Exception):
    """A refused command, a bad argument or an unreachable cluster (one-line message)."""


@dataclass(slots=True)
class _Target:
    address: Address
    node_id: str | None = None
    probing: trio.Lock = field(default_factory=trio.Lock)
    """One handshake at a time learns the node id (concurrent requests wait for it)."""

    def __str__(self) -> str:
        host, port = self.address
        return f"{host}:{port}"


@dataclass(slots=True)
class _Slot:
    event: trio.Event = field(default_factory=trio.Event)
    result: Any = None
    answered: bool = False


def parse_nodes(nodes: str | Iterable[str]) -> list[tuple[str | None, Address]]:
    """``"h:p"``, ``"id=h:p"``, comma-separated or a list of those -> ``[(id or None, (h, p))]``.

    Raises:
        JobError: an entry is not ``[id=]host:port``, or there is none.
    """
    items = [nodes] if isinstance(nodes, str) else builtins.list(nodes)
    out: list[tuple[str | None, Address]] = []
    for item in items:
        for part in str(item).split(","):
            text = part.strip()
            if not text:
                continue
            node_id, sep, addr = text.partition("=")
            if not sep:
                node_id, addr = "", text
            try:
                address = parse_address(addr)
            except ValueError as e:
                raise JobError(f"node {text!r}: {e}") from None
            if address[1] == 0:
                raise JobError(f"node {text!r}: port 0 is not a node's port")
            out.append((node_id.strip() or None, address))
    if not out:
        raise JobError("no node given: pass host:port of at least one node, such as 127.0.0.1:7001")
    return out


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class JobClient:
    """Talks to a job cluster's gateways (see the module docstring).

    Args:
        nodes: ``host:port`` or ``id=host:port`` of one or more nodes (a list or comma-separated).
        cluster: the cluster name the nodes were started with (``CLUSTER_NAME``).
        timeout: seconds one call may take in all, over every node tried.
        attempt_timeout: seconds to wait for one node's answer before trying the next.
        window: submissions in flight at once in :meth:`submit_many`.
        client_id: this client's node id (default ``client-<random hex>``).
        tls: talk TLS to the nodes (on by itself when ``ca_file`` is given).
        ca_file: the CA that signs the nodes' certificates (PEM; None: the system store).
        cert_file, key_file: this client's certificate and key, for nodes with mutual TLS.

    Raises:
        JobError: a bad argument, or a TLS file that does not load (one line).
    """

    def __init__(
        self,
        nodes: str | Iterable[str],
        cluster: str = "troupe",
        timeout: float = 10.0,
        *,
        attempt_timeout: float = 6.0,
        window: int = 64,
        client_id: str | None = None,
        tls: bool = False,
        ca_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
    ) -> None:
        if not timeout > 0 or not attempt_timeout > 0:
            raise JobError(
                f"timeout and attempt_timeout must be > 0 seconds, got {timeout}, {attempt_timeout}"
            )
        if window < 1:
            raise JobError(f"window must be >= 1, got {window}")
        self.targets = [_Target(addr, nid) for nid, addr in parse_nodes(nodes)]
        self.cluster = cluster
        self.timeout = float(timeout)
        self.attempt_timeout = float(attempt_timeout)
        self.window = window
        self.client_id = client_id or f"client-{uuid.uuid4().hex[:16]}"
        self.me = ActorRef(self.client_id, "client")
        ssl_client = None
        if tls or ca_file is not None:
            try:
                ssl_client = make_client_context(ca_file, cert_file, key_file)
            except TlsError as e:
                raise JobError(str(e)) from None
        self.transport = TcpTransport(
            self.client_id,
            cluster,
            None,  # listens nowhere: nodes answer on the connections it dials
            {t.node_id: t.address for t in self.targets if t.node_id},
            events=EventLog(keep=0),
            backoff_max=0.5,
            connect_timeout=2.0,
            max_frame=64 * 1024 * 1024,  # as a node's (transport.node_cli.NODE_MAX_FRAME)
            ssl_client=ssl_client,
            write_through=True,  # a lone request leaves at once, with no scheduler pass
        )
        self._current = 0
        self._next_req = 1
        self._waiting: dict[int, _Slot] = {}
        self._nursery_cm: Any = None
        self._nursery: trio.Nursery | None = None

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> JobClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Start the transport (``async with`` does it for you).

        Raises:
            JobError: the client cannot listen for answers.
        """
        if self._nursery is not None:
            return
        cm = trio.open_nursery()
        nursery = await cm.__aenter__()
        try:
            await self.transport.start(nursery, self._deliver)
        except BaseException as e:
            nursery.cancel_scope.cancel()
            await cm.__aexit__(type(e), e, e.__traceback__)
            if isinstance(e, OSError):
                raise JobError(f"the job client cannot listen for answers: {e}") from None
            raise
        self._nursery_cm, self._nursery = cm, nursery

    async def aclose(self) -> None:
        """Close connections; the client cannot be used afterwards."""
        if self._nursery is None:
            return
        nursery, cm = self._nursery, self._nursery_cm
        self._nursery = self._nursery_cm = None
        await self.transport.aclose()
        nursery.cancel_scope.cancel()
        await cm.__aexit__(None, None, None)

    def _deliver(self, src: ActorRef, dst: ActorRef, msg: Any) -> None:
        if isinstance(msg, StoreReply):
            slot = self._waiting.get(msg.req)
            if slot is not None and not slot.answered:
                slot.result, slot.answered = msg.result, True
                slot.event.set()

    # --- requests ------------------------------------------------------------------------

    async def _probe(self, target: _Target, timeout: float) -> str:
        """Learn the node id behind ``target`` with one handshake."""
        node_id: str | None = None
        with trio.move_on_after(min(timeout, 3.0)):
            try:
                node_id = await self.transport.identify(target.address)
            except Refused as e:
                raise JobError(f"{target} refused this client: {e}") from None
        if node_id is None:
            raise OSError(f"{target} did not answer the handshake in time")
        return node_id

    async def _node_id(self, target: _Target, timeout: float) -> str:
        if target.node_id is None:
            async with target.probing:
                if target.node_id is None:
                    target.node_id = await self._probe(target, timeout)
        self.transport.add_peer(target.node_id, target.address)
        return target.node_id

    async def request(self, command: Mapping[str, Any]) -> dict[str, Any]:
        """Send one store command (see :mod:`actors.jobs.machine`) and return its result.

        Raises:
            JobError: the store refused it (its one-line error), or no node answered within
                ``timeout`` seconds.
        """
        if self._nursery is None:
            raise JobError("the job client is not open: use 'async with JobClient(...)' or await open()")
        cmd = dict(command)
        op = cmd.get("op", "?")
        deadline = trio.current_time() + self.timeout
        problems: dict[str, str] = {}
        tried = 0
        while True:
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                detail = "; ".join(f"{k}: {v}" for k, v in problems.items()) or "no answer"
                raise JobError(f"{op}: no node answered within {self.timeout:g} s ({_one_line(detail)})")
            if tried and tried % len(self.targets) == 0:
                await trio.sleep(min(0.2, max(0.0, remaining)))
            target = self.targets[self._current % len(self.targets)]
            tried += 1
            try:
                node_id = await self._node_id(target, remaining)
            except DIAL_ERRORS as e:
                problems[str(target)] = _one_line(reason(e))
                self._current += 1
                continue
            result = await self._ask(node_id, cmd, min(remaining, self.attempt_timeout))
            if result is None:
                problems[str(target)] = f"no answer from {node_id} in time"
                self._current += 1
                continue
            if not isinstance(result, dict):
                problems[str(target)] = f"malformed answer {type(result).__name__}"
                self._current += 1
                continue
            error = result.get("error")
            if error is not None:
                text = _one_line(str(error))
                if text.startswith(UNAVAILABLE) or text.startswith("store error"):
                    problems[str(target)] = text
                    self._current += 1
                    continue
                raise JobError(text)
            return result

    async def _ask(self, node_id: str, command: dict[str, Any], wait: float) -> Any:
        """Send ``command`` to ``node_id``'s gateway; its result, or None if none came in time
        (or the connection to it could not be made)."""
        req = self._next_req
        self._next_req += 1
        slot = self._waiting[req] = _Slot()
        try:
            try:
                self.transport.send(self.me, ActorRef(node_id, GATEWAY), StoreRequest(req, command))
            except CodecError as e:
                op = command.get("op", "?")
                raise JobError(f"{op}: cannot send this command: {_one_line(str(e))}") from None
            start = trio.current_time()
            deadline = start + wait
            with trio.move_on_at(min(deadline, start + 1.0)):
                await slot.event.wait()
            # after a second, a node we cannot connect to is given up, not waited for in full
            while not slot.answered and trio.current_time() < deadline:
                if node_id not in self.transport.connected_peers():
                    return None
                with trio.move_on_at(min(deadline, trio.current_time() + 0.25)):
                    await slot.event.wait()
            return slot.result if slot.answered else None
        finally:
            self._waiting.pop(req, None)

    # --- the API -------------------------------------------------------------------------

    def new_job(
        self,
        type: str,
        payload: Any = None,
        *,
        priority: int | str = "normal",
        delay: float | None = None,
        scheduled_at: float | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        id: str | None = None,
    ) -> JobDict:
        """The plain record of a new job (what :meth:`submit` sends), checked here.

        Raises:
            JobError: a field is not allowed (one line naming it).
        """
        return new_job(
            type,
            payload,
            priority=priority,
            delay=delay,
            scheduled_at=scheduled_at,
            max_retries=max_retries,
            timeout=timeout,
            idempotency_key=idempotency_key,
            id=id,
        )

    async def submit(
        self,
        type: str,
        payload: Any = None,
        *,
        priority: int | str = "normal",
        delay: float | None = None,
        scheduled_at: float | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        id: str | None = None,
    ) -> JobDict:
        """Submit one job; returns its record (``status`` ``PENDING``, ``id``, ...).

        Args:
            type: the job type (the processor that runs it).
            payload: the processor's input (plain data: dicts, lists, str, numbers, bool, None).
            priority: 1..10 (10 most urgent) or ``"low"``, ``"normal"``, ``"high"``.
            delay: seconds from now before it may run; or ``scheduled_at``, a UNIX time.
            max_retries: retries after the first attempt (default 3).
            timeout: seconds one attempt may run (default 30).
            idempotency_key: a second submit with the same key returns the first job.
            id: the job's id (default: a new UUID); a second submit with the same id returns
                the first job, so a submit whose answer was lost can be sent again.

        Raises:
            JobError: a bad argument or a refused submit (one line), or no node answered.
        """
        job = self.new_job(
            type,
            payload,
            priority=priority,
            delay=delay,
            scheduled_at=scheduled_at,
            max_retries=max_retries,
            timeout=timeout,
            idempotency_key=idempotency_key,
            id=id,
        )
        result = await self.request({"op": "submit", "job": job})
        out: JobDict = result["job"]
        return out

    async def submit_many(self, specs: Iterable[Mapping[str, Any]]) -> builtins.list[JobDict]:
        """Submit many jobs with up to ``window`` requests in flight; their records, in order.

        Each spec holds :meth:`submit`'s arguments by name (``{"type": "email", "payload": ...}``).
        Every spec is checked before anything is sent.

        Raises:
            JobError: a bad spec (``job N: ...``, nothing sent) or the first refused submit.
        """
        jobs: builtins.list[JobDict] = []
        for i, spec in enumerate(specs):
            try:
                jobs.append(self.new_job(**dict(spec)))
            except TypeError as e:
                raise JobError(f"job {i}: {_one_line(str(e))}") from None
            except JobError as e:
                raise JobError(f"job {i}: {e}") from None
        out: builtins.list[JobDict | None] = [None] * len(jobs)
        limiter = trio.CapacityLimiter(self.window)

        async def one(i: int) -> None:
            async with limiter:
                result = await self.request({"op": "submit", "job": jobs[i]})
                out[i] = result["job"]

        try:
            async with trio.open_nursery() as nursery:
                for i in range(len(jobs)):
                    nursery.start_soon(one, i)
        except BaseExceptionGroup as group:
            first = group.exceptions[0]
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None
        return [j for j in out if j is not None]

    async def get(self, id: str) -> JobDict | None:
        """The job ``id``'s record, or None if there is no such job."""
        result = await self.request({"op": "get", "id": _check_id(id)})
        job: JobDict | None = result.get("job")
        return job

    async def list(
        self, status: str | None = None, type: str | None = None, limit: int = 100, offset: int = 0
    ) -> tuple[builtins.list[JobDict], int]:
        """Jobs in submission order, filtered by ``status`` and ``type``: ``(page, total)``."""
        cmd: dict[str, Any] = {"op": "list", "limit": limit, "offset": offset}
        if status is not None:
            cmd["status"] = status.strip().upper()
        if type is not None:
            cmd["type"] = type
        result = await self.request(cmd)
        return builtins.list(result["jobs"]), int(result["total"])

    async def cancel(self, id: str, reason: str | None = None) -> JobDict:
        """Cancel a PENDING, RUNNING or RETRYING job; its record, now CANCELLED.

        Raises:
            JobError: no such job, or it has already finished.
        """
        cmd: dict[str, Any] = {"op": "cancel", "id": _check_id(id), "at": time.time()}
        if reason:
            cmd["reason"] = reason
        result = await self.request(cmd)
        job: JobDict = result["job"]
        return job

    async def dlq_list(self, limit: int = 100, offset: int = 0) -> tuple[builtins.list[JobDict], int]:
        """Dead-lettered jobs, oldest submission first: ``(page, total)``."""
        result = await self.request({"op": "dlq_list", "limit": limit, "offset": offset})
        return builtins.list(result["jobs"]), int(result["total"])

    async def dlq_requeue(self, ids: Sequence[str] | None = None) -> builtins.list[str]:
        """Requeue dead jobs (all of them if ``ids`` is None) with a fresh retry budget; the ids
        requeued (ids not in the dead-letter queue are skipped)."""
        cmd: dict[str, Any] = {"op": "dlq_requeue", "at": time.time()}
        if ids is not None:
            cmd["ids"] = [_check_id(i) for i in ids]
        result = await self.request(cmd)
        return [str(i) for i in result.get("requeued", [])]

    async def dlq_purge(self, ids: Sequence[str] | None = None) -> builtins.list[str]:
        """Delete dead jobs for good (all of them if ``ids`` is None); the ids deleted."""
        cmd: dict[str, Any] = {"op": "dlq_purge"}
        if ids is not None:
            cmd["ids"] = [_check_id(i) for i in ids]
        result = await self.request(cmd)
        return [str(i) for i in result.get("ids", [])]

    async def stats(self) -> dict[str, Any]:
        """Counts: ``by_status``, ``ready``, ``delayed``, ``running``, ``retrying``, ``dlq``,
        ``total`` and the scheduler ``epoch``."""
        return await self.request({"op": "stats"})

    async def wait_idle(self, timeout: float = 60.0, poll: float = 0.25) -> dict[str, Any]:
        """Poll :meth:`stats` until no job is PENDING, RUNNING or RETRYING; the last stats.

        Delayed jobs count as pending, so this waits for them too.

        Raises:
            JobError: jobs were still active after ``timeout`` seconds.
        """
        deadline = trio.current_time() + timeout
        while True:
            stats = await self.stats()
            active = sum(int(stats["by_status"].get(s, 0)) for s in ACTIVE_STATUSES)
            if active == 0:
                return stats
            if trio.current_time() >= deadline:
                raise JobError(f"{active} jobs still active after {timeout:g} s")
            await trio.sleep(poll)


def _check_id(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise JobError(f"job id must be a non-empty string, got {value!r}")
    return value.strip()


def new_job(type: str, payload: Any = None, **options: Any) -> JobDict:
    """A new PENDING job as the plain record a ``submit`` command carries (see :class:`Job`);
    takes :func:`make_job`'s arguments. Without ``max_retries`` the record's is None: the node's
    ``MAX_RETRIES`` decides (filled in by its gateway).

    Raises:
        JobError: a field is not allowed (one line naming it).
    """
    from actors.jobs._plain import job_to_plain

    plain = job_to_plain(make_job(type, payload, **options))
    if options.get("max_retries") is None:
        plain["max_retries"] = None
    return plain


def make_job(
    type: str,
    payload: Any = None,
    *,
    priority: int | str = "normal",
    delay: float | None = None,
    scheduled_at: float | None = None,
    max_retries: int | None = None,
    timeout: float | None = None,
    idempotency_key: str | None = None,
    id: str | None = None,
    now: float | None = None,
) -> Job:
    """:func:`new_job`'s job itself, checked, with ``max_retries`` 3 if None (a producer that
    writes to the store itself, :class:`~transport.redis_producer.RedisProducer`, submits it
    as it is, without a round trip through the plain record).

    Raises:
        JobError: a field is not allowed (one line naming it).
    """
    if not isinstance(type, str) or not type.strip():
        raise JobError(f"job type must be a non-empty string such as 'email', got {type!r}")
    at = time.time() if now is None else now
    if delay is not None and scheduled_at is not None:
        raise JobError("give delay or scheduled_at, not both")
    for name, value in (("delay", delay), ("scheduled_at", scheduled_at), ("timeout", timeout)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        ):
            raise JobError(f"{name} must be a number of seconds, got {value!r}")
    if delay is not None and delay < 0:
        raise JobError(f"delay must be >= 0 seconds, got {delay!r}")
    if max_retries is not None and (
        isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0
    ):
        raise JobError(f"max_retries must be an integer >= 0, got {max_retries!r}")
    if idempotency_key is not None and (not isinstance(idempotency_key, str) or not idempotency_key):
        raise JobError(f"idempotency_key must be a non-empty string, got {idempotency_key!r}")
    try:
        level = parse_priority(priority)
        job = Job.create(
            id or uuid.uuid4().hex,
            type.strip(),
            payload,
            now=at,
            priority=level,
            max_retries=3 if max_retries is None else max_retries,
            timeout_seconds=30.0 if timeout is None else float(timeout),
            scheduled_at=at + delay if delay is not None else scheduled_at,
            idempotency_key=idempotency_key,
        )
    except ValueError as e:
        raise JobError(_one_line(str(e))) from None
    return job


# --- the synchronous facade ------------------------------------------------------------------


class SyncJobClient:
    """:class:`JobClient` for code that is not trio (scripts, notebooks): the same methods,
    blocking. A background thread runs the client's own trio loop, so it also works where an
    asyncio loop already runs (Jupyter). Close it, or use it as a context manager.
    """

    def __init__(self, nodes: str | Iterable[str], cluster: str = "troupe", timeout: float = 10.0, **kw: Any):
        self._client = JobClient(nodes, cluster, timeout, **kw)
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._thread_main, name="troupe-job-client", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def _thread_main(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as e:  # reported to the constructor, or lost at close
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        async with self._client:
            self._token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            self._ready.set()
            await self._stop.wait()

    def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
        if self._token is None or self._stop is None or self._stop.is_set():
            raise JobError("the job client is closed")
        return trio.from_thread.run(functools.partial(fn, *args, **kw), trio_token=self._token)

    @property
    def client_id(self) -> str:
        return self._client.client_id

    def request(self, command: Mapping[str, Any]) -> dict[str, Any]:
        """See :meth:`JobClient.request`."""
        return self._call(self._client.request, command)

    def submit(self, type: str, payload: Any = None, **kw: Any) -> JobDict:
        """See :meth:`JobClient.submit`."""
        return self._call(self._client.submit, type, payload, **kw)

    def submit_many(self, specs: Iterable[Mapping[str, Any]]) -> builtins.list[JobDict]:
        """See :meth:`JobClient.submit_many`."""
        return self._call(self._client.submit_many, builtins.list(specs))

    def get(self, id: str) -> JobDict | None:
        """See :meth:`JobClient.get`."""
        return self._call(self._client.get, id)

    def list(
        self, status: str | None = None, type: str | None = None, limit: int = 100, offset: int = 0
    ) -> tuple[builtins.list[JobDict], int]:
        """See :meth:`JobClient.list`."""
        return self._call(self._client.list, status, type, limit, offset)

    def cancel(self, id: str, reason: str | None = None) -> JobDict:
        """See :meth:`JobClient.cancel`."""
        return self._call(self._client.cancel, id, reason)

    def dlq_list(self, limit: int = 100, offset: int = 0) -> tuple[builtins.list[JobDict], int]:
        """See :meth:`JobClient.dlq_list`."""
        return self._call(self._client.dlq_list, limit, offset)

    def dlq_requeue(self, ids: Sequence[str] | None = None) -> builtins.list[str]:
        """See :meth:`JobClient.dlq_requeue`."""
        return self._call(self._client.dlq_requeue, ids)

    def dlq_purge(self, ids: Sequence[str] | None = None) -> builtins.list[str]:
        """See :meth:`JobClient.dlq_purge`."""
        return self._call(self._client.dlq_purge, ids)

    def stats(self) -> dict[str, Any]:
        """See :meth:`JobClient.stats`."""
        return self._call(self._client.stats)

    def wait_idle(self, timeout: float = 60.0, poll: float = 0.25) -> dict[str, Any]:
        """See :meth:`JobClient.wait_idle`."""
        return self._call(self._client.wait_idle, timeout, poll)

    def close(self) -> None:
        """Close the connections and stop the background thread (safe to call twice)."""
        if self._token is not None and self._stop is not None and not self._stop.is_set():
            stop = self._stop
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(stop.set, trio_token=self._token)
        self._thread.join(10)

    def __enter__(self) -> SyncJobClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_TLS_ARGS = ("tls", "ca_file", "cert_file", "key_file")


def tls_options(env: Mapping[str, str]) -> dict[str, Any]:
    """:class:`JobClient`'s TLS arguments from ``TLS_ENABLED``, ``TLS_CA_FILE``,
    ``TLS_CERT_FILE`` and ``TLS_KEY_FILE`` in ``env`` (``{}`` when TLS is off).

    Raises:
        JobError: ``TLS_ENABLED`` is not true or false.
    """
    try:
        return client_options_from_env(env)
    except TlsError as e:
        raise JobError(str(e)) from None


def connect(
    nodes: str | Iterable[str],
    cluster: str = "troupe",
    timeout: float = 10.0,
    env: Mapping[str, str] | None = None,
    **kw: Any,
) -> SyncJobClient:
    """A blocking :class:`SyncJobClient` (for scripts and notebooks); see :class:`JobClient`.

    Unless TLS arguments are given, they come from the ``TLS_*`` variables of ``env`` (default:
    the process environment), as for ``troupe node``.
    """
    if not any(k in kw for k in _TLS_ARGS):
        kw.update(tls_options(os.environ if env is None else env))
    return SyncJobClient(nodes, cluster, timeout, **kw)
