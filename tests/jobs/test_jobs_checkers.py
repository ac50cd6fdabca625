"""The job checkers can fail: each promise, broken on purpose, is reported.

Most tests take the history of a real run (silent under every checker) and break one thing in
it: drop a job, add a second success, dispatch into a held lease, write with a stale token...
Two run deliberately broken stores in shipped scenarios: one that fences nothing, one that
never syncs.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import sim
from actors import Actor, Context, Sync
from actors.jobs import DEAD, OUTCOME_FAILED, OUTCOME_SUCCESS, PENDING, RETRYING, SUCCESS, Attempt
from actors.jobs.machine import JobMachine
from actors.jobs.protocol import STORE
from actors.jobs.stores import MemoryStore
from sim import checkers_jobs as cj
from sim import system_jobs
from sim.checkers_jobs import History, Record
from sim.system_jobs import JobsSimConfig

SCENARIOS = Path(__file__).parents[2] / "scenarios"


@pytest.fixture(scope="module")
def storm() -> tuple[sim.RunResult, JobsSimConfig]:
    """The retry storm: successes, failures, the dead-letter queue, a requeue, cancels."""
    res = sim.run_scenario(SCENARIOS / "jobs-retry-storm.toml", 1)
    assert res.violations == []
    params: JobsSimConfig = sim.load_scenario(SCENARIOS / "jobs-retry-storm.toml").params
    return res, params


@pytest.fixture
def h(storm: tuple[sim.RunResult, JobsSimConfig]) -> History:
    res, params = storm
    return cj.history(res, "memory", "store", params.engine.policy)


def everything(res: sim.RunResult, h: History, params: JobsSimConfig) -> list[sim.Violation]:
    accepted = cj.accepted_jobs(res.emitted)
    end = res.sim_seconds
    return [
        *cj.none_lost(h, accepted, end),
        *cj.success_once(h, end),
        *cj.lease_exclusive(h),
        *cj.attempts_history(h, end),
        *cj.dlq_exact(h, end),
        *cj.fencing(h),
        *cj.priority_order(h),
        *cj.liveness(res, h, accepted, params.quiet, params.margin),
        *cj.wrong_replies(res.emitted),
    ]


def only(found: list[sim.Violation], checker: str, *words: str) -> None:
    assert found, "nothing reported"
    assert {v.checker for v in found} == {checker}, [str(v) for v in found]
    assert any(all(w in v.description for w in words) for v in found), [str(v) for v in found]


def first(h: History, op: str, pred: Callable[[dict[str, Any]], bool] = lambda f: True) -> int:
    """The first record of ``op`` matching ``pred``; a fast-lane submit counts as a ``dispatch``."""
    return next(i for i, r in enumerate(h.trail) if _is(r, op) and pred(r.fields))


def _is(r: Record, op: str) -> bool:
    return r.op == op or (op == "dispatch" and r.op == "submit" and "epoch" in r.fields)


def insert(h: History, at: int, fields: dict[str, Any]) -> None:
    """Insert a record after position ``at`` (same time and node)."""
    r = h.trail[at]
    h.trail.insert(at + 1, Record(r.t, r.node, {"index": r.fields["index"], **fields}))


def replace_fields(h: History, at: int, **changes: Any) -> None:
    r = h.trail[at]
    h.trail[at] = Record(r.t, r.node, {**r.fields, **changes})


def a_success(h: History) -> int:
    return first(h, "report", lambda f: f["ok"] and f["accepted"])


def test_the_real_history_is_clean(storm: tuple[sim.RunResult, JobsSimConfig], h: History) -> None:
    res, params = storm
    assert everything(res, h, params) == []
    assert cj.summary(h)[DEAD] > 0 and cj.summary(h)[SUCCESS] > 0


# --- none lost ------------------------------------------------------------------------------


def test_a_job_missing_at_the_end_is_lost(storm: tuple[sim.RunResult, JobsSimConfig]) -> None:
    res, params = storm
    broken = copy.copy(res)
    broken.durable = copy.deepcopy(res.durable)
    del broken.durable["store"][STORE]["job/j7"]
    found = system_jobs.check(broken, params)
    assert {v.checker for v in found} >= {"jobs.none_lost"}
    assert any("j7, accepted at" in v.description for v in found)


def test_a_job_stored_with_another_priority_is_reported(
    storm: tuple[sim.RunResult, JobsSimConfig], h: History
) -> None:
    res, _ = storm
    job = h.final["j3"]
    h.final["j3"] = dataclasses.replace(job, priority=11 - job.priority if job.priority != 5 else 6)
    only(cj.none_lost(h, cj.accepted_jobs(res.emitted), res.sim_seconds), "jobs.none_lost", "j3")


# --- success once ---------------------------------------------------------------------------


def test_a_second_accepted_success_is_reported(h: History) -> None:
    i = a_success(h)
    jid = h.trail[i].fields["id"]
    insert(h, i, {**h.trail[i].fields, "attempt": h.trail[i].fields["attempt"] + 1})
    found = cj.success_once(h, 60.0)
    only(found, "jobs.success_once", "second success", jid)


def test_two_successful_attempts_in_the_end_state_are_reported(h: History) -> None:
    jid, job = next((j, x) for j, x in h.final.items() if x.status == SUCCESS)
    twice = Attempt(len(job.attempts) + 1, "n2", 1.0, 2.0, None, OUTCOME_SUCCESS)
    h.final[jid] = dataclasses.replace(job, attempts=(*job.attempts, twice))
    only(cj.success_once(h, 60.0), "jobs.success_once", jid, "succeeded in attempts")


def test_a_dispatch_after_success_is_reported(h: History) -> None:
    i = a_success(h)
    f = h.trail[i].fields
    insert(h, i, {"op": "dispatch", "epoch": 10**9, "fenced": False, "jobs": f"{f['id']}#9@n1", "until": 0.0})
    assert any("after it succeeded" in v.description for v in cj.success_once(h, 60.0))


# --- lease exclusivity ----------------------------------------------------------------------


def _dispatch_of(h: History, jid: str) -> int:
    return first(h, "dispatch", lambda f: any(x.startswith(f"{jid}#") for x in f["jobs"].split(",")))


def test_a_dispatch_into_a_held_lease_is_reported(h: History) -> None:
    i = _dispatch_of(h, "j1")
    f = h.trail[i].fields
    insert(h, i, {**f, "jobs": "j1#2@n9", "lowest": None, "left_best": None})
    found = cj.lease_exclusive(h)
    assert any("j1 attempt 2 to n9 while attempt 1" in v.description for v in found), found


def test_an_early_lease_expiry_is_reported(h: History) -> None:
    i = _dispatch_of(h, "j2")
    f = h.trail[i].fields
    insert(
        h, i, {"op": "maintain", "epoch": f["epoch"], "fenced": False, "expired": "j2", "at": f["until"] - 1}
    )
    only(cj.lease_exclusive(h), "jobs.lease_exclusive", "expired j2", "before its lease ends")


def test_a_renewal_by_another_worker_is_reported(h: History) -> None:
    i = _dispatch_of(h, "j2")
    f = h.trail[i].fields
    worker = next(x for x in f["jobs"].split(",") if x.startswith("j2#")).split("@")[1]
    other = "n1" if worker != "n1" else "n2"
    insert(
        h,
        i,
        {"op": "renew", "epoch": f["epoch"], "fenced": False, "worker": other, "renewed": "j2", "until": 0},
    )
    only(cj.lease_exclusive(h), "jobs.lease_exclusive", f"renewed j2's lease for {other}")


def test_a_report_accepted_from_a_non_holder_is_reported(h: History) -> None:
    i = a_success(h)
    replace_fields(h, i, worker="n9")
    assert any("accepted n9's report" in v.description for v in cj.lease_exclusive(h))


# --- attempts = history ---------------------------------------------------------------------


def test_a_gap_in_attempt_numbers_is_reported(h: History) -> None:
    jid, job = next((j, x) for j, x in h.final.items() if len(x.attempts) >= 2)
    gap = tuple(dataclasses.replace(a, number=a.number + (1 if k else 0)) for k, a in enumerate(job.attempts))
    h.final[jid] = dataclasses.replace(job, attempts=gap)
    assert any("numbered" in v.description and jid in v.description for v in cj.attempts_history(h, 60.0))


def test_a_dispatch_skipping_a_number_is_reported(h: History) -> None:
    i = _dispatch_of(h, "j1")
    item = next(x for x in h.trail[i].fields["jobs"].split(",") if x.startswith("j1#"))
    replace_fields(h, i, jobs=h.trail[i].fields["jobs"].replace(item, item.replace("#1@", "#2@")))
    found = cj.attempts_history(h, 60.0)
    assert any("dispatched j1 as attempt 2 after 0" in v.description for v in found), found


def test_attempts_the_trail_never_dispatched_are_reported(h: History) -> None:
    jid = next(j for j, x in h.final.items() if len(x.attempts) == 1)
    i = _dispatch_of(h, jid)
    items = [x for x in h.trail[i].fields["jobs"].split(",") if not x.startswith(f"{jid}#")]
    replace_fields(h, i, jobs=",".join(items))
    found = cj.attempts_history(h, 60.0)
    assert any(f"{jid} holds 1 attempt(s) but the trail dispatched 0" in v.description for v in found), found


# --- DLQ exactness --------------------------------------------------------------------------


def test_a_dead_job_with_budget_left_is_reported(h: History) -> None:
    jid, job = next((j, x) for j, x in h.final.items() if x.status == RETRYING or x.status == SUCCESS)
    one = Attempt(1, "n1", 1.0, 2.0, "boom", OUTCOME_FAILED)
    h.final[jid] = dataclasses.replace(
        job, status=DEAD, attempts=(one,), max_retries=2, attempts_at_requeue=0
    )
    only(cj.dlq_exact(h, 60.0), "jobs.dlq_exact", jid, "budget left")


def test_a_retrying_job_without_budget_is_reported(h: History) -> None:
    jid, job = next((j, x) for j, x in h.final.items() if x.status == DEAD)
    h.final[jid] = dataclasses.replace(job, status=RETRYING, scheduled_at=1.0)
    only(cj.dlq_exact(h, 60.0), "jobs.dlq_exact", jid, "should be DEAD")


def test_a_failed_report_answered_dead_too_early_is_reported(h: History) -> None:
    i = first(h, "report", lambda f: not f["ok"] and f["accepted"] and f["status"] == RETRYING)
    replace_fields(h, i, status=DEAD)
    only(cj.dlq_exact(h, 60.0), "jobs.dlq_exact", "left it DEAD, not RETRYING")


# --- fencing and priority -------------------------------------------------------------------


def test_a_write_from_a_deposed_leader_is_reported(h: History) -> None:
    i = first(h, "maintain")
    f = h.trail[i].fields
    insert(
        h, i, {"op": "maintain", "epoch": f["epoch"] + 4096, "fenced": False, "expired": "", "at": f["at"]}
    )
    only(cj.fencing(h), "jobs.fencing", "a deposed leader wrote", f"token {f['epoch']}")


def test_fencing_a_current_token_is_reported(h: History) -> None:
    i = first(h, "maintain")
    f = h.trail[i].fields
    insert(h, i, {"op": "dispatch", "epoch": f["epoch"], "fenced": True, "jobs": "", "until": 0.0})
    only(cj.fencing(h), "jobs.fencing", "was fenced though the highest is")


def test_passing_over_a_more_urgent_job_is_reported(h: History) -> None:
    i = first(h, "dispatch", lambda f: bool(f["jobs"]))
    replace_fields(h, i, lowest=2, left_best=9)
    only(cj.priority_order(h), "jobs.priority_order", "priority 2", "priority 9")


# --- liveness -------------------------------------------------------------------------------


def test_a_job_left_waiting_in_a_quiet_tail_is_reported(
    storm: tuple[sim.RunResult, JobsSimConfig], h: History
) -> None:
    res, params = storm
    job = h.final["j1"]
    h.final["j1"] = dataclasses.replace(
        job, status=PENDING, attempts=(), scheduled_at=None, attempts_at_requeue=0
    )
    found = cj.liveness(res, h, cj.accepted_jobs(res.emitted), params.quiet, params.margin)
    only(found, "jobs.liveness", "j1", "still PENDING", "no deadline")
    late = copy.copy(res)
    late.faults = [*res.faults, sim.Fault(res.sim_seconds - 1.0, "heal")]
    assert cj.liveness(late, h, cj.accepted_jobs(res.emitted), params.quiet, params.margin) == []


def test_a_report_that_never_arrives_is_reported(
    storm: tuple[sim.RunResult, JobsSimConfig], h: History
) -> None:
    res, params = storm
    i = first(h, "report", lambda f: f["ok"] and f["accepted"] and f["worker"] != "n1")  # n1 crashes
    jid = h.trail[i].fields["id"]
    del h.trail[i]
    found = cj.liveness(res, h, cj.accepted_jobs(res.emitted), params.quiet, params.margin)
    assert any(jid in v.description and "never reached the store" in v.description for v in found), found


def test_a_queue_nobody_maintains_is_reported(storm: tuple[sim.RunResult, JobsSimConfig], h: History) -> None:
    res, params = storm
    h.trail = [r for r in h.trail if r.op != "maintain" or r.t < 8.0]  # the last fault is at 9 s
    found = cj.liveness(res, h, cj.accepted_jobs(res.emitted), params.quiet, params.margin)
    only(found, "jobs.liveness", "no scheduler maintained the queue")


def test_a_reply_about_another_job_is_reported() -> None:
    e = sim.Emitted(3.0, "client", "jobs-client", 1, "client.wrong_reply", {"id": "j4", "got": "j9"})
    only(cj.wrong_replies([e]), "jobs.replies", "submit of j4 described job j9")


# --- the Raft store: the replayed log and what the stores reported --------------------------


def test_a_raft_store_reporting_what_the_log_does_not_hold_is_reported() -> None:
    sc = sim.load_scenario(SCENARIOS / "jobs-swarm-raft.toml")
    res = sim.run_scenario(sc, 2)
    assert res.violations == []
    h = cj.history(res, "raft", None, sc.params.engine.policy)
    assert cj.log_agreement(res, h) == []
    k = next(i for i, e in enumerate(res.emitted) if e.kind == "store.applied" and e.fields["op"] == "report")
    e = res.emitted[k]
    broken = copy.copy(res)
    broken.emitted = list(res.emitted)
    broken.emitted[k] = dataclasses.replace(e, fields={**e.fields, "accepted": not e.fields["accepted"]})
    far = dataclasses.replace(e, fields={**e.fields, "index": 10**6})
    broken.emitted.append(far)
    found = cj.log_agreement(broken, h)
    only(found, "jobs.log_agreement", "accepted")
    assert any("past its end" in v.description for v in found)


# --- deliberately broken stores in shipped scenarios ----------------------------------------


class Unfenced(JobMachine):
    """Broken: never refuses a stale token."""

    def _fence(self, cmd: dict[str, Any]) -> bool:
        self.epoch = max(self.epoch, int(cmd["epoch"]))
        return False


class UnfencedStore(MemoryStore):
    def __init__(self, store: MemoryStore) -> None:
        super().__init__(store.machine.policy)
        self.machine = Unfenced(store.machine.policy)


class Unsynced(MemoryStore):
    """Broken: answers without syncing, so a crash loses acknowledged writes."""

    def receive(self, ctx: Context, msg: Any) -> None:
        super().receive(ctx, msg)
        ctx.effects[:] = [e for e in ctx.effects if not isinstance(e, Sync)]


def with_store(make: Callable[[MemoryStore], Actor]) -> sim.System:
    def blueprint(config: JobsSimConfig, nodes: tuple[str, ...]) -> Any:
        base = system_jobs.blueprint(config, nodes)

        def build(node: str) -> dict[str, Actor]:
            actors = base(node)
            store = actors.get(STORE)
            if isinstance(store, MemoryStore):
                actors[STORE] = make(store)
            return actors

        return build

    return sim.System("jobs", system_jobs.parse, blueprint, system_jobs.check)


def test_a_store_that_fences_nothing_lets_the_stale_leader_write() -> None:
    res = sim.run_scenario(SCENARIOS / "jobs-leader-partition.toml", 1, system=with_store(UnfencedStore))
    assert "jobs.fencing" in {v.checker for v in res.violations}
    assert any("deposed leader" in v.description for v in res.violations)


def test_a_store_that_never_syncs_loses_accepted_jobs() -> None:
    res = sim.run_scenario(SCENARIOS / "jobs-store-crash.toml", 1, system=with_store(lambda s: Unsynced()))
    assert "jobs.none_lost" in {v.checker for v in res.violations}
