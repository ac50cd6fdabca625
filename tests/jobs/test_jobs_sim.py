"""The job engine in the simulator: the shipped scenarios keep every promise, replay byte for
byte, and do what their descriptions say; restarts never mix up answers to store requests.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import sim
from actors import Actor, ActorRef, Context, message
from actors.elections import NAME as ELECTION
from actors.elections.raft import LEADER, Raft
from actors.jobs import Job
from actors.jobs._plain import job_to_plain
from actors.jobs.blueprint import jobs_blueprint
from actors.jobs.config import JobsConfig
from actors.jobs.messages import GATEWAY
from actors.jobs.protocol import STORE, StoreReply, StoreRequest
from sim.checkers_jobs import history
from sim.system_jobs import JobsSimConfig

SCENARIOS = Path(__file__).parents[2] / "scenarios"
SHIPPED = sorted(p for p in SCENARIOS.glob("jobs-*.toml") if "swarm" not in p.stem)


def run(name: str, seed: int) -> sim.RunResult:
    res = sim.run_scenario(SCENARIOS / name, seed)
    assert res.violations == [], [str(v) for v in res.violations[:5]]
    return res


def kinds(res: sim.RunResult) -> Counter[str]:
    return Counter(e.kind for e in res.emitted)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
@pytest.mark.parametrize("seed", [1, 2])
def test_shipped_scenarios_keep_every_promise(path: Path, seed: int) -> None:
    res = run(path.name, seed)
    params: JobsSimConfig = sim.load_scenario(path).params
    accepted = [e for e in res.emitted if e.kind == "client.accepted"]
    assert len(accepted) == params.workload.count  # every job was accepted, none twice
    h = history(res, params.store, params.store_node, params.engine.policy)
    assert h.trail and len(h.final) == params.workload.count


@pytest.mark.parametrize("name", ["jobs-swarm-memory.toml", "jobs-swarm-raft.toml"])
def test_a_swarm_seed_replays_byte_for_byte(name: str) -> None:
    # Every shipped scenario's replay is checked by tests/sim/test_sim_cli.py; this is the
    # swarm's variant, with its random faults and clocks, as `troupe sim run --swarm` rebuilds it.
    sc = sim.swarm_scenario(sim.load_scenario(SCENARIOS / name), 11, "heavy")
    report = sim.check_determinism(sc, 11)
    assert report.identical, report.first_difference


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('store = "disk"', "jobs: store must be one of memory, raft, got 'disk'"),
        ("worker_count = 0", "jobs: worker_count must be >= 1, got 0"),
        ("priority = [0, 5]", "priority must be a range [low, high] within 1..10"),
        ("colour = 3", "jobs.colour: unknown field"),
        ('[[jobs.types]]\ntype = "x"\nfailure = 2.0', "jobs.types[0].failure: must be <= 1.0"),
    ],
)
def test_bad_jobs_tables_are_refused_in_one_line(table: str, message: str) -> None:
    text = (
        f'name = "x"\nsystem = "jobs"\nnodes = ["n1", "store", "client"]\nduration = 5.0\n[jobs]\n{table}\n'
    )
    with pytest.raises(sim.ScenarioError) as err:
        sim.parse_scenario(tomllib.loads(text), "x.toml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_job_types_become_the_simulated_job_model() -> None:
    sc = sim.load_scenario(SCENARIOS / "jobs-retry-storm.toml")
    assert set(sc.jobs.types) == {"flaky", "broken", "slow", "ok"}
    assert sc.jobs.types["broken"].failure == 1.0


def test_worker_crash_reruns_its_jobs_on_other_workers() -> None:
    res = run("jobs-worker-crash.toml", 1)
    lost = {e.fields["id"] for e in res.emitted if e.kind == "job.started" and e.node == "n2" and e.t < 3.0}
    finished = {(e.fields["id"], e.fields["attempt"]) for e in res.emitted if e.kind == "job.finished"}
    rerun = {e.fields["id"] for e in res.emitted if e.kind == "job.started" and e.fields["attempt"] > 1}
    unfinished = {j for j in lost if (j, 1) not in finished}
    assert unfinished and unfinished <= rerun
    assert kinds(res)["worker.offline"] >= 1


def test_leader_partition_fences_the_stale_leader() -> None:
    res = run("jobs-leader-partition.toml", 1)
    fenced = [e for e in res.emitted if e.kind == "store.applied" and e.fields.get("fenced")]
    assert 4099 in {e.fields["epoch"] for e in fenced}  # n3's token of epoch 1
    accepted = [(e.fields["index"], e.fields.get("epoch")) for e in res.emitted if e.kind == "store.applied"]
    accepted = [(i, t) for i, t in accepted if t is not None]
    for e in fenced:  # each refused write came after the store accepted a higher token
        assert any(i < e.fields["index"] and t > e.fields["epoch"] for i, t in accepted)
    passive = [e for e in res.emitted if e.kind == "scheduler.passive" and e.node == "n3"]
    assert passive and "fenced" in passive[0].fields["why"]


def test_leader_crash_hands_dispatch_to_a_higher_token() -> None:
    res = run("jobs-leader-crash.toml", 1)
    active = [(e.node, e.fields["token"]) for e in res.emitted if e.kind == "scheduler.active"]
    assert [n for n, _ in active] == ["n3", "n2", "n3"]
    assert [t for _, t in active] == sorted(t for _, t in active)


def test_store_crash_reloads_what_it_synced() -> None:
    res = run("jobs-store-crash.toml", 1)
    loaded = [e.fields["jobs"] for e in res.emitted if e.kind == "store.loaded"]
    assert len(loaded) == 3 and loaded[0] == 0 and loaded[1] > 0


def test_retry_storm_fills_and_requeues_the_dead_letter_queue() -> None:
    res = run("jobs-retry-storm.toml", 1)
    params: JobsSimConfig = sim.load_scenario(SCENARIOS / "jobs-retry-storm.toml").params
    h = history(res, "memory", "store", params.engine.policy)
    statuses = Counter(j.status for j in h.final.values())
    assert statuses["DEAD"] > 0 and statuses["SUCCESS"] > 0 and statuses["CANCELLED"] > 0
    requeued = [e for e in res.emitted if e.kind == "client.requeued"]
    assert requeued and requeued[0].fields["ids"]
    assert any(j.requeue_count for j in h.final.values())


def test_raft_store_replays_the_log_into_the_end_state() -> None:
    res = run("jobs-raft-leader-crash.toml", 1)
    params: JobsSimConfig = sim.load_scenario(SCENARIOS / "jobs-raft-leader-crash.toml").params
    h = history(res, "raft", None, params.engine.policy)  # the replay needs the cluster's policy
    assert h.source.startswith("Raft log of")
    assert Counter(j.status for j in h.final.values()) == {"SUCCESS": 80}
    assert kinds(res)["scheduler.active"] >= 2


# --- regression: answers to a previous incarnation's store requests -------------------------


@message("jobstest.Ask")
@dataclass(frozen=True, slots=True)
class Ask:
    """Tell the asker to send ``command`` as request ``req`` to ``actor`` on ``node``."""

    node: str
    actor: str
    req: int
    command: Any


class Asker(Actor):
    """Sends the store requests it is told to and emits every answer it gets."""

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        pass

    def receive(self, ctx: Context, msg: Any) -> None:
        if isinstance(msg, Ask):
            ctx.send(ActorRef(msg.node, msg.actor), StoreRequest(msg.req, msg.command))
        elif isinstance(msg, StoreReply):
            ctx.emit("asker.reply", req=msg.req, keys=",".join(sorted(msg.result)))


def submit(jid: str) -> dict[str, Any]:
    return {"op": "submit", "job": job_to_plain(Job.create(jid, "t", now=0.0))}


def test_a_restarted_gateway_never_relays_a_stale_answer() -> None:
    """Given a gateway whose request to a paused store is still queued when the gateway's node
    restarts, when the store resumes and answers it, then the new gateway does not take that
    answer for its own first request (both used to be request 1): the asker's second request,
    a ``stats``, is answered with statistics, never with the submit's result."""
    cfg = JobsConfig(heartbeat_interval=1.0, offline_after=3.0, request_timeout=1.0)
    base = jobs_blueprint(("n1",), config=cfg, store="memory", store_node="store")

    def build(node: str) -> dict[str, Actor]:
        return {"asker": Asker()} if node == "asker" else base(node)

    s = sim.Simulation(build, ["n1", "store", "asker"], seed=1)
    s.schedule(sim.Fault(1.0, "pause", node="store"))
    s.inject(ActorRef("asker", "asker"), Ask("n1", GATEWAY, 100, submit("a")), at=1.1)
    s.schedule(sim.Fault(1.5, "crash", node="n1"))
    s.schedule(sim.Fault(1.6, "restart", node="n1"))
    s.inject(ActorRef("asker", "asker"), Ask("n1", GATEWAY, 200, {"op": "stats"}), at=2.0)
    s.schedule(sim.Fault(2.5, "resume", node="store"))
    res = s.run(4.0)
    replies = {e.fields["req"]: e.fields["keys"] for e in res.emitted if e.kind == "asker.reply"}
    assert 100 not in replies  # its gateway died with it
    assert "by_status" in replies[200].split(","), replies


