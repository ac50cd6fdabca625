"""Job engine checkers: the queue's promises, tested against a run's store history and end state.

What they read
--------------
A :class:`History` of the store (see :func:`history`):

- ``trail``: every write the store applied, in store order, as the fields of the
  ``store.applied`` audit (:func:`actors.jobs.stores.audit`): ``op``, ``index``, ``epoch``,
  ``fenced`` and per op ``jobs`` (``"id#attempt@worker,..."``), ``until``, ``at``, ``lowest``,
  ``left_best``, ``renewed``, ``expired``, ``id``/``attempt``/``worker``/``ok``/``accepted``/
  ``status``, ``ids``. Memory store: the store actor's own events (complete: each is emitted in
  the step that syncs the write). Raft store: the most up-to-date durable Raft log replayed
  through a fresh :class:`~actors.jobs.machine.JobMachine` and audited the same way (the
  ``store.applied`` events of Raft stores have gaps: only a proposer that heard the result
  emits one); each record's time is the first ``raft.apply`` of its index.
- ``base``: the jobs before the trail starts (a Raft snapshot the replay started from; else
  empty) and ``final``: every job record at the end of the run (the memory store's synced
  records; the replayed machine for Raft).

And the client's ``client.accepted`` events (``id``, ``priority``, ``max_retries``,
``scheduled_at``).

Checkers
--------
- ``jobs.none_lost``: every job the client saw accepted is in the store at the end, with the
  priority and retry budget it was accepted with;
- ``jobs.success_once``: at most one attempt of a job ends in SUCCESS, a SUCCESS job's last
  attempt is that one, the store accepts at most one (non-duplicate) successful report per job,
  and nothing dispatches a job after its success;
- ``jobs.lease_exclusive``: a job is dispatched only while no attempt of it is open; an attempt
  is closed only by its holder's report, a cancel or a ``maintain`` whose time is past the
  lease's end (dispatch ``until``, raised by every renewal of that holder's lease); a renewal
  or an accepted report comes only from the holder; a report from the holder is not refused;
- ``jobs.attempts_history``: a job's attempts are numbered 1..n without gaps, each dispatch
  opens the next number, one attempt is open iff the job is RUNNING, the status agrees with the
  last attempt's outcome, and the end state holds exactly the attempts (and workers) the trail
  dispatched;
- ``jobs.dlq_exact``: a job is DEAD iff the attempts of its current budget (since the last
  requeue) reached ``max_retries + 1`` and the last one failed or lost its lease; never more
  attempts than the budget; a failing report is answered DEAD exactly when it used the budget up;
- ``jobs.fencing``: unfenced scheduler writes (dispatch, renew, maintain, and a gateway's
  fast-lane submit, which writes with the leader's token) carry non-decreasing
  tokens in store order (no write of a deposed leader after a newer one wrote), and the store
  fences only tokens below the highest it has seen;
- ``jobs.priority_order``: no dispatch leaves behind a job more urgent than the least urgent
  it dispatched (``lowest >= left_best``);
- ``jobs.replies``: the client is answered about the job it asked about (its
  ``client.wrong_reply`` events: request numbers are unique, so only a relay can mix them up);
- ``jobs.log_agreement`` (Raft): every ``store.applied`` a Raft store emitted is the replayed
  log's record at that index (what a client was told is what the replicas applied);
- ``jobs.liveness``: after ``quiet`` seconds without faults, every accepted job is done
  (SUCCESS, FAILED, DEAD or CANCELLED) unless it changed less than ``margin`` seconds before
  the end or its next deadline (``scheduled_at`` of a delayed or retrying job,
  ``lease_expires_at`` of a running one) is less than ``margin`` seconds past by the
  scheduler's wall clock (read from the last ``maintain``); every job the client made is
  accepted; every outcome a worker reached reaches the store (a ``report`` record) unless the
  worker went down after it or had been told its lease was lost (``job.lease_lost``) or the
  attempt was already closed in the snapshot the history starts from; and a scheduler
  maintained the queue during the quiet tail. Known blind spot: a worker that renews a lease
  forever without finishing the job keeps it "waiting".
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from actors import Context
from actors.elections import NAME as ELECTION
from actors.jobs import (
    CANCELLED,
    DEAD,
    FAILED,
    OUTCOME_CANCELLED,
    OUTCOME_FAILED,
    OUTCOME_LEASE_EXPIRED,
    OUTCOME_SUCCESS,
    PENDING,
    RETRYING,
    RUNNING,
    SUCCESS,
    Job,
    RetryPolicy,
)
from actors.jobs._plain import job_from_plain
from actors.jobs.machine import JobMachine
from actors.jobs.protocol import STORE
from actors.jobs.stores import audit

from .faults import outages
from .result import Emitted, RunResult, Violation

CLIENT = "jobs-client"
DONE = frozenset({SUCCESS, FAILED, DEAD, CANCELLED})
"""Statuses in which a job needs nothing more from the engine (liveness)."""
_FAILURES = (OUTCOME_FAILED, OUTCOME_LEASE_EXPIRED)
_NEG_INF = float("-inf")
_LAST_OUTCOME: dict[str, frozenset[str | None]] = {
    SUCCESS: frozenset({OUTCOME_SUCCESS}),
    RETRYING: frozenset(_FAILURES),
    DEAD: frozenset(_FAILURES),
    FAILED: frozenset({OUTCOME_FAILED}),
    CANCELLED: frozenset({None, OUTCOME_CANCELLED, *_FAILURES}),
    PENDING: frozenset({None, *_FAILURES}),
    RUNNING: frozenset({"RUNNING"}),
}
"""Status -> the outcomes its last attempt may have (None: no attempt yet)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One store write: ``fields`` of its audit, applied at true time ``t`` by ``node``."""

    t: float
    node: str
    fields: dict[str, Any]

    @property
    def op(self) -> str:
        return str(self.fields.get("op"))


@dataclass(slots=True)
class History:
    """The store's history and end state (see the module docstring)."""

    store: str
    source: str
    trail: list[Record] = field(default_factory=list)
    base: dict[str, Job] = field(default_factory=dict)
    final: dict[str, Job] = field(default_factory=dict)
    base_epoch: int = 0
    start_index: int = 0
    problems: list[Violation] = field(default_factory=list)


