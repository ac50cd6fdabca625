"""The shared job store: every job machine command as one Lua script run atomically by Redis.

How it works
------------
:class:`RedisJobStore` answers exactly what :class:`~actors.jobs.machine.JobMachine` would, so
several nodes can share one queue: Redis runs scripts one at a time, and each command reads and
writes the keys below inside one script. Python checks every field first, with the machine's
own readers, and sends only well-formed arguments; Lua never parses user data.

Layout (``P`` is the ``prefix``, ``troupe`` by default; the script reaches keys it does not
declare, so the store needs one Redis server, not a Redis Cluster):

================== ===== ======================================================================
key                type  holds
================== ===== ======================================================================
``P:job:<id>``     hash  the job's fields by name: ``payload`` is Python's msgpack of it,
                         ``attempts`` a msgpack array of ``[number, worker, started, finished,
                         error, outcome]`` (``false`` for None), ``scheduled_at`` and
                         ``lease_expires_at`` are ``""`` for None, ``idempotency_key`` is absent
                         for None; plus ``seq`` (submission order), ``q`` (its place in the
                         queue) and ``r`` (``ops`` when it became ready)
``P:order``        zset  every job by ``seq`` (``list`` and its ``total``)
``P:st:<STATUS>``  zset  the jobs of each status but RUNNING by ``seq``; ``P:st:DEAD`` is the DLQ
``P:type:<type>``  zset  the jobs of each type by ``seq`` (``list`` filtered by type)
``P:ready``        zset  ready jobs, score ``(10 - priority) * 2**40 + q``: priority, then FIFO
``P:delayed``      zset  delayed jobs by ``scheduled_at`` (ties by ``q``, as in the machine)
``P:retrying``     zset  RETRYING jobs by ``scheduled_at``
``P:running``      zset  RUNNING jobs by ``lease_expires_at`` (listed by ``seq`` on demand)
``P:idem``         hash  idempotency key -> job id
``P:meta``         hash  ``ops``, ``seq``, ``qseq`` (counters) and ``epoch`` (the fencing token)
================== ===== ======================================================================

The hot path costs few Redis calls inside the script: a submit 5, a dispatch 5 and a report 4
per job, a ``ready`` 1 per job listed; a submit through the fast lane (``lane``) adds 1 to look
at the head of the ready queue and, if it dispatches the job, writes it RUNNING at once (one
call fewer than a plain submit: it never enters the ready and PENDING sets).

Numbers stay exact. A time enters as Python's ``repr`` of the float and is stored as that very
string; a time Lua computes (a retry's ``scheduled_at``) is written with ``%.17g``; attempts
go through ``cmsgpack``, which keeps doubles. Scores stay below ``2**53``, so they are exact
doubles (``q`` may reach ``2**40``, a trillion queue entries).

Speed: a batch is cut into chunks of ``chunk`` commands; each chunk is **one** script call that
applies its commands in order (so each chunk is atomic as a whole), and every chunk of a batch
goes in one pipelined round trip. The counters are read once per chunk and written back once.
On Redis 7 and later the script is a Redis Functions library, loaded once and called with
``FCALL`` (its 40-odd Lua functions are built at load, not on every call: about 15 µs less per
call); older servers get the same code by ``EVALSHA``.
With ``appendonly yes`` and ``appendfsync always`` Redis fsyncs the append-only file before it
replies, so an acknowledged command survives a crash of Redis.

Retry jitter is **exact**: the script reimplements the machine's jitter generator (FNV-1a of
``"<id>:<attempts>"``, then one splitmix64 draw) in 16-bit limbs, since Lua numbers are
doubles, and applies :class:`~actors.jobs.RetryPolicy`'s arithmetic in the same order (the
policy's numbers travel with every chunk). Failed reports and lease expiries get the very
``scheduled_at`` the machine computes (``pow`` for exponential growth is the C library's, as in
Python, so Redis and the client should run on the same libm for bit-for-bit equality).

As in the machine, ``ops`` (and with it ``mark``) counts every command, malformed ones too: a
command refused in Python still goes to the script as a ``noop``. One deliberate difference:
a payload msgpack cannot carry is refused (``submit: ... payload is not plain data``); commands
that crossed the codec never carry one.

Failures: an unreachable server, a dropped connection, a transient error reply (``LOADING``,
``BUSY``, ``OOM``, ...) or a refused login raise :class:`~transport.stores.base.StoreUnavailable`
in one line. A chunk whose reply was lost may have applied; resending it is safe, as every
command is idempotent. A failing script (a bug) raises
:class:`~transport.redis_conn.RedisReplyError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgpack

from actors.jobs import PENDING, STATUSES, Job, RetryPolicy
from actors.jobs._plain import job_from_plain, job_to_plain
from actors.jobs._transitions import Dispatched, apply
from actors.jobs.machine import MAX_PAGE, OPS, CommandError, _int, _lane, _num, _opt_str, _page, _pairs, _str
from actors.jobs.messages import Ticket

from ..redis_conn import Command, Flight, Function, RedisConn, RedisReplyError, RedisUnavailable, Script
from ._redis_lua import LUA as _LUA
from ._redis_lua import NAME as _NAME
from ._redis_lua import library
from .base import StoreUnavailable

DEFAULT_CHUNK: Final = 256
"""Commands per script call (one atomic unit; every chunk of a batch shares one round trip)."""

UNAVAILABLE_ERRORS: Final = frozenset(
    {
        "LOADING",
        "BUSY",
        "OOM",
        "MASTERDOWN",
        "TRYAGAIN",
        "MISCONF",
        "READONLY",
        "WRONGPASS",
        "NOAUTH",
        "NOPERM",
    }
)
"""Error reply codes that mean "not now" or "not for you": answered with StoreUnavailable."""

_MAX_OFFSET: Final = 1 << 53
_LEASE_LOST: Final = "lease lost: the attempt is no longer this worker's"

Tokens = list[str | bytes]
Decoder = Callable[[Any], dict[str, Any]]


class _Prepared:
    """A decoder with work (``prepare``) that :meth:`RedisJobStore.execute` does while Redis
    runs the script, instead of after its reply: a result the reply only selects among."""

    __slots__ = ("_decode", "_prepare", "_ready")

    def __init__(self, prepare: Callable[[], None], decode: Decoder) -> None:
        self._prepare = prepare
        self._decode = decode
        self._ready = False

    def prepare(self) -> None:
        if not self._ready:
            self._ready = True
            self._prepare()

    def __call__(self, reply: Any) -> dict[str, Any]:
        self.prepare()
        return self._decode(reply)


_SCRIPT: Final = Script(_LUA)
_FUNCTION: Final = Function(_NAME, library(_NAME))


class RedisJobStore:
    """The job queue in Redis, shared by every node that points at it (see the module docstring).

    Args:
        host, port, db, password: where Redis listens and how to log in.
        prefix: the first part of every key (several queues can share one database).
        policy: retry backoff for failed jobs (the machine's default if None); every node
            sharing a queue should use the same one.
        chunk: commands per script call (each call is atomic and blocks Redis while it runs).
        timeout: seconds a batch may wait for Redis before it counts as unavailable.
        functions: call the code as a Redis Functions library (``FCALL``) or as a script
            (``EVALSHA``); None (the default) uses functions when the server has them.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        db: int = 0,
        password: str | None = None,
        prefix: str = "troupe",
        policy: RetryPolicy | None = None,
        *,
        chunk: int = DEFAULT_CHUNK,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        functions: bool | None = None,
    ) -> None:
        if not prefix:
            raise ValueError("the redis job store needs a non-empty key prefix, e.g. 'troupe'")
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1 command per script call, got {chunk}")
        self.policy = policy or RetryPolicy()
        self.prefix = prefix
        self.chunk = chunk
        self._conn = RedisConn(host, port, db, password, connect_timeout=connect_timeout, timeout=timeout)
        self._functions = functions
        self._code: Script | Function = _SCRIPT
        self._open = False
        p = self.policy
        self._header: Tokens = [
            p.kind,
            repr(float(p.base_delay)),
            repr(float(p.max_delay)),
            repr(float(p.multiplier)),
            repr(float(p.jitter_factor)),
        ]

    @property
    def address(self) -> str:
        """``host:port`` of the Redis server."""
        return self._conn.address

    async def open(self) -> None:
        """Connect and load the script (later calls reconnect by themselves).

        Raises:
            StoreUnavailable: Redis cannot be reached (one line naming ``host:port``).
        """
        try:
            await self._conn.connect()
            self._code = _SCRIPT
            if self._functions is not False:
                loaded = await self._conn.pipeline([_FUNCTION.load()], raise_errors=False)
                if not isinstance(loaded[0], RedisReplyError):
                    self._code = _FUNCTION
                elif self._functions or not _lacks_functions(loaded[0]):
                    raise loaded[0]
            if self._code is _SCRIPT:
                await self._conn.execute(*_SCRIPT.load())
            self._conn.register(self._code)
            self._open = True
        except RedisUnavailable as e:
            raise StoreUnavailable(f"job store: {e}") from None
        except RedisReplyError as e:
            if e.code in UNAVAILABLE_ERRORS:
                raise StoreUnavailable(f"job store: redis at {self.address} answered {e}") from None
            raise

    async def close(self) -> None:
        """Close the connection; :meth:`execute` then refuses work until :meth:`open` again."""
        self._open = False
        await self._conn.aclose()

    async def execute(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apply ``commands`` in order and return one machine-shaped result per command.

        Raises:
            StoreUnavailable: the store is not open, or Redis is unreachable, dropped the
                connection or answered "not now" (``LOADING``, ``BUSY``, ...); resend later.
            RedisReplyError: the script itself failed (a bug, not bad input).
        """
        if not self._open:
            raise StoreUnavailable(f"job store: redis store at {self.address} is not open; call open() first")
        if not commands:
            return []
        encoded, calls = self._calls(commands)
        prepared = [decode for _, decode in encoded if isinstance(decode, _Prepared)]

        def while_waiting() -> None:
            for decode in prepared:
                decode.prepare()

        pipeline = self._conn.pipeline(calls, while_waiting=while_waiting if prepared else None)
        return self._results(encoded, await self._replies(pipeline))

    def begin(self, commands: list[dict[str, Any]]) -> Begun | None:
        """Send ``commands`` to Redis now, from synchronous code, if the connection is open and
        free (None, with nothing sent, otherwise: use :meth:`execute`). The caller owes the
        result a :meth:`finish`, which answers as :meth:`execute` would have."""
        if not self._open or not commands:
            return None
        encoded, calls = self._calls(commands)
        flight = self._conn.begin(calls)
        if flight is None:
            return None
        for _, decode in encoded:  # while Redis works
            if isinstance(decode, _Prepared):
                decode.prepare()
        return Begun(encoded, flight)

    async def finish(self, begun: Begun) -> list[dict[str, Any]]:
        """The results of the commands :meth:`begin` sent.

        Raises:
            StoreUnavailable, RedisReplyError: as :meth:`execute`.
        """
        return self._results(begun.encoded, await self._replies(self._conn.finish(begun.flight)))

    def _calls(self, commands: list[dict[str, Any]]) -> tuple[list[tuple[Tokens, Decoder]], list[Command]]:
        """Each command's arguments and decoder, and the script calls carrying them (one per chunk)."""
        encoded = [_encode(c) for c in commands]
        calls: list[Command] = []
        for start in range(0, len(encoded), self.chunk):
            part = encoded[start : start + self.chunk]
            args: Tokens = [*self._header, str(len(part))]
            for tokens, _ in part:
                args.extend(tokens)
            calls.append(self._code.command((self.prefix,), args))
        return encoded, calls

    async def _replies(self, call: Awaitable[list[Any]]) -> list[Any]:
        try:
            return await call
        except RedisUnavailable as e:
            raise StoreUnavailable(f"job store: {e}") from None
        except RedisReplyError as e:
            if e.code in UNAVAILABLE_ERRORS:
                raise StoreUnavailable(f"job store: redis at {self.address} answered {e}") from None
            raise RedisReplyError(f"job store: redis at {self.address}: {e}") from None

    def _results(self, encoded: list[tuple[Tokens, Decoder]], replies: list[Any]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for start, reply in zip(range(0, len(encoded), self.chunk), replies):
            for (_, decode), answer in zip(encoded[start : start + self.chunk], reply):
                results.append(decode(answer))
        return results


class Begun:
    """Commands :meth:`RedisJobStore.begin` sent, owed a :meth:`RedisJobStore.finish`."""

    __slots__ = ("encoded", "flight")

    def __init__(self, encoded: list[tuple[Tokens, Decoder]], flight: Flight) -> None:
        self.encoded = encoded
        self.flight = flight


def _lacks_functions(error: RedisReplyError) -> bool:
    """True if ``error`` answered ``FUNCTION LOAD`` because the server predates Redis 7."""
    return str(error).lower().startswith("err unknown command")


# --- commands to script arguments, replies to results ----------------------------------------


def _encode(command: Any) -> tuple[Tokens, Decoder]:
    """The script arguments for one command and the function turning its reply into a result."""
    if not isinstance(command, dict):
        return _rejected({"error": f"command must be a map, got {type(command).__name__}"})
    op = command.get("op")
    encoder = _ENCODERS.get(op) if isinstance(op, str) else None
    if encoder is None:
        return _rejected({"error": f"unknown command op {op!r}: use one of {', '.join(OPS)}"})
    try:
        return encoder(command)
    except CommandError as e:
        return _rejected({"error": f"{op}: {e}"})


def _rejected(result: dict[str, Any]) -> tuple[Tokens, Decoder]:
    """A command refused before Redis: it still counts in ``ops``, as in the machine."""
    return ["noop"], lambda _: result


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _time(value: float) -> str:
    return repr(float(value))


def _first_error(*checks: Callable[[], object]) -> str | None:
    """The message of the first check that raises CommandError, or None if all pass."""
    for check in checks:
        try:
            check()
        except CommandError as e:
            return str(e)
    return None


def _submit(cmd: dict[str, Any]) -> tuple[Tokens, Decoder]:
    raw = cmd.get("job")
    if isinstance(raw, Job):  # checked when it was made (a producer in this process); immutable
        job = raw
    else:
        try:
            job = job_from_plain(raw)
        except ValueError as e:
            raise CommandError(str(e)) from None
    if job.status != PENDING or job.attempts or job.lease_expires_at is not None:
        raise CommandError(f"job {job.id!r}: a new job must be PENDING with no attempts")
    try:
        payload = msgpack.packb(job.payload, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as e:
        raise CommandError(f"job {job.id!r}: payload is not plain data ({e})") from None
    fields: Tokens = [
        "id", job.id, "type", job.type, "payload", payload, "priority", str(job.priority),
        "max_retries", str(job.max_retries), "timeout_seconds", _time(job.timeout_seconds),
        "status", PENDING, "attempts", b"\x90", "created_at", _time(job.created_at),
        "updated_at", _time(job.updated_at), "attempts_at_requeue", "0", "requeue_count", "0",
    ]  # fmt: skip
    sched = "" if job.scheduled_at is None else _time(job.scheduled_at)
    fields += ["scheduled_at", sched, "lease_expires_at", ""]
    if job.idempotency_key is not None:
        fields += ["idempotency_key", job.idempotency_key]
    tokens: Tokens = ["submit", job.id, job.type, job.idempotency_key or "", str(job.priority), sched]
    tokens += [_time(job.updated_at), str(len(fields)), *fields]
    lane = _lane(cmd)
    direct = cmd.get("direct", False)
    if not isinstance(direct, bool):
        raise CommandError(f"direct must be true or false, got {type(direct).__name__}")
    if direct and lane is not None:
        raise CommandError("a submit takes either lane (a gateway's) or direct (a producer's), not both")
    if direct:
        tokens += ["2", _time(job.updated_at)]
    elif lane is None:
        tokens.append("0")
    else:
        tokens += ["1", str(lane["epoch"]), _time(lane["at"]), _time(lane["lease_until"]), lane["worker"]]
    made: dict[str, dict[str, Any]] = {}

    def prepare() -> None:
        # The job as created and, for the lane, as dispatched: the machine's transitions,
        # built while the script runs (they are what it writes).
        made["plain"] = job_to_plain(job)
        if lane is not None:
            started = Dispatched(worker=lane["worker"], at=lane["at"], lease_expires_at=lane["lease_until"])
            made["running"] = job_to_plain(apply(job, started))

    def decode(reply: Any) -> dict[str, Any]:
        if reply[0] == 0:
            return {"job": _job(reply[1]), "created": False}
        plain = made["plain"]
        if len(reply) == 1:
            return {"job": plain, "created": True}
        outcome, epoch = _LANE_OUTCOMES[reply[1]], int(reply[2])
        if outcome != "dispatched":
            return {"job": plain, "created": True, "lane": outcome, "epoch": epoch}
        if direct:  # the script chose the worker and its lease
            worker, until = _text(reply[4]), float(reply[5])
            running = apply(job, Dispatched(worker=worker, at=job.updated_at, lease_expires_at=until))
            made["running"] = job_to_plain(running)
        result = {
            "job": made["running"],
            "created": True,
            "lane": outcome,
            "epoch": epoch,
            "left_best": reply[3] or None,
        }
        if direct:
            result["worker"] = made["running"]["attempts"][-1]["worker"]
        return result

    return tokens, _Prepared(prepare, decode)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _lane_open(cmd: dict[str, Any]) -> tuple[Tokens, Decoder]:
    worker, free, lease = _str(cmd, "worker"), _int(cmd, "free"), _num(cmd, "lease")
    alive = _num(cmd, "alive_until")
    if free < 0 or lease <= 0:
        raise CommandError(f"lane_open needs free >= 0 and lease > 0, got {free} and {lease}")
    return ["lane_open", worker, str(free), _time(lease), _time(alive)], lambda r: {"ok": bool(r)}


def _lane_credit(cmd: dict[str, Any]) -> tuple[Tokens, Decoder]:
    worker, freed, slots = _str(cmd, "worker"), _int(cmd, "freed"), _int(cmd, "slots")
    alive = _num(cmd, "alive_until")
    tokens: Tokens = ["lane_credit", worker, str(freed), str(slots), _time(alive)]
    return tokens, lambda r: {"ok": bool(r)}  # not ok: no such registration (open it again)


def _lane_close(cmd: dict[str, Any]) -> tuple[Tokens, Decoder]:
    return ["lane_close", _str(cmd, "worker")], lambda r: {"ok": bool(r)}


_LANE_OUTCOMES: Final = ("fenced", "queued", "dispatched")
"""What the script's fast-lane code (0, 1, 2) means in a submit's result."""


def _get(cmd: dict[str, Any]) -> tuple[Tokens, Decoder]:
    return ["get", _str(cmd, "id")], lambda r: {"job": None if r is None else _job(r)}


def _list(cmd: dict[str, Any]) -> tuple[Tokens, Decoder]:
    status = _opt_str(cmd, "status")
    if status is not None and status not in STATUSES:
        raise CommandError(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
    jtype = _opt_str(cmd, "type")
    limit, offset = _page(cmd)
    tokens: Tokens = ["list", status or "", _flag(jtype is not None), jtype or "", str(limit)]
    tokens.append(str(min(offset, _MAX_OFFSET)))
    return tokens, lambda r: {"jobs": [_job(x) for x in r[1:]], "total": r[0]}


def _cancel(cmd: dict[str, Any]) -> tuple[Tokens, Decoder]:
    jid = _str(cmd, "id")
    bad = _first_error(lambda: _num(cmd, "at"), lambda: _opt_str(cmd, "reason"))
    at = _time(_num(cmd, "at")) if bad is None else ""
    reason = (_opt_str(cmd, "reason") or "") if bad is None else ""

    def decode(reply: Any) -> dict[str, Any]:
        what = reply[0]
        if what == b"ok":
            return {"job": _job(reply[1])}
        if what == b"nojob":
            return {"error": f"cancel: no job {jid!r}"}
        if what == b"bad":
            return {"error": f"cancel: {bad}"}
        return {"error": f"cancel: job {jid!r} is {reply[1].decode()} and cannot be cancelled"}

    return ["cancel", jid, _flag(bad is None), at, reason], decode


def _ready(cmd: dict[str, Any]) -> tuple[Tokens, Decoder]:
    at = _num(cmd, "at")
    limit = _int(cmd, "limit")
    if not 0 < limit <= MAX_PAGE:
        raise CommandError(f"limit must be 1..{MAX_PAGE}, got {limit}")

    def decode(reply: Any) -> dict[str, Any]:
        jobs = [[jid.decode(), prio, jtype.decode()] for jid, prio, jtype in reply[1:]]
        return {"jobs": jobs, "mark": reply[0]}

    return ["ready", _time(at), str(limit)], decode


def _dispatch(cmd: dict[str, Any]) -> tuple[Tokens, Decoder]:
    at = _num(cmd, "at")
    lease_until = _num(cmd, "lease_until")
    mark = _int(cmd, "mark")
    assign = _pairs(cmd, "assign", "worker", strings=True)
    pairs: Tokens = []
    for pair in assign:
        pairs += pair
    epoch = _int(cmd, "epoch")
    tokens: Tokens = [
        "dispatch",
        str(epoch),
        _time(at),
        _time(lease_until),
        str(mark),
        str(len(assign)),
        *pairs,
    ]
    return tokens, _dispatch_result


def _dispatch_result(reply: Any) -> dict[str, Any]:
    if reply[0] == 0:
        return {"jobs": [], "fenced": True, "epoch": int(reply[1]), "left_best": None}
    jobs = [_job(x) for x in reply[3:]]
    return {"jobs": jobs, "fenced": False, "epoch": int(reply[1]), "left_best": reply[2] or None}


def _attempt_token(number: Any) -> str:
    """``number`` as the script compares it with an attempt number ("0" never matches)."""
    if isinstance(number, int):  # bool too: True == 1, as in the machine
        return str(int(number))
    if isinstance(number, float) and number.is_integer():
        return str(int(number))
    return "0"


def _renew(cmd: dict[str, Any]) -> tuple[Tokens, Decoder]:
    at = _num(cmd, "at")
    lease_until = _num(cmd, "lease_until")
    worker = _str(cmd, "worker")
    names: list[str] = []
    pairs: Tokens = []
    for jid, number in _pairs(cmd, "held", "attempt", strings=False):
        names.append(str(jid))
        pairs += [jid if isinstance(jid, str) else "", _attempt_token(number)]
    epoch = _int(cmd, "epoch")
    tokens: Tokens = ["renew", str(epoch), _time(at), _time(lease_until), worker, str(len(names)), *pairs]

    def decode(reply: Any) -> dict[str, Any]:
        if reply[0] == 0:
            return {"renewed": [], "lost": [], "fenced": True, "epoch": int(reply[1])}
        flags = reply[2]
        renewed = [name for name, flag in zip(names, flags) if flag]
        lost = [name for name, flag in zip(names, flags) if not flag]
        return {"renewed": renewed, "lost": lost, "fenced": False, "epoch": int(reply[1])}

    return tokens, decode


def _report(cmd: dict[str, Any]) -> tuple[Tokens, Decoder]:
    jid = _str(cmd, "id")
    number = _int(cmd, "attempt")
    worker = _str(cmd, "worker")
    ok = cmd.get("ok")
    if not isinstance(ok, bool):
        raise CommandError("ok must be true or false")
    at = _num(cmd, "at")
    bad = None if ok else _first_error(lambda: _opt_str(cmd, "error"))
    error = "" if ok or bad is not None else (_opt_str(cmd, "error") or "failed")
    retryable = cmd.get("retryable", True) is not False
    tokens: Tokens = ["report", jid, str(number), worker, _flag(ok), _time(at)]
    tokens += [_flag(bad is None), error, _flag(retryable)]
    return tokens, lambda reply: _report_result(reply, bad)


def _report_result(reply: Any, bad: str | None) -> dict[str, Any]:
    what = reply[0]
    if what == b"ok":
        return {"accepted": True, "duplicate": False, "status": reply[1].decode(), "why": ""}
    if what == b"dup":
        return {"accepted": True, "duplicate": True, "status": reply[1].decode(), "why": ""}
    if what == b"lost":
        return {"accepted": False, "duplicate": False, "status": reply[1].decode(), "why": _LEASE_LOST}
    if what == b"unknown":
        return {"accepted": False, "duplicate": False, "status": None, "why": "unknown job"}
    return {"error": f"report: {bad}"}


def _maintain(cmd: dict[str, Any]) -> tuple[Tokens, Decoder]:
    at = _num(cmd, "at")
    epoch = _int(cmd, "epoch")
    return ["maintain", str(epoch), _time(at)], _maintain_result


def _maintain_result(reply: Any) -> dict[str, Any]:
    if reply[0] == 0:
        return {"expired": [], "retried": [], "promoted": [], "fenced": True, "epoch": int(reply[1])}
    expired, retried, promoted = ([i.decode() for i in ids] for ids in reply[2:5])
    return {
        "expired": expired,
        "retried": retried,
        "promoted": promoted,
        "fenced": False,
        "epoch": int(reply[1]),
    }


def _dlq_list(cmd: dict[str, Any]) -> tuple[Tokens, Decoder]:
    limit, offset = _page(cmd)
    tokens: Tokens = ["dlq_list", str(limit), str(min(offset, _MAX_OFFSET))]
    return tokens, lambda r: {"jobs": [_job(x) for x in r[1:]], "total": r[0]}


def _dlq_ids(cmd: dict[str, Any]) -> Tokens:
    ids = cmd.get("ids")
    if ids is None:
        return ["1", "0"]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise CommandError("ids must be a list of job ids, or absent for all")
    return ["0", str(len(ids)), *ids]


def _dlq_requeue(cmd: dict[str, Any]) -> tuple[Tokens, Decoder]:
    at = _num(cmd, "at")
    tokens: Tokens = ["dlq_requeue", _time(at), *_dlq_ids(cmd)]
    return tokens, lambda r: {"requeued": [i.decode() for i in r]}


def _dlq_purge(cmd: dict[str, Any]) -> tuple[Tokens, Decoder]:
    tokens: Tokens = ["dlq_purge", *_dlq_ids(cmd)]

    def decode(reply: Any) -> dict[str, Any]:
        ids = [i.decode() for i in reply]
        return {"purged": len(ids), "ids": ids}

    return tokens, decode


def _stats(cmd: dict[str, Any]) -> tuple[Tokens, Decoder]:
    def decode(r: Any) -> dict[str, Any]:
        return {
            "by_status": dict(zip(STATUSES, r[:7])),
            "ready": r[7],
            "delayed": r[8],
            "running": r[9],
            "retrying": r[10],
            "dlq": r[11],
            "total": r[12],
            "epoch": int(r[13]),
        }

    return ["stats"], decode


_ENCODERS: Final[dict[str, Callable[[dict[str, Any]], tuple[Tokens, Decoder]]]] = {
    "submit": _submit,
    "get": _get,
    "list": _list,
    "cancel": _cancel,
    "ready": _ready,
    "dispatch": _dispatch,
    "renew": _renew,
    "report": _report,
    "maintain": _maintain,
    "dlq_list": _dlq_list,
    "dlq_requeue": _dlq_requeue,
    "dlq_purge": _dlq_purge,
    "stats": _stats,
    "lane_open": _lane_open,
    "lane_credit": _lane_credit,
    "lane_close": _lane_close,
}


def _job(row: list[Any]) -> dict[str, Any]:
    """A plain job (as ``job_to_plain`` makes it) from the script's ``HMGET`` of its fields."""
    jid, jtype, payload, prio, retries, timeout, sched, idem, status, attempts = row[:10]
    created, updated, lease, at_requeue, requeues = row[10:15]
    return {
        "id": jid.decode(),
        "type": jtype.decode(),
        "payload": msgpack.unpackb(payload, raw=False, strict_map_key=False),
        "priority": int(prio),
        "max_retries": int(retries),
        "timeout_seconds": float(timeout),
        "scheduled_at": float(sched) if sched else None,
        "idempotency_key": None if idem is None else idem.decode(),
        "status": status.decode(),
        "attempts": [
            {
                "number": number,
                "worker": worker,
                "started": float(started),
                "finished": None if finished is False else float(finished),
                "error": None if error is False else error,
                "outcome": outcome,
            }
            for number, worker, started, finished, error, outcome in msgpack.unpackb(attempts)
        ],
        "created_at": float(created),
        "updated_at": float(updated),
        "lease_expires_at": float(lease) if lease else None,
        "attempts_at_requeue": int(at_requeue),
        "requeue_count": int(requeues),
    }


# --- the direct lane's lists ------------------------------------------------------------------


def lane_key(prefix: str, worker: str) -> str:
    """The list the script pushes a worker's direct-lane tickets to."""
    return f"{prefix}:lane:{worker}"


def nudge_key(prefix: str) -> str:
    """The list (at most one item) the script pushes to when a direct submit queued a ready job."""
    return f"{prefix}:nudge"


def lane_ticket(raw: bytes) -> Ticket:
    """The ticket of a job the script pushed to a lane list (its first and only attempt).

    Raises:
        ValueError: ``raw`` is not a ticket the script writes.
    """
    try:
        jid, jtype, payload, timeout, priority = msgpack.unpackb(raw, raw=True)
        return Ticket(
            jid.decode(),
            1,
            jtype.decode(),
            msgpack.unpackb(payload, raw=False),
            float(timeout),
            int(priority),
        )
    except (ValueError, TypeError, AttributeError, msgpack.UnpackException) as e:
        raise ValueError(f"not a direct-lane ticket ({type(e).__name__}: {e})") from None