def test_a_restarted_raft_store_never_answers_with_a_stale_result() -> None:
    """Given a Raft store whose proposal is queued at a paused leader when the store's node
    restarts, when the leader resumes and answers that proposal, then the new store does not
    take the answer for its own first proposal: the asker's ``stats`` gets statistics."""
    cfg = JobsConfig(heartbeat_interval=1.0, offline_after=3.0, request_timeout=1.0)
    nodes = ("n1", "n2", "n3")
    base = jobs_blueprint(nodes, config=cfg, store="raft", election_timeout=0.3, interval=0.1)

    def build(node: str) -> dict[str, Actor]:
        return {"asker": Asker()} if node == "asker" else base(node)

    s = sim.Simulation(build, [*nodes, "asker"], seed=1)
    plan: dict[str, str] = {}

    def strike(w: sim.Simulation) -> None:
        leader = next(n for n in nodes if isinstance(r := w.actor(n, ELECTION), Raft) and r.role == LEADER)
        proposer = next(n for n in nodes if n != leader)
        plan.update(leader=leader, proposer=proposer)
        t = 2.0
        w.schedule(sim.Fault(t, "pause", node=leader))
        w.inject(ActorRef("asker", "asker"), Ask(proposer, STORE, 100, submit("a")), at=t + 0.01)
        w.schedule(sim.Fault(t + 0.03, "crash", node=proposer))
        w.schedule(sim.Fault(t + 0.04, "restart", node=proposer))
        w.inject(ActorRef("asker", "asker"), Ask(proposer, STORE, 200, {"op": "stats"}), at=t + 0.06)
        w.schedule(sim.Fault(t + 0.15, "resume", node=leader))

    s.call_at(1.9, strike)
    res = s.run(6.0)
    replies = {e.fields["req"]: e.fields["keys"] for e in res.emitted if e.kind == "asker.reply"}
    assert plan and "by_status" in replies[200].split(","), (plan, replies)