# --- building the history -------------------------------------------------------------------


def history(
    result: RunResult, store: str, store_node: str | None, policy: RetryPolicy | None = None
) -> History:
    """The store's history of ``result`` (memory store on ``store_node``, or Raft)."""
    if store == "raft":
        return raft_history(result, policy)
    if store_node is None:
        raise ValueError("the memory store's history needs its node")
    return memory_history(result, store_node)


def memory_history(result: RunResult, store_node: str) -> History:
    """The memory store's audit events and its synced records."""
    h = History("memory", f"memory store on {store_node}")
    h.trail = [
        Record(e.t, e.node, e.fields)
        for e in result.emitted
        if e.kind == "store.applied" and e.node == store_node and e.actor == STORE
    ]
    state = result.durable.get(store_node, {}).get(STORE, {})
    for key in sorted(state):
        if not key.startswith("job/"):
            continue
        try:
            job = job_from_plain(state[key][1])
        except (ValueError, TypeError, IndexError) as e:
            h.problems.append(
                Violation("jobs.attempts_history", result.sim_seconds, store_node, f"unreadable {key}: {e}")
            )
            continue
        h.final[job.id] = job
    return h


class _Collect:
    """Stands in for a Context so that :func:`audit` can describe replayed commands."""

    def __init__(self) -> None:
        self.fields: dict[str, Any] | None = None

    def emit(self, kind: str, **fields: Any) -> None:
        self.fields = fields


