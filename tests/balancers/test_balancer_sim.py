"""Each LOAD_BALANCER_STRATEGY keeps its promise inside a running job cluster (simulated).

Four equal workers, no faults. The balancer actor is the real one, with its strategy wrapped so
that every choice is also emitted (``balancer.choice``: the job's priority, the worker table the
strategy saw, the worker it chose); the jobs' lives come from the trace (``job.started`` and
``job.finished`` per worker). What is asserted:

- every strategy: each choice is an available worker (online, a free slot) of the table; no
  worker ever runs more routed jobs at once than its capacity, nor more fast-lane jobs (those its
  node's gateway dispatched at submit, ``lane`` in the job events) than its lane slots; the
  table never counts fewer routed jobs on a worker than the trace shows it running (loads are
  never underestimated, which is what keeps the capacity promise); the job engine's checkers
  find nothing;
- ``round_robin`` (capacity never reached): the numbers of jobs the workers started differ by at
  most one, and each choice is the next available worker after the previous one in id order;
- ``least_loaded``: no available worker in the table has fewer jobs than the one chosen;
- ``priority``: a job of priority >= 8 goes to a least-loaded worker, the others follow the
  rotation (cursor = the last worker given any job);
- ``lru``: the chosen worker was given a job least recently (never-used first);
- ``power_of_two``, ``random``, ``lru``: every worker gets work.

What is not asserted: that a strategy is least-loaded by the *true* load. The table learns a
worker's load from its status reports, so a worker that just finished a job still looks busy
for a moment; the promises are about the table the strategy is given.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import pytest

import sim
from actors import Actor, Context, Rng
from actors.balancers import STRATEGIES, Strategy, WorkerView
from actors.jobs.balancer import Balancer
from actors.jobs.config import JobsConfig
from actors.jobs.messages import BALANCER
from sim import system_jobs
from sim.system_jobs import JobsSimConfig, JobType, Workload

WORKERS = ("n1", "n2", "n3", "n4")
LANE_SLOTS = 1
NODES = (*WORKERS, "store", "client")


class Recorder:
    """A strategy that asks another and remembers each question and answer."""

    def __init__(self, inner: Strategy) -> None:
        self.inner = inner
        self.log: list[tuple[int, tuple[WorkerView, ...], str | None]] = []

    @property
    def name(self) -> str:
        return self.inner.name

    def choose(self, job_priority: int, workers: Sequence[WorkerView], rng: Rng, now: float) -> str | None:
        chosen = self.inner.choose(job_priority, workers, rng, now)
        self.log.append((job_priority, tuple(workers), chosen))
        return chosen

    def on_assigned(self, worker_id: str, now: float) -> None:
        self.inner.on_assigned(worker_id, now)

    def on_finished(self, worker_id: str, now: float) -> None:
        self.inner.on_finished(worker_id, now)


class AuditedBalancer(Balancer):
    """The real balancer; its strategy's choices are emitted as ``balancer.choice``."""

    def __init__(self, config: JobsConfig) -> None:
        super().__init__(config)
        self.recorder = Recorder(self.pool.strategy)
        self.pool.strategy = self.recorder

    def receive(self, ctx: Context, msg: Any) -> None:
        super().receive(ctx, msg)
        for priority, views, chosen in self.recorder.log:
            table = [[w.id, w.active_jobs, w.capacity, w.online, w.last_assigned_at] for w in views]
            ctx.emit("balancer.choice", priority=priority, chosen=chosen, table=table)
        self.recorder.log.clear()


def audited_blueprint(config: JobsSimConfig, nodes: tuple[str, ...]) -> Any:
    base = system_jobs.blueprint(config, nodes)

    def build(node: str) -> dict[str, Actor]:
        actors = base(node)
        if BALANCER in actors:
            actors[BALANCER] = AuditedBalancer(config.engine)
        return actors

    return build


AUDITED = sim.System(
    "jobs", system_jobs.parse, audited_blueprint, system_jobs.check, system_jobs.liveness_seconds
)


def run_cluster(strategy: str, capacity: int, *, count: int = 120, seed: int = 1) -> sim.RunResult:
    params = JobsSimConfig(
        store="memory",
        engine=JobsConfig(
            worker_count=capacity,
            heartbeat_interval=1.0,
            offline_after=3.0,
            tick=0.05,
            request_timeout=1.0,
            strategy=strategy,
            lane_slots=LANE_SLOTS,
        ),
        workload=Workload(count=count, rate=40.0, start=2.0, priority=(1, 10), max_retries=0, timeout=5.0),
        types=(JobType("work", duration=sim.Uniform(0.1, 0.8)),),
    )
    sc = sim.Scenario(
        f"balancer-{strategy}",
        "jobs",
        NODES,
        30.0,
        params=params,
        network=sim.NetworkConfig(latency=sim.Uniform(0.001, 0.005)),
        jobs=params.job_model,
    )
    res = sim.run_scenario(sc, seed, system=AUDITED)
    assert res.violations == [], [str(v) for v in res.violations[:5]]
    return res


