"""The simulator's fast paths change nothing a run records: sends and timers applied when asked
for keep the effect order, deliveries that skip the lookup obey every rule, and the compact
trace (deliver ints, time marks, interned ids, chunks packed during the run) decodes to the same
records, counts and hash."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgpack
import pytest

import sim
from actors import Actor, ActorRef, Context
from actors import heartbeat as hb
from sim.trace import CHUNK

SCENARIOS = Path(__file__).parents[2] / "scenarios"


class Mixed(Actor):
    """On Num(n): send, emit, send, set a timer, persist, sync, send, in that order."""

    def __init__(self, peer: ActorRef, note: Any) -> None:
        self.peer = peer
        self.note = note
        self.timers = 0

    def receive(self, ctx: Context, msg: Any) -> None:
        if msg == self.note:
            self.timers += 1
            return
        ctx.send(self.peer, msg)
        ctx.emit("mixed", n=msg.n)
        ctx.send(self.peer, msg)
        ctx.set_timer("t", 0.5, self.note)
        ctx.persist("n", msg.n)
        ctx.sync()
        ctx.send(self.peer, msg)


def test_effects_keep_their_order_when_some_are_applied_at_once(sim_actors: Any) -> None:
    # Given an actor whose handler mixes effects the simulator applies at once with others
    peer = ActorRef("n2", "rec")

    def build(node: str) -> dict[str, Actor]:
        if node == "n1":
            return {"mixed": Mixed(peer, sim_actors.Note("timer"))}
        return {"rec": sim_actors.Recorder()}

    s = sim.Simulation(build, ["n1", "n2"], seed=1)
    s.inject(ActorRef("n1", "mixed"), sim_actors.Num(7), at=0.1)
    res = s.run(2.0)
    # Then the trace holds them in the order the handler asked for them
    at_handler = [(r[1], r[2]) for r in res.trace.records if r[0] == 100_000_000 and r[2] == "n1"]
    assert at_handler == [
        ("send", "n1"),  # the client's inject
        ("deliver", "n1"),
        ("send", "n1"),
        ("emit", "n1"),
        ("send", "n1"),
        ("persist", "n1"),
        ("sync", "n1"),
        ("send", "n1"),
    ]
    assert [m.n for _, _, _, m in s.actor("n2", "rec").got] == [7, 7, 7]  # type: ignore[union-attr]
    assert s.actor("n1", "mixed").timers == 1  # type: ignore[union-attr]
    assert s.durable("n1", "mixed") == {"n": 7}


class Spawner(Actor):
    """At start, sends ``msg`` to ``late`` (not there yet), then spawns ``late``."""

    def __init__(self, msg: Any, late: Actor) -> None:
        self.msg = msg
        self.late = late

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        ctx.send(ActorRef(ctx.node_id, "late"), self.msg)
        ctx.spawn("late", self.late)


def test_message_to_an_actor_spawned_after_the_send_is_delivered(sim_actors: Any) -> None:
    s = sim.Simulation(
        lambda n: {"spawner": Spawner(sim_actors.Num(1), sim_actors.Recorder())}, ["n1"], seed=1
    )
    s.run(1.0)
    assert [m for _, _, _, m in s.actor("n1", "late").got] == [sim_actors.Num(1)]  # type: ignore[union-attr]


def test_message_to_a_stopped_actor_reaches_its_successor_of_the_same_name(sim_actors: Any) -> None:
    # Given a message in flight to n2/rec, whose actor is stopped and a new one spawned meanwhile
    rec = ActorRef("n2", "rec")

    class Replacer(Actor):
        def receive(self, ctx: Context, msg: Any) -> None:
            ctx.stop("rec")
            ctx.spawn("rec", sim_actors.Recorder())

    def build(node: str) -> dict[str, Actor]:
        if node == "n1":
            return {"burst": sim_actors.Burst(rec, 1)}
        return {"rec": sim_actors.Recorder(), "replacer": Replacer()}

    s = sim.Simulation(build, ["n1", "n2"], seed=1, network=sim.NetworkConfig(sim.Constant(0.5)))
    s.start()
    first = s.actor("n2", "rec")
    s.inject(ActorRef("n2", "replacer"), sim_actors.Note("go"), at=0.2)
    s.run(1.0)
    # Then the successor got it, the stopped one did not
    assert first.got == []  # type: ignore[attr-defined]
    assert [m for _, _, _, m in s.actor("n2", "rec").got] == [sim_actors.Num(0)]  # type: ignore[union-attr]


def test_message_sent_before_a_restart_is_dropped_even_if_the_actor_is_back(sim_actors: Any) -> None:
    rec = ActorRef("n2", "rec")

    def build(node: str) -> dict[str, Actor]:
        return {"burst": sim_actors.Burst(rec, 3)} if node == "n1" else {"rec": sim_actors.Recorder()}

    s = sim.Simulation(build, ["n1", "n2"], seed=1, network=sim.NetworkConfig(sim.Constant(0.5)))
    s.schedule(sim.Fault(0.1, "crash", node="n2"))
    s.schedule(sim.Fault(0.2, "restart", node="n2"))
    res = s.run(1.0)
    assert s.actor("n2", "rec").got == []  # type: ignore[union-attr]
    assert [r[5] for r in res.trace.records if r[1] == "drop"] == ["crashed"] * 3


def heartbeat_sim(nodes: int, seed: int = 1, actor: str = hb.NAME) -> sim.Simulation:
    ids = tuple(f"n{i}" for i in range(1, nodes + 1))
    bp = hb.blueprint(ids, hb.HeartbeatConfig(interval=1.0, suspect_after=2.0, dead_after=3.0))
    build = bp if actor == hb.NAME else (lambda node: {actor: bp(node)[hb.NAME]})
    return sim.Simulation(build, ids, seed=seed, network=sim.NetworkConfig(sim.Uniform(0.001, 0.003)))


def check_compact_form(trace: sim.Trace) -> None:
    records = trace.records
    assert len(records) == len(trace)
    assert trace.counts() == dict(sorted(Counter(r[1] for r in records).items()))
    sends = {r[4]: (r[5], r[6]) for r in records if r[1] == "send"}
    for r in records:
        if r[1] == "deliver":
            assert (r[2], r[3]) == sends[r[4]]
    times = [r[0] for r in records]
    assert times == sorted(times)


@pytest.mark.parametrize(
    "scenario", ["heartbeat-crash-restart", "heartbeat-loss-skew", "raft-leader-pause", "jobs-leader-crash"]
)
def test_compact_trace_decodes_to_consistent_records(scenario: str) -> None:
    res = sim.run_scenario(SCENARIOS / f"{scenario}.toml", 4)
    check_compact_form(res.trace)
    assert res.events == len(res.trace)


def test_packing_during_the_run_changes_neither_records_nor_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a run long enough that the loop packed chunks of its trace
    packed = heartbeat_sim(10)
    res = packed.run(40.0)
    assert len(packed.trace.compact) < CHUNK < 3 * CHUNK < len(packed.trace)  # packed and dropped
    # And the same run with packing turned off
    monkeypatch.setattr(sim.Trace, "pack", lambda self: None)
    kept = heartbeat_sim(10)
    unpacked = kept.run(40.0)
    assert len(kept.trace.compact) == len(kept.trace) + kept.trace.marks + 12  # 10 actor + 2 tag ids
    # Then both decode to the same canonical records and have the same hash
    assert list(packed.trace.iter_canonical()) == list(kept.trace.iter_canonical())
    assert res.trace_sha256 == unpacked.trace_sha256
    assert res.stats == unpacked.stats
    check_compact_form(packed.trace)
    # And the .msgpack file is the compact form itself: chunks of CHUNK items, the last shorter
    packed.trace.write(tmp_path / "t.msgpack")
    with open(tmp_path / "t.msgpack", "rb") as f:
        chunks = list(msgpack.Unpacker(f, strict_map_key=False))
    assert sum(len(c) for c in chunks) == len(kept.trace.compact)
    assert all(len(c) == CHUNK for c in chunks[:-1])


def test_the_hash_covers_names_and_message_values() -> None:
    base = heartbeat_sim(3).run(5.0).trace_sha256
    assert heartbeat_sim(3).run(5.0).trace_sha256 == base
    assert heartbeat_sim(3, actor="detector").run(5.0).trace_sha256 != base  # only a name differs
    assert heartbeat_sim(3, seed=2).run(5.0).trace_sha256 != base


def test_run_in_pieces_gives_the_same_trace_as_in_one_go() -> None:
    whole = heartbeat_sim(10)
    whole.run(12.0)
    pieces = heartbeat_sim(10)
    for until in (0.3, 3.0, 3.0, 7.77, 12.0):
        pieces.run(until)
    assert pieces.result().trace_sha256 == whole.result().trace_sha256
    assert pieces.deliveries == whole.deliveries > 0