def _durable_log(state: Mapping[str, Any]) -> tuple[int, int, dict[int, Any], Any]:
    """(snapshot index, last index, contiguous entries, snapshot) of a durable Raft state."""
    snap = state.get("snapshot")
    first = int(snap["index"]) if snap else 0
    entries: dict[int, Any] = {}
    i = first + 1
    while (raw := state.get(f"log/{i}")) is not None:
        entries[i] = raw
        i += 1
    return first, i - 1, entries, snap


def raft_history(result: RunResult, policy: RetryPolicy | None = None) -> History:
    """The most up-to-date durable Raft log, replayed and audited (see the module docstring)."""
    best: tuple[int, int, str] | None = None
    for node in sorted(result.durable):
        state = result.durable[node].get(ELECTION)
        if not state:
            continue
        first, last, entries, snap = _durable_log(state)
        last_term = int(entries[last][0]) if last > first else int(snap["term"]) if snap else 0
        key = (last_term, last, node)
        if best is None or key[:2] > best[:2]:
            best = key
    if best is None:
        return History("raft", "no durable Raft log")
    node = best[2]
    first, last, entries, snap = _durable_log(result.durable[node][ELECTION])
    h = History("raft", f"Raft log of {node} (entries {first + 1}..{last})")
    machine = JobMachine(policy)
    if snap and snap.get("data") is not None:
        machine.restore(snap["data"])
    h.base = dict(machine.jobs)
    h.base_epoch = machine.epoch
    h.start_index = first
    applied: dict[int, tuple[float, str]] = {}
    for e in result.emitted:
        if e.kind == "raft.apply" and e.actor == ELECTION:
            applied.setdefault(int(e.fields["index"]), (e.t, e.node))
    shim = _Collect()
    for i in range(first + 1, last + 1):
        _, kind, data = entries[i]
        if kind != "cmd":
            continue
        t, by = applied.get(i, (result.sim_seconds, node))
        try:
            res = machine.apply(i, data)
        except Exception as e:  # an illegal transition slipped past the machine's checks
            h.problems.append(Violation("jobs.attempts_history", t, by, f"log entry {i} {data!r}: {e}"))
            continue
        shim.fields = None
        audit(cast(Context, shim), i, data, res)
        if shim.fields is not None:
            h.trail.append(Record(t, by, shim.fields))
    h.final = dict(machine.jobs)
    return h


def accepted_jobs(emitted: Sequence[Emitted]) -> dict[str, Emitted]:
    """Job id -> the client's first ``client.accepted`` event for it."""
    out: dict[str, Emitted] = {}
    for e in emitted:
        if e.kind == "client.accepted":
            out.setdefault(str(e.fields["id"]), e)
    return out


# --- the walk over the trail ----------------------------------------------------------------


@dataclass(slots=True)
class _JobState:
    attempts: int = 0
    open: tuple[int, str] | None = None
    until: float = _NEG_INF
    budget_start: int = 0
    successes: int = 0
    workers: dict[int, str] = field(default_factory=dict)


def _split(text: Any) -> list[str]:
    return [x for x in str(text or "").split(",") if x]


def _parse_dispatched(item: str) -> tuple[str, int, str]:
    """``"id#attempt@worker"`` -> (id, attempt, worker)."""
    jid, rest = item.rsplit("#", 1)
    number, worker = rest.split("@", 1)
    return jid, int(number), worker


