"""Nodes and actors: crash/restart durability, pause/resume, clocks, timers, effects, jobs."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import pytest

import sim
from actors import Actor, ActorRef, Context, JobDone
from sim.clock import EPOCH


class Journal(Actor):
    """On each Num(n): persist n; sync only when n is even. Remembers what on_start saw."""

    def __init__(self) -> None:
        self.started_with: dict[str, Any] = {}

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        self.started_with = dict(durable)

    def receive(self, ctx: Context, msg: Any) -> None:
        ctx.persist(f"k{msg.n}", msg.n)
        if msg.n % 2 == 0:
            ctx.sync()


def test_crash_keeps_synced_writes_and_loses_unsynced_ones(sim_actors: Any) -> None:
    # Given a journal that syncs after even numbers only
    j = ActorRef("n1", "journal")
    s = sim.Simulation(lambda node: {"journal": Journal()}, ["n1"], seed=1)
    for n in range(4):  # 0 synced, 1 synced by 2's sync, 2 synced, 3 unsynced
        s.inject(j, sim_actors.Num(n), at=0.1 * (n + 1))
    # When the node crashes after all four and restarts
    s.schedule(sim.Fault(1.0, "crash", node="n1"))
    s.schedule(sim.Fault(2.0, "restart", node="n1"))
    s.run(3.0)
    # Expect the restarted actor to see the synced writes only
    actor = s.actor("n1", "journal")
    assert isinstance(actor, Journal)
    assert actor.started_with == {"k0": 0, "k1": 1, "k2": 2}
    assert s.durable("n1", "journal") == {"k0": 0, "k1": 1, "k2": 2}


def test_crash_drops_timers_and_messages_in_flight(sim_actors: Any) -> None:
    rec = ActorRef("n2", "rec")

    def build(node: str) -> dict[str, Actor]:
        return {"tick": sim_actors.Ticker(rec, 0.1)} if node == "n1" else {"rec": sim_actors.Recorder()}

    s = sim.Simulation(build, ["n1", "n2"], seed=1, network=sim.NetworkConfig(sim.Constant(0.05)))
    s.schedule(sim.Fault(1.02, "crash", node="n2"))  # Num sent at 1.0 is in flight
    s.schedule(sim.Fault(1.03, "restart", node="n2"))
    s.schedule(sim.Fault(2.0, "crash", node="n1"))
    res = s.run(3.0)
    got = s.actor("n2", "rec").got  # type: ignore[union-attr]
    assert got and all(now > 1.03 for now, _, _, _ in got)
    assert sorted({r[5] for r in res.trace.records if r[1] == "drop"}) == ["crashed"]
    assert max(r[0] for r in res.trace.records if r[1] == "timer") < 2_000_000_000
    assert s.node_state("n1") == "down" and s.actor("n1", "tick") is None


def test_pause_queues_messages_and_timers_until_resume(sim_actors: Any) -> None:
    rec = ActorRef("n2", "rec")

    def build(node: str) -> dict[str, Actor]:
        return {"tick": sim_actors.Ticker(rec, 0.1)} if node == "n1" else {"rec": sim_actors.Recorder()}

    s = sim.Simulation(build, ["n1", "n2"], seed=1, network=sim.NetworkConfig(sim.Constant(0.001)))
    s.schedule(sim.Fault(1.0, "pause", node="n2"))
    s.schedule(sim.Fault(2.0, "resume", node="n2"))
    s.run(3.0)
    got = s.actor("n2", "rec").got  # type: ignore[union-attr]
    nums = [m.n for _, _, _, m in got]
    assert nums == list(range(len(nums)))  # nothing lost, due order kept
    times = [now for now, _, _, _ in got]
    assert not any(1.0 < t < 2.0 for t in times)
    assert sum(1 for t in times if t == 2.0) == 10


def test_paused_node_handles_nothing_including_its_own_timers(sim_actors: Any) -> None:
    rec = ActorRef("n2", "rec")

    def build(node: str) -> dict[str, Actor]:
        return {"tick": sim_actors.Ticker(rec, 0.1)} if node == "n1" else {"rec": sim_actors.Recorder()}

    s = sim.Simulation(build, ["n1", "n2"], seed=1)
    s.schedule(sim.Fault(1.05, "pause", node="n1"))
    s.schedule(sim.Fault(2.05, "resume", node="n1"))
    s.run(3.0)
    sent = [r[0] for r in s.trace.records if r[1] == "send"]
    assert not any(1.05e9 < t < 2.05e9 for t in sent)
    assert 2_050_000_000 in sent  # the one queued tick, handled at resume


def test_clock_offset_drift_and_jump(sim_actors: Any) -> None:
    rec = ActorRef("n2", "rec")

    def build(node: str) -> dict[str, Actor]:
        return {"tick": sim_actors.Ticker(rec, 1.0)} if node == "n1" else {"rec": sim_actors.Recorder()}

    clocks = {"n1": sim.ClockConfig(drift=0.25), "n2": sim.ClockConfig(offset=100.0, drift=-0.2)}
    s = sim.Simulation(
        build, ["n1", "n2"], seed=1, clocks=clocks, network=sim.NetworkConfig(sim.Constant(0.0))
    )
    s.schedule(sim.Fault(2.5, "clock_jump", node="n2", by=-50.0))
    s.run(4.0)
    got = s.actor("n2", "rec").got  # type: ignore[union-attr]
    # n1's clock runs 25 % fast: a 1 s timer fires every 0.8 true seconds.
    true_times = [r[0] / 1e9 for r in s.trace.records if r[1] == "deliver"]
    assert true_times == pytest.approx([0.8, 1.6, 2.4, 3.2, 4.0])
    nows = [now for now, _, _, _ in got]
    walls = [wall for _, wall, _, _ in got]
    assert nows == pytest.approx([0.8 * t / 0.8 * 0.8 for t in [0.8, 1.6, 2.4, 3.2, 4.0]])
    assert walls[:3] == pytest.approx([EPOCH + 100 + n for n in nows[:3]])
    assert walls[3:] == pytest.approx([EPOCH + 50 + n for n in nows[3:]])  # jumped back 50 s
    assert all(b > a for a, b in itertools.pairwise(nows))  # monotonic never goes back


class TimerUser(Actor):
    """Sets 'a' at 1 s then replaces it with 2 s; sets 'b' and cancels it; emits on fire."""

    def __init__(self, note: Any) -> None:
        self.note = note

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        ctx.set_timer("a", 1.0, self.note("a1"))
        ctx.set_timer("a", 2.0, self.note("a2"))
        ctx.set_timer("b", 1.5, self.note("b"))
        ctx.cancel_timer("b")

    def receive(self, ctx: Context, msg: Any) -> None:
        ctx.emit("fired", text=msg.text, now=ctx.now, self_sender=ctx.sender == ctx.self_ref)


def test_timers_replace_and_cancel(sim_actors: Any) -> None:
    s = sim.Simulation(lambda n: {"t": TimerUser(sim_actors.Note)}, ["n1"], seed=1)
    res = s.run(5.0)
    assert [(e.kind, e.fields) for e in res.emitted] == [
        ("fired", {"text": "a2", "now": 2.0, "self_sender": True})
    ]


class Weird(Actor):
    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        ctx.effects.append("not an effect")  # type: ignore[arg-type]


def test_unknown_effect_raises() -> None:
    s = sim.Simulation(lambda n: {"w": Weird()}, ["n1"], seed=1)
    with pytest.raises(sim.SimulationError, match="unknown effect"):
        s.run(1.0)


class Worker(Actor):
    def __init__(self) -> None:
        self.done: list[JobDone] = []

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        ctx.execute_job("j1", "fast", None, timeout=10.0)
        ctx.execute_job("j2", "slow", None, timeout=1.0)
        ctx.execute_job("j3", "flaky", None, timeout=10.0)

    def receive(self, ctx: Context, msg: Any) -> None:
        self.done.append(msg)


def test_jobs_finish_fail_and_time_out_per_the_job_model() -> None:
    model = sim.JobModel(
        {
            "fast": sim.JobSpec(sim.Constant(0.2)),
            "slow": sim.JobSpec(sim.Constant(5.0)),
            "flaky": sim.JobSpec(sim.Constant(0.3), failure=1.0),
        }
    )
    s = sim.Simulation(lambda n: {"w": Worker()}, ["n1"], seed=1, jobs=model)
    s.run(3.0)
    done = {d.job_id: d for d in s.actor("n1", "w").done}  # type: ignore[union-attr]
    assert done["j1"].ok and done["j1"].duration == 0.2
    assert not done["j2"].ok and "timeout" in done["j2"].error
    assert not done["j3"].ok and "failure" in done["j3"].error


def test_job_result_is_lost_when_the_node_crashes() -> None:
    model = sim.JobModel({"fast": sim.JobSpec(sim.Constant(0.5))})
    s = sim.Simulation(lambda n: {"w": Worker()}, ["n1"], seed=1, jobs=model)
    s.schedule(sim.Fault(0.1, "crash", node="n1"))
    res = s.run(1.0)
    assert [r[5] for r in res.trace.records if r[1] == "drop"] == [
        "job-lost"
    ]  # j1; the others took the default 0.01 s


class Parent(Actor):
    def __init__(self, child: Actor) -> None:
        self.child = child

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        ref = ctx.spawn("child", self.child)
        ctx.emit("spawned", ref=str(ref))
        ctx.set_timer("stop", 1.0, ref)

    def receive(self, ctx: Context, msg: Any) -> None:
        ctx.stop("child")


def test_spawn_and_stop(sim_actors: Any) -> None:
    s = sim.Simulation(lambda n: {"p": Parent(sim_actors.Recorder())}, ["n1"], seed=1)
    s.run(0.5)
    assert isinstance(s.actor("n1", "child"), sim_actors.Recorder)
    s.run(2.0)
    assert s.actor("n1", "child") is None
    assert [r[1] for r in s.trace.records if r[1] in ("spawn", "stop")] == ["spawn", "stop"]


def test_codec_error_at_send_is_a_traced_drop(sim_actors: Any) -> None:
    s = sim.Simulation(lambda n: {"r": sim_actors.Recorder()}, ["n1"], seed=1)
    s.start()
    s.inject(ActorRef("n1", "r"), sim_actors.Num("not an int"))
    res = s.run(1.0)
    assert s.actor("n1", "r").got == []  # type: ignore[union-attr]
    (drop,) = [r for r in res.trace.records if r[1] == "drop"]
    assert drop[5].startswith("codec:")
