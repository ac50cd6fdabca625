"""The network model: exactly-once without faults, duplication, partitions, blocks, clogs."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import sim
from actors import Actor, ActorRef

N = 40


def burst_sim(sim_actors: Any, network: sim.NetworkConfig, seed: int = 1, count: int = N) -> sim.Simulation:
    a, b = ActorRef("n1", "a"), ActorRef("n2", "b")

    def build(node: str) -> dict[str, Actor]:
        if node == "n1":
            return {"a": sim_actors.Burst(b, count)}
        return {"b": sim_actors.Burst(a, count)}

    return sim.Simulation(build, ["n1", "n2"], seed=seed, network=network)


latencies = st.sampled_from(
    [
        sim.Constant(0.001),
        sim.Uniform(0.001, 0.02),
        sim.Normal(0.005, 0.003),
        sim.Exponential(0.004),
        sim.LogNormal(-5.0, 0.5),
    ]
)


@given(seed=st.integers(0, 2**32), latency=latencies, reorder=st.sampled_from([0.0, 0.5]))
def test_without_loss_every_message_arrives_exactly_once(
    sim_actors: Any, seed: int, latency: Any, reorder: float
) -> None:
    s = burst_sim(sim_actors, sim.NetworkConfig(latency, reorder=reorder), seed)
    s.run(5.0)
    for node, name in (("n1", "a"), ("n2", "b")):
        got = s.actor(node, name).got  # type: ignore[union-attr]
        assert sorted(m.n for m in got) == list(range(N))


def test_duplication_delivers_each_message_twice(sim_actors: Any) -> None:
    s = burst_sim(sim_actors, sim.NetworkConfig(sim.Uniform(0.001, 0.01), duplicate=1.0))
    res = s.run(5.0)
    got = Counter(m.n for m in s.actor("n2", "b").got)  # type: ignore[union-attr]
    assert got == dict.fromkeys(range(N), 2)
    assert res.stats["duplicate"] == 2 * N


def test_loss_drops_some_and_traces_them(sim_actors: Any) -> None:
    s = burst_sim(sim_actors, sim.NetworkConfig(loss=0.5))
    res = s.run(5.0)
    got = len(s.actor("n2", "b").got)  # type: ignore[union-attr]
    assert 0 < got < N
    drops = [r for r in res.trace.records if r[1] == "drop" and r[5] == "loss"]
    assert len(drops) + got + len(s.actor("n1", "a").got) == 2 * N  # type: ignore[union-attr]


def test_block_is_one_way(sim_actors: Any) -> None:
    s = burst_sim(sim_actors, sim.NetworkConfig())
    s.schedule(sim.Fault(0.0, "block", src="n1", dst="n2"))
    s.run(1.0)
    assert s.actor("n2", "b").got == []  # type: ignore[union-attr]
    assert len(s.actor("n1", "a").got) == N  # type: ignore[union-attr]


def test_partition_blocks_both_ways_between_groups_only(sim_actors: Any) -> None:
    rec = ActorRef("n1", "rec")

    def build(node: str) -> dict[str, Actor]:
        if node == "n1":
            return {"rec": sim_actors.Recorder()}
        return {"tick": sim_actors.Ticker(rec, 0.1)}

    s = sim.Simulation(build, ["n1", "n2", "n3"], seed=1)
    s.schedule(sim.Fault(1.0, "partition", groups=(("n1", "n2"), ("n3",))))
    s.schedule(sim.Fault(2.0, "heal"))
    s.run(3.0)
    got = s.actor("n1", "rec").got  # type: ignore[union-attr]
    from_n3 = [now for now, _, snd, _ in got if snd is not None and snd.node == "n3"]
    from_n2 = [now for now, _, snd, _ in got if snd is not None and snd.node == "n2"]
    assert not any(1.0 <= t < 2.0 for t in from_n3)
    assert any(1.0 <= t < 2.0 for t in from_n2)
    assert any(t > 2.0 for t in from_n3)


def test_message_in_flight_when_partition_starts_is_dropped(sim_actors: Any) -> None:
    s = burst_sim(sim_actors, sim.NetworkConfig(sim.Constant(1.0)), count=1)
    s.schedule(sim.Fault(0.5, "partition", groups=(("n1",), ("n2",))))
    res = s.run(2.0)
    assert s.actor("n2", "b").got == []  # type: ignore[union-attr]
    assert [r[5] for r in res.trace.records if r[1] == "drop"] == ["partition", "partition"]


def test_clogged_messages_are_held_then_delivered_at_unclog(sim_actors: Any) -> None:
    rec = ActorRef("n1", "rec")

    def build(node: str) -> dict[str, Actor]:
        return {"rec": sim_actors.Recorder()} if node == "n1" else {"tick": sim_actors.Ticker(rec, 0.1)}

    s = sim.Simulation(build, ["n1", "n2"], seed=1)
    s.schedule(sim.Fault(1.0, "clog", src="n2", dst="n1"))
    s.schedule(sim.Fault(2.0, "unclog", src="n2", dst="n1"))
    s.run(3.0)
    got = s.actor("n1", "rec").got  # type: ignore[union-attr]
    nums = [m.n for _, _, _, m in got]
    assert nums == list(range(len(nums)))  # nothing lost, order kept
    times = [now for now, _, _, _ in got]
    assert not any(1.002 < t < 2.0 for t in times)
    assert sum(1 for t in times if t == 2.0) >= 9  # the held ones, released at unclog


def test_same_node_messages_have_zero_latency_and_are_never_lost(sim_actors: Any) -> None:
    rec = ActorRef("n1", "rec")

    def build(node: str) -> dict[str, Actor]:
        return {"rec": sim_actors.Recorder(), "burst": sim_actors.Burst(rec, 10)}

    s = sim.Simulation(build, ["n1"], seed=1, network=sim.NetworkConfig(loss=1.0))
    s.run(1.0)
    got = s.actor("n1", "rec").got  # type: ignore[union-attr]
    assert [m.n for _, _, _, m in got] == list(range(10))
    assert all(now == 0.0 for now, _, _, _ in got)


def test_link_override(sim_actors: Any) -> None:
    link = sim.LinkConfig("n1", "n2", latency=sim.Constant(0.5))
    s = burst_sim(sim_actors, sim.NetworkConfig(sim.Constant(0.001), links=(link,)), count=1)
    res = s.run(1.0)
    delivers = {r[2]: r[0] for r in res.trace.records if r[1] == "deliver"}
    assert delivers == {"n2": 500_000_000, "n1": 1_000_000}