class _Walk:
    """One pass over the trail, keeping each job's lease and budget, noting broken promises."""

    def __init__(self, h: History) -> None:
        self.h = h
        self.found: dict[str, list[Violation]] = defaultdict(list)
        self.jobs: dict[str, _JobState] = {}
        for jid, job in h.base.items():
            cur = job.current_attempt
            self.jobs[jid] = _JobState(
                attempts=len(job.attempts),
                open=(cur.number, cur.worker) if cur else None,
                until=job.lease_expires_at if cur and job.lease_expires_at is not None else _NEG_INF,
                budget_start=job.attempts_at_requeue,
                successes=sum(1 for a in job.attempts if a.outcome == OUTCOME_SUCCESS),
                workers={a.number: a.worker for a in job.attempts},
            )
        self.top = h.base_epoch
        self.top_at: Record | None = None
        for r in h.trail:
            self._record(r)

    def note(self, checker: str, r: Record, text: str) -> None:
        self.found[checker].append(Violation(checker, r.t, r.node, f"index {r.fields.get('index')}: {text}"))

    def state(self, jid: str) -> _JobState:
        return self.jobs.setdefault(jid, _JobState())

    def limit(self, jid: str) -> int | None:
        job = self.h.final.get(jid) or self.h.base.get(jid)
        return None if job is None else job.max_retries + 1

    def _record(self, r: Record) -> None:
        f = r.fields
        op = r.op
        lane = op == "submit" and "epoch" in f  # a submit through the fast lane
        if op in ("dispatch", "renew", "maintain") or lane:
            self._fence(r)
            if f.get("fenced"):
                return
        if op == "dispatch" or lane:
            self._dispatch(r)
        elif op == "renew":
            worker = str(f.get("worker"))
            for jid in _split(f.get("renewed")):
                st = self.state(jid)
                if st.open is None or st.open[1] != worker:
                    held = "no open attempt" if st.open is None else f"attempt {st.open[0]} on {st.open[1]}"
                    self.note("jobs.lease_exclusive", r, f"renewed {jid}'s lease for {worker}, but {held}")
                    continue
                st.until = max(st.until, float(f.get("until") or _NEG_INF))
        elif op == "maintain":
            at = float(f.get("at") or 0.0)
            for jid in _split(f.get("expired")):
                st = self.state(jid)
                if st.open is None:
                    self.note(
                        "jobs.lease_exclusive", r, f"expired the lease of {jid}, which had no open attempt"
                    )
                    continue
                if not at > st.until:
                    self.note(
                        "jobs.lease_exclusive",
                        r,
                        f"expired {jid} attempt {st.open[0]} on {st.open[1]} at {at:.3f}, "
                        f"before its lease ends at {st.until:.3f}",
                    )
                st.open = None
        elif op == "report":
            self._report(r)
        elif op == "cancel":
            self.state(str(f.get("id"))).open = None
        elif op == "dlq_requeue":
            for jid in _split(f.get("ids")):
                st = self.state(jid)
                st.budget_start = st.attempts

    def _fence(self, r: Record) -> None:
        f = r.fields
        epoch = int(f.get("epoch") or 0)
        if f.get("fenced"):
            if epoch >= self.top:
                self.note(
                    "jobs.fencing",
                    r,
                    f"{r.op} with token {epoch} was fenced though the highest is {self.top}",
                )
            return
        if epoch < self.top:
            last = self.top_at
            where = f" (index {last.fields.get('index')}, t={last.t:.3f})" if last else ""
            self.note(
                "jobs.fencing",
                r,
                f"{r.op} with token {epoch} applied after token {self.top} wrote{where}: "
                "a deposed leader wrote",
            )
            return
        if epoch > self.top or self.top_at is None:
            self.top, self.top_at = epoch, r

    def _dispatch(self, r: Record) -> None:
        f = r.fields
        lowest, left = f.get("lowest"), f.get("left_best")
        if lowest is not None and left is not None and int(lowest) < int(left):
            self.note(
                "jobs.priority_order",
                r,
                f"dispatched a job of priority {lowest} while one of priority {left} was left waiting",
            )
        for item in _split(f.get("jobs")):
            jid, number, worker = _parse_dispatched(item)
            st = self.state(jid)
            if st.open == (number, worker):
                continue  # a resent dispatch answered again
            if st.successes:
                self.note("jobs.success_once", r, f"dispatched {jid} attempt {number} after it succeeded")
            if st.open is not None:
                self.note(
                    "jobs.lease_exclusive",
                    r,
                    f"dispatched {jid} attempt {number} to {worker} while attempt {st.open[0]} "
                    f"on {st.open[1]} held the lease (until {st.until:.3f})",
                )
            if number != st.attempts + 1:
                self.note(
                    "jobs.attempts_history",
                    r,
                    f"dispatched {jid} as attempt {number} after {st.attempts} attempt(s)",
                )
            st.open = (number, worker)
            st.attempts = max(st.attempts, number)
            st.until = float(f.get("until") or _NEG_INF)
            st.workers[number] = worker

    def _report(self, r: Record) -> None:
        f = r.fields
        jid, worker = str(f.get("id")), str(f.get("worker"))
        number = int(f.get("attempt") or 0)
        ok = bool(f.get("ok"))
        st = self.state(jid)
        holder = st.open == (number, worker)
        if not f.get("accepted"):
            if holder:
                self.note(
                    "jobs.lease_exclusive",
                    r,
                    f"refused {worker}'s report of {jid} attempt {number}, its lease",
                )
            return
        if not holder:
            held = "no open attempt" if st.open is None else f"attempt {st.open[0]} on {st.open[1]} open"
            self.note(
                "jobs.lease_exclusive",
                r,
                f"accepted {worker}'s report of {jid} attempt {number} with {held}",
            )
        st.open = None
        status = f.get("status")
        if ok:
            st.successes += 1
            if st.successes > 1:
                self.note("jobs.success_once", r, f"accepted a second success of {jid} (attempt {number})")
            if status != SUCCESS:
                self.note("jobs.success_once", r, f"a successful report left {jid} {status}")
            return
        limit = self.limit(jid)
        if limit is None or status == FAILED:
            return
        used = number - st.budget_start
        want = DEAD if used >= limit else RETRYING
        if status != want:
            self.note(
                "jobs.dlq_exact",
                r,
                f"failed attempt {number} of {jid} ({used} of {limit} in its budget) "
                f"left it {status}, not {want}",
            )