def choices(res: sim.RunResult) -> list[tuple[float, int, str, list[WorkerView]]]:
    """Every choice the strategy made (questions answered None are checked and left out)."""
    out = []
    for e in res.emitted:
        if e.kind == "balancer.choice":
            table = [WorkerView(i, a, c, o, last) for i, a, c, o, last in e.fields["table"]]
            chosen = e.fields["chosen"]
            if chosen is None:
                assert not any(w.available for w in table), (e.t, table)
                continue
            out.append((e.t, int(e.fields["priority"]), str(chosen), table))
    return out


def routed(e: sim.Emitted, kind: str) -> bool:
    """An event ``kind`` of a job the balancer routed (fast-lane jobs have slots of their own)."""
    return e.kind == kind and not e.fields.get("lane")


def started(res: sim.RunResult) -> Counter[str]:
    return Counter(e.node for e in res.emitted if routed(e, "job.started"))


def running_before(res: sim.RunResult, worker: str, t: float) -> int:
    """Routed jobs surely running on ``worker`` at ``t``: started before it, not finished by it."""
    ups = sum(1 for e in res.emitted if routed(e, "job.started") and e.node == worker and e.t < t)
    downs = sum(1 for e in res.emitted if routed(e, "job.finished") and e.node == worker and e.t <= t)
    return ups - downs


def assert_common_promises(res: sim.RunResult, capacity: int) -> None:
    picks = choices(res)
    assert picks, "the balancer made no choice"
    for t, priority, chosen, table in picks:
        views = {w.id: w for w in table}
        assert views[chosen].available, (t, priority, chosen, table)
        for w in table:
            assert w.active_jobs >= running_before(res, w.id, t), (t, w)
    live: dict[tuple[str, bool], int] = defaultdict(int)
    limit = {False: capacity, True: LANE_SLOTS}
    for e in res.emitted:
        key = (e.node, bool(e.fields.get("lane")))
        if e.kind == "job.started":
            live[key] += 1
            assert live[key] <= limit[key[1]], f"{key} runs {live[key]} jobs at t={e.t:.3f}"
        elif e.kind == "job.finished":
            live[key] -= 1
    assert set(started(res)) == set(WORKERS), started(res)
    assert any(e.fields.get("lane") for e in res.emitted if e.kind == "job.started")  # both kinds ran


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_tight_cluster_never_exceeds_capacity(strategy: str) -> None:
    res = run_cluster(strategy, capacity=2)
    assert_common_promises(res, capacity=2)
    assert any(not w.available for _, _, _, table in choices(res) for w in table)  # workers did fill up


def test_round_robin_shares_work_within_one() -> None:
    res = run_cluster("round_robin", capacity=64)
    assert_common_promises(res, capacity=64)
    counts = started(res)
    assert max(counts.values()) - min(counts.values()) <= 1, counts
    previous: str | None = None
    for _, _, chosen, table in choices(res):  # one choice per job: no worker was ever full
        ids = sorted(w.id for w in table if w.available)
        assert chosen == (ids[0] if previous is None else next((i for i in ids if i > previous), ids[0]))
        previous = chosen


def test_least_loaded_picks_a_lightest_worker() -> None:
    for capacity in (2, 64):
        res = run_cluster("least_loaded", capacity=capacity)
        assert_common_promises(res, capacity)
        for t, _, chosen, table in choices(res):
            views = {w.id: w for w in table}
            lightest = min(w.active_jobs for w in table if w.available)
            assert views[chosen].active_jobs == lightest, (t, chosen, table)


def test_priority_sends_urgent_jobs_to_the_lightest_and_rotates_the_rest() -> None:
    res = run_cluster("priority", capacity=3)
    assert_common_promises(res, capacity=3)
    urgent = 0
    previous: str | None = None
    for t, priority, chosen, table in choices(res):
        views = {w.id: w for w in table}
        available = sorted(w.id for w in table if w.available)
        if priority >= 8:
            urgent += 1
            assert views[chosen].active_jobs == min(views[i].active_jobs for i in available), (t, table)
        else:
            rotation = (
                available[0] if previous is None else next((i for i in available if i > previous), None)
            )
            assert chosen == (rotation or available[0]), (t, priority, previous, chosen, table)
        previous = chosen
    assert urgent > 10


def test_lru_picks_the_least_recently_used_worker() -> None:
    res = run_cluster("lru", capacity=3)
    assert_common_promises(res, capacity=3)
    for t, _, chosen, table in choices(res):
        available = [w for w in table if w.available]
        oldest = min(
            available,
            key=lambda w: (w.last_assigned_at is not None, w.last_assigned_at or 0.0, w.id),
        )
        assert chosen == oldest.id, (t, chosen, table)


@pytest.mark.parametrize("strategy", ["random", "power_of_two"])
def test_randomised_strategies_spread_work(strategy: str) -> None:
    res = run_cluster(strategy, capacity=64)
    assert_common_promises(res, capacity=64)
    counts = started(res)
    assert min(counts.values()) >= 10, counts  # 120 jobs over 4 workers
