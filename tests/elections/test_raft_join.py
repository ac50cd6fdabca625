"""A node joins a running Raft cluster through a seed (the joiner actor), in the simulator."""

from __future__ import annotations

from actors.elections import NAME
from actors.elections.raft import Raft
from actors.elections.raft._join import JOINER
from actors.elections.select import election_blueprint
from sim import Fault, Simulation


def test_a_joining_node_is_added_as_a_voter_through_a_follower_seed() -> None:
    # Given a running 3-node cluster and n4 that starts later, knowing only n1 as seed
    nodes = ("n1", "n2", "n3", "n4")
    bp = election_blueprint(
        "raft", nodes, election_timeout=0.3, interval=0.05, seeds=("n1",), joining=("n4",)
    )
    sim = Simulation(bp, nodes, seed=3, late=("n4",))
    sim.schedule(Fault(2.0, "start", node="n4"))
    # When it runs
    result = sim.run(until=6.0)
    # Expect n4 to have asked (following leader hints) and to be a voter on every node
    joined = [e for e in result.emitted if e.kind == "raft.joined"]
    assert len(joined) == 1 and joined[0].node == "n4"
    for node in nodes:
        actor = sim.actor(node, NAME)
        assert isinstance(actor, Raft)
        assert actor.status().voters == nodes, node
    # and the joiner is gone once its job is done
    assert sim.actor("n4", JOINER) is None


def test_a_restarted_joined_node_finds_itself_already_a_voter() -> None:
    nodes = ("n1", "n2", "n3", "n4")
    bp = election_blueprint(
        "raft", nodes, election_timeout=0.3, interval=0.05, seeds=("n1", "n2"), joining=("n4",)
    )
    sim = Simulation(bp, nodes, seed=5, late=("n4",))
    sim.schedule(Fault(2.0, "start", node="n4"))
    sim.schedule(Fault(5.0, "crash", node="n4"))
    sim.schedule(Fault(6.0, "restart", node="n4"))
    result = sim.run(until=9.0)
    joined = [e for e in result.emitted if e.kind == "raft.joined"]
    assert [e.node for e in joined] == ["n4", "n4"]
    actor = sim.actor("n4", NAME)
    assert isinstance(actor, Raft) and actor.status().voters == nodes