def _walk(h: History) -> _Walk:
    return _Walk(h)


# --- the checkers ---------------------------------------------------------------------------


def none_lost(h: History, accepted: Mapping[str, Emitted], end: float) -> list[Violation]:
    """Every accepted job is in the store at the end, as it was accepted."""
    out = []
    for jid, e in accepted.items():
        job = h.final.get(jid)
        if job is None:
            out.append(
                Violation(
                    "jobs.none_lost",
                    end,
                    e.node,
                    f"{jid}, accepted at t={e.t:.3f}, is not in the {h.source} at the end",
                )
            )
            continue
        want = (e.fields.get("priority"), e.fields.get("max_retries"))
        if (job.priority, job.max_retries) != want:
            out.append(
                Violation(
                    "jobs.none_lost",
                    end,
                    e.node,
                    f"{jid} was accepted with priority/max_retries {want} but the store holds "
                    f"{(job.priority, job.max_retries)}",
                )
            )
    return out


def success_once(h: History, end: float, walk: _Walk | None = None) -> list[Violation]:
    """A job's success is recorded once (see the module docstring)."""
    out = list((walk or _walk(h)).found["jobs.success_once"])
    for jid, job in sorted(h.final.items()):
        wins = [a.number for a in job.attempts if a.outcome == OUTCOME_SUCCESS]
        if len(wins) > 1:
            out.append(Violation("jobs.success_once", end, "-", f"{jid} succeeded in attempts {wins}"))
        last_ok = bool(job.attempts) and job.attempts[-1].outcome == OUTCOME_SUCCESS
        if (job.status == SUCCESS) != last_ok:
            out.append(
                Violation(
                    "jobs.success_once",
                    end,
                    "-",
                    f"{jid} is {job.status} but its last attempt is "
                    f"{job.attempts[-1].outcome if job.attempts else 'missing'}",
                )
            )
    return out


def lease_exclusive(h: History, walk: _Walk | None = None) -> list[Violation]:
    """No two workers hold a job's lease at once (see the module docstring)."""
    return list((walk or _walk(h)).found["jobs.lease_exclusive"])


