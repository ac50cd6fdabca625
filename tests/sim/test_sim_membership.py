"""Membership changes: late nodes start only when told; a graceful stop runs on_stop, a crash not."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import sim
from actors import Actor, ActorRef, Context
from actors import heartbeat as hb

SCENARIOS = Path(__file__).parents[2] / "scenarios"
REC = ActorRef("n2", "rec")


class Leaver(Actor):
    """Says hello at start; on a graceful stop says bye, persists (synced) and an unsynced note."""

    def __init__(self, note: Any) -> None:
        self.note = note
        self.started_with: dict[str, Any] = {}

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        self.started_with = dict(durable)
        ctx.send(REC, self.note("hello"))

    def receive(self, ctx: Context, msg: Any) -> None:
        pass

    def on_stop(self, ctx: Context) -> None:
        ctx.send(REC, self.note("bye"))
        ctx.emit("left", at=ctx.now)
        ctx.persist("left", True)
        ctx.sync()
        ctx.persist("unsynced", True)
        ctx.set_timer("ignored", 0.1, self.note("never"))


def world(sim_actors: Any, late: tuple[str, ...] = ()) -> sim.Simulation:
    def build(node: str) -> dict[str, Actor]:
        return {"leaver": Leaver(sim_actors.Note)} if node == "n1" else {"rec": sim_actors.Recorder()}

    net = sim.NetworkConfig(sim.Constant(0.01))
    return sim.Simulation(build, ["n1", "n2"], seed=1, network=net, late=late)


def texts(s: sim.Simulation) -> list[str]:
    rec = s.actor("n2", "rec")
    return [m.text for _, _, _, m in rec.got]  # type: ignore[union-attr]


def test_late_node_stays_down_until_started(sim_actors: Any) -> None:
    # Given n1 is a late node
    s = world(sim_actors, late=("n1",))
    s.schedule(sim.Fault(5.0, "start", node="n1"))
    # When the run reaches 4 s, expect n1 never to have run
    s.run(4.0)
    assert s.node_state("n1") == "down" and s.actor("n1", "leaver") is None
    assert texts(s) == []
    # When the start fault is applied, expect it up with a first incarnation
    res = s.run(6.0)
    assert s.node_state("n1") == "up"
    assert texts(s) == ["hello"]
    starts = [r for r in res.trace.records if r[1] == "start" and r[2] == "n1"]
    assert [r[0] for r in starts] == [5_000_000_000, 5_000_000_000]  # the fault, then the bring-up
    assert res.late == ("n1",)


def test_late_node_is_down_in_the_timeline(sim_actors: Any) -> None:
    s = world(sim_actors, late=("n1",))
    s.schedule(sim.Fault(5.0, "start", node="n1"))
    res = s.run(6.0)
    tl = res.timeline
    assert tl.snapshots[0].down == frozenset({"n1"})
    assert not tl.node_healthy("n1", 0.0, 4.9) and tl.down_at("n1", 4.9)
    assert tl.node_healthy("n1", 5.0, 6.0) and not tl.down_at("n1", 5.0)


def test_messages_to_a_late_node_are_dropped(sim_actors: Any) -> None:
    s = world(sim_actors, late=("n2",))
    res = s.run(1.0)  # n1 says hello to n2, which has not started
    assert [r[5] for r in res.trace.records if r[1] == "drop"] == ["crashed"]


def test_stop_runs_on_stop_and_its_sends_are_delivered(sim_actors: Any) -> None:
    # Given a node that will leave gracefully at 1 s
    s = world(sim_actors)
    s.schedule(sim.Fault(1.0, "stop", node="n1"))
    res = s.run(2.0)
    # Expect its goodbye delivered, its emit traced, its synced write kept and nothing else
    assert texts(s) == ["hello", "bye"]
    assert [e.kind for e in res.emitted] == ["left"]
    assert s.durable("n1", "leaver") == {"left": True}
    assert s.node_state("n1") == "down"
    assert not any(r[1] == "timer" for r in res.trace.records)  # on_stop's timer was ignored
    kinds = [(r[1], r[3]) for r in res.trace.records if r[1] in ("stop", "crash") and r[2] == "n1"]
    assert kinds == [("stop", ""), ("stop", "leaver")]  # the fault, then each actor
    assert res.timeline.down_at("n1", 1.5)


def test_crash_does_not_run_on_stop(sim_actors: Any) -> None:
    s = world(sim_actors)
    s.schedule(sim.Fault(1.0, "crash", node="n1"))
    res = s.run(2.0)
    assert texts(s) == ["hello"]
    assert res.emitted == []
    assert s.durable("n1", "leaver") == {}


def test_stopped_node_starts_again_with_its_synced_state(sim_actors: Any) -> None:
    s = world(sim_actors)
    s.schedule(sim.Fault(1.0, "stop", node="n1"))
    s.schedule(sim.Fault(2.0, "start", node="n1"))
    s.run(3.0)
    leaver = s.actor("n1", "leaver")
    assert isinstance(leaver, Leaver)
    assert leaver.started_with == {"left": True}
    assert texts(s) == ["hello", "bye", "hello"]


def test_stop_of_a_paused_node_drops_its_queue_and_runs_on_stop(sim_actors: Any) -> None:
    s = world(sim_actors)
    s.inject(ActorRef("n1", "leaver"), sim_actors.Note("queued"), at=1.5)
    s.schedule(sim.Fault(1.0, "pause", node="n1"))
    s.schedule(sim.Fault(2.0, "stop", node="n1"))
    s.schedule(sim.Fault(2.5, "resume", node="n1"))  # no-op: the node is down
    s.run(3.0)
    assert texts(s) == ["hello", "bye"]
    assert s.node_state("n1") == "down"


def test_start_and_stop_of_a_node_in_its_state_are_no_ops(sim_actors: Any) -> None:
    s = world(sim_actors)
    s.schedule(sim.Fault(1.0, "start", node="n1"))  # already up
    s.schedule(sim.Fault(2.0, "stop", node="n1"))
    s.schedule(sim.Fault(2.5, "stop", node="n1"))  # already down
    s.run(3.0)
    assert texts(s) == ["hello", "bye"]


def test_late_must_be_among_the_nodes(sim_actors: Any) -> None:
    with pytest.raises(ValueError, match="late nodes must be among the nodes"):
        world(sim_actors, late=("n9",))


LATE = """
name = "x"
system = "heartbeat"
nodes = 3
late = ["n3"]
duration = 10.0
[[faults]]
at = 2.0
action = "start"
node = "n3"
[[faults]]
at = 6.0
action = "stop"
node = "n3"
"""


def test_scenario_late_key_and_membership_actions(tmp_path: Path) -> None:
    p = tmp_path / "x.toml"
    p.write_text(LATE)
    sc = sim.load_scenario(p)
    assert sc.late == ("n3",)
    assert [f.describe() for f in sc.faults] == ["start(n3)", "stop(n3)"]
    res = sim.run_scenario(sc, 1)
    assert res.violations == []
    assert res.timeline.down_at("n3", 1.0) and not res.timeline.down_at("n3", 3.0)
    assert res.timeline.down_at("n3", 7.0)


@pytest.mark.parametrize(
    ("late", "expected"),
    [
        ('["n9"]', "late[0]: unknown node 'n9' (nodes are n1..n3)"),
        ('["n3", "n3"]', "late[1]: node 'n3' is listed twice"),
        ("[3]", "late[0]: expected a node id, got int 3"),
        ('"n3"', "late: expected list, got str 'n3'"),
    ],
)
def test_bad_late_key_is_named(tmp_path: Path, late: str, expected: str) -> None:
    p = tmp_path / "x.toml"
    p.write_text(LATE.replace('late = ["n3"]', f"late = {late}"))
    with pytest.raises(sim.ScenarioError) as info:
        sim.load_scenario(p)
    assert str(info.value) == f"{p}: {expected}"


def test_membership_scenario_keeps_the_heartbeat_promises() -> None:
    res = sim.run_scenario(SCENARIOS / "heartbeat-membership.toml", 3)
    assert res.violations == []
    # n6 left gracefully at 25 s: every member declares it dead, as for a crash
    dead_n6 = {e.node for e in res.emitted if e.kind == "peer.dead" and e.fields["peer"] == "n6" and e.t > 25}
    assert {"n1", "n2", "n3", "n4"} <= dead_n6


def test_a_pong_older_than_dead_after_does_not_revive_a_dead_peer() -> None:
    # Given n2 declared n1 dead while n1's pongs were held on a clogged link
    s = sim.Simulation(hb.blueprint(("n1", "n2"), hb.HeartbeatConfig(1.0, 2.0, 3.0)), ["n1", "n2"], seed=1)
    s.schedule(sim.Fault(1.5, "clog", src="n1", dst="n2"))
    s.schedule(sim.Fault(8.0, "crash", node="n1"))
    # When the link reopens after n1 crashed: every held pong is older than dead_after
    s.schedule(sim.Fault(12.5, "unclog"))
    res = s.run(14.0)
    # Expect n1 to stay dead at n2
    kinds = [e.kind for e in res.emitted if e.node == "n2"]
    assert "peer.dead" in kinds and "peer.alive" not in kinds
