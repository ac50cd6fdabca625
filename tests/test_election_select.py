"""Choosing an election by name, as ELECTION_ALGORITHM does, and combining blueprints."""

from __future__ import annotations

import pytest

from actors import combine
from actors.elections import NAME
from actors.elections.bully import Bully
from actors.elections.gossip import GossipElection
from actors.elections.select import election_blueprint
from actors.heartbeat import HeartbeatDetector
from actors.heartbeat import blueprint as heartbeat_blueprint


def test_each_algorithm_builds_its_actor_with_the_given_timings() -> None:
    nodes = ("n1", "n2", "n3")
    bully = election_blueprint("bully", nodes, election_timeout=1.0, interval=0.2)("n1")[NAME]
    assert isinstance(bully, Bully)
    gossip = election_blueprint("gossip", nodes, election_timeout=2.0, interval=0.2)("n2")[NAME]
    assert isinstance(gossip, GossipElection)


def test_bully_waits_are_scaled_down_with_a_short_election_timeout() -> None:
    actor = election_blueprint("bully", ("n1", "n2"), election_timeout=1.0, interval=0.2)("n1")[NAME]
    cfg = actor.config  # type: ignore[attr-defined]
    assert (cfg.election_timeout, cfg.interval, cfg.answer_timeout, cfg.coordinator_timeout) == (
        1.0,
        0.2,
        0.2,
        0.5,
    )


@pytest.mark.parametrize(
    ("algorithm", "kwargs", "needle"),
    [
        ("paxos", {}, "unknown election algorithm 'paxos'"),
        ("bully", {"election_timeout": 1.0, "interval": 2.0}, "must be < election_timeout"),
    ],
)
def test_bad_choices_are_one_line_errors(algorithm: str, kwargs: dict[str, float], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        election_blueprint(algorithm, ("n1", "n2"), **kwargs)  # type: ignore[arg-type]


def test_combined_blueprints_run_both_actors_and_refuse_clashing_names() -> None:
    hb = heartbeat_blueprint(("n1", "n2"))
    both = combine(hb, election_blueprint("bully", ("n1", "n2")))("n1")
    assert isinstance(both["heartbeat"], HeartbeatDetector) and isinstance(both[NAME], Bully)
    with pytest.raises(ValueError, match="both define actor 'heartbeat'"):
        combine(hb, hb)("n1")