def attempts_history(h: History, end: float, walk: _Walk | None = None) -> list[Violation]:
    """Attempts are 1..n, one open iff RUNNING, as dispatched (see the module docstring)."""
    w = walk or _walk(h)
    out = list(w.found["jobs.attempts_history"])
    for jid, job in sorted(h.final.items()):
        numbers = [a.number for a in job.attempts]
        if numbers != list(range(1, len(numbers) + 1)):
            out.append(Violation("jobs.attempts_history", end, "-", f"{jid} has attempts numbered {numbers}"))
        opened = [a.number for a in job.attempts if a.outcome == "RUNNING"]
        if (job.status == RUNNING) != (len(opened) == 1) or len(opened) > 1:
            out.append(
                Violation(
                    "jobs.attempts_history", end, "-", f"{jid} is {job.status} with open attempts {opened}"
                )
            )
        last = job.attempts[-1].outcome if job.attempts else None
        allowed = _LAST_OUTCOME.get(job.status, frozenset())
        if last not in allowed:
            out.append(
                Violation(
                    "jobs.attempts_history", end, "-", f"{jid} is {job.status} after an attempt that {last}"
                )
            )
        st = w.jobs.get(jid)
        if st is None:
            if job.attempts and jid not in h.base:
                out.append(
                    Violation(
                        "jobs.attempts_history",
                        end,
                        "-",
                        f"{jid} holds {len(job.attempts)} attempt(s) but the trail never dispatched it",
                    )
                )
            continue
        if st.attempts != len(job.attempts):
            out.append(
                Violation(
                    "jobs.attempts_history",
                    end,
                    "-",
                    f"{jid} holds {len(job.attempts)} attempt(s) but the trail dispatched {st.attempts}",
                )
            )
        for a in job.attempts:
            w_ = st.workers.get(a.number)
            if w_ is not None and w_ != a.worker:
                out.append(
                    Violation(
                        "jobs.attempts_history",
                        end,
                        "-",
                        f"{jid} attempt {a.number} ran on {a.worker} but was dispatched to {w_}",
                    )
                )
        cur = job.current_attempt
        held = (cur.number, cur.worker) if cur else None
        if held != st.open:
            out.append(
                Violation(
                    "jobs.attempts_history",
                    end,
                    "-",
                    f"{jid}'s open attempt is {held} at the end but the trail left {st.open} open",
                )
            )
    return out


def dlq_exact(h: History, end: float, walk: _Walk | None = None) -> list[Violation]:
    """DEAD exactly when the budget is spent on a retryable failure (see the module docstring)."""
    out = list((walk or _walk(h)).found["jobs.dlq_exact"])
    for jid, job in sorted(h.final.items()):
        used, limit = job.budget_attempts, job.max_retries + 1
        last = job.attempts[-1].outcome if job.attempts else None
        if used > limit:
            out.append(
                Violation("jobs.dlq_exact", end, "-", f"{jid} made {used} attempts in a budget of {limit}")
            )
        if job.status == DEAD and not (used == limit and last in _FAILURES):
            out.append(
                Violation(
                    "jobs.dlq_exact",
                    end,
                    "-",
                    f"{jid} is DEAD after {used} of {limit} attempts (last {last}): budget left",
                )
            )
        if job.status in (RETRYING, PENDING) and last in _FAILURES and used >= limit:
            out.append(
                Violation(
                    "jobs.dlq_exact",
                    end,
                    "-",
                    f"{jid} is {job.status} after {used} of {limit} attempts: it should be DEAD",
                )
            )
    return out


def fencing(h: History, walk: _Walk | None = None) -> list[Violation]:
    """One leader writes at a time, by token (see the module docstring)."""
    return list((walk or _walk(h)).found["jobs.fencing"])


def priority_order(h: History, walk: _Walk | None = None) -> list[Violation]:
    """No dispatch passes over a more urgent waiting job."""
    return list((walk or _walk(h)).found["jobs.priority_order"])


def log_agreement(result: RunResult, h: History) -> list[Violation]:
    """What Raft stores told their clients is what the replayed log holds (Raft only)."""
    by_index = {int(r.fields["index"]): r for r in h.trail}
    last = max(by_index, default=h.start_index)
    out = []
    for e in result.emitted:
        if e.kind != "store.applied" or e.actor != STORE:
            continue
        i = int(e.fields["index"])
        if i <= h.start_index:
            continue
        r = by_index.get(i)
        if r is None:
            where = "past its end" if i > last else "not a store command there"
            out.append(
                Violation(
                    "jobs.log_agreement",
                    e.t,
                    e.node,
                    f"acknowledged {e.fields.get('op')} at index {i}, {where} in the {h.source}",
                )
            )
        elif r.fields != e.fields:
            diff = sorted(k for k in set(r.fields) | set(e.fields) if r.fields.get(k) != e.fields.get(k))
            out.append(
                Violation(
                    "jobs.log_agreement",
                    e.t,
                    e.node,
                    f"index {i}: the store reported {e.fields.get('op')} with "
                    + ", ".join(f"{k}={e.fields.get(k)!r}" for k in diff)
                    + " but the log replays "
                    + ", ".join(f"{k}={r.fields.get(k)!r}" for k in diff),
                )
            )
    return out


def _client_unacked(result: RunResult) -> list[tuple[str, str]]:
    """(node, job id) of every job a client made and never saw accepted."""
    out = []
    for node in sorted(result.durable):
        state = result.durable[node].get(CLIENT)
        if not state:
            continue
        acked = {k[6:] for k in state if k.startswith("acked/")}
        out += [(node, k[4:]) for k in sorted(state) if k.startswith("job/") and k[4:] not in acked]
    return out


def _last_moves(h: History) -> dict[str, float]:
    """Job id -> true time of the last trail record that changed it."""
    out: dict[str, float] = {}
    for r in h.trail:
        f = r.fields
        if f.get("fenced"):
            continue
        ids: list[str] = []
        if r.op == "dispatch":
            ids = [item.rsplit("#", 1)[0] for item in _split(f.get("jobs"))]
        elif r.op == "maintain":
            ids = _split(f.get("expired"))
        elif r.op == "dlq_requeue":
            ids = _split(f.get("ids"))
        elif r.op in ("cancel", "submit") or (r.op == "report" and f.get("accepted")):
            ids = [str(f.get("id"))]
        for jid in ids:
            out[jid] = r.t
    return out


def _closed_before_trail(h: History, jid: str, number: int, worker: str) -> bool:
    """The attempt was already closed in the snapshot the history starts from."""
    job = h.base.get(jid)
    if job is None or not 0 < number <= len(job.attempts):
        return False
    attempt = job.attempts[number - 1]
    return attempt.worker == worker and not attempt.is_open


def _reports_delivered(result: RunResult, h: History, quiet: float) -> list[Violation]:
    """Every outcome a worker reached reaches the store, unless the worker went down first."""
    reported = {
        (str(f.get("id")), int(f.get("attempt") or 0), str(f.get("worker")), bool(f.get("ok")))
        for r in h.trail
        if r.op == "report"
        for f in (r.fields,)
    }
    downs = outages(result.faults)
    lost: set[tuple[str, int, str]] = set()
    out = []
    for e in result.emitted:
        f = e.fields
        if e.kind == "job.lease_lost":  # the worker knows the store closed it: nothing to report
            lost.add((str(f["id"]), int(f["attempt"]), str(f["worker"])))
        if e.kind != "job.finished":
            continue
        key = (str(f["id"]), int(f["attempt"]), str(f["worker"]), bool(f["ok"]))
        if key in reported or key[:3] in lost or any(node == e.node and at >= e.t for at, node, _ in downs):
            continue
        if _closed_before_trail(h, key[0], key[1], key[2]):
            continue  # settled before the snapshot the history starts from
        out.append(
            Violation(
                "jobs.liveness",
                e.t,
                e.node,
                f"{e.node} finished {key[0]} attempt {key[1]} (ok={key[3]}) and stayed up, but its report "
                f"never reached the store in {quiet:.1f} quiet s",
            )
        )
    return out


def wrong_replies(emitted: Sequence[Emitted]) -> list[Violation]:
    """A client is answered about the job it asked about (``client.wrong_reply``)."""
    return [
        Violation(
            "jobs.replies",
            e.t,
            e.node,
            f"the answer to the submit of {e.fields.get('id')} described job {e.fields.get('got')}",
        )
        for e in emitted
        if e.kind == "client.wrong_reply"
    ]


def liveness(
    result: RunResult, h: History, accepted: Mapping[str, Emitted], quiet: float, margin: float
) -> list[Violation]:
    """After a quiet tail every accepted job is done or waits on a deadline (see the docstring)."""
    end = result.sim_seconds
    calm = max((f.at for f in result.faults), default=0.0)
    if end - calm < quiet:
        return []
    out = [
        Violation(
            "jobs.liveness",
            end,
            node,
            f"the client's submit of {jid} was never acknowledged in {end - calm:.1f} quiet s",
        )
        for node, jid in _client_unacked(result)
    ]
    if not accepted:
        return out
    out += _reports_delivered(result, h, end - calm)
    maintains = [r for r in h.trail if r.op == "maintain" and not r.fields.get("fenced")]
    last = maintains[-1] if maintains else None
    if last is None or last.t < calm:
        out.append(
            Violation(
                "jobs.liveness",
                end,
                "-",
                f"no scheduler maintained the queue in the {end - calm:.1f} quiet seconds since t={calm:.3f}",
            )
        )
        return out
    wall = float(last.fields["at"]) + (end - last.t)  # the scheduler's wall clock at the end
    moved = _last_moves(h)
    for jid in sorted(accepted, key=lambda j: (accepted[j].t, j)):
        job = h.final.get(jid)
        if job is None or job.status in DONE or end - moved.get(jid, _NEG_INF) < margin:
            continue
        deadline = job.lease_expires_at if job.status == RUNNING else job.scheduled_at
        if deadline is not None and deadline > wall - margin:
            continue
        if job.status == RUNNING and job.current_attempt is not None:
            what = f"RUNNING attempt {job.current_attempt.number} on {job.current_attempt.worker}"
        else:
            what = job.status
        due = "no deadline" if deadline is None else f"its deadline {wall - deadline:.1f} s past"
        out.append(
            Violation(
                "jobs.liveness",
                end,
                "-",
                f"{jid} (accepted t={accepted[jid].t:.3f}) is still {what} after {end - calm:.1f} quiet s, "
                f"{due} by the scheduler's clock",
            )
        )
    return out


def check_jobs(
    result: RunResult,
    *,
    store: str,
    store_node: str | None,
    policy: RetryPolicy | None = None,
    quiet: float = 30.0,
    margin: float = 10.0,
) -> list[Violation]:
    """Run every job engine checker over ``result`` (see the module docstring)."""
    h = history(result, store, store_node, policy)
    accepted = accepted_jobs(result.emitted)
    end = result.sim_seconds
    w = _walk(h)
    out = list(h.problems)
    out += none_lost(h, accepted, end)
    out += success_once(h, end, w)
    out += lease_exclusive(h, w)
    out += attempts_history(h, end, w)
    out += dlq_exact(h, end, w)
    out += fencing(h, w)
    out += priority_order(h, w)
    if store == "raft":
        out += log_agreement(result, h)
    out += wrong_replies(result.emitted)
    out += liveness(result, h, accepted, quiet, margin)
    return sorted(out, key=lambda v: (v.t, v.node, v.checker, v.description))


def summary(h: History) -> dict[str, int]:
    """Final jobs per status (for notebooks and reports)."""
    return dict(Counter(j.status for j in h.final.values()))
