"""The Bully actor step by step through a Context: Given a state, When a message, Expect effects."""

from __future__ import annotations

import random
from typing import Any

import pytest

from actors import ActorRef, Context, Emit, Persist, Send, SetTimer, Sync
from actors.elections import NAME, ElectionConfig, GetLeader, Leader, LeaderChanged, Leave, Subscribe
from actors.elections import bully as b

NODES = ("n1", "n2", "n3", "n4")
CFG = b.BullyConfig(election_timeout=1.0, interval=0.2, answer_timeout=0.2, coordinator_timeout=0.5)


def ref(node: str) -> ActorRef:
    return ActorRef(node, NAME)


def started(
    node: str, durable: dict[str, Any] | None = None, cfg: b.BullyConfig = CFG
) -> tuple[b.Bully, Context]:
    actor = b.Bully(NODES, cfg)
    ctx = Context(ref(node), random.Random(1), now=0.0)
    actor.on_start(ctx, durable or {})
    ctx.take_effects()
    return actor, ctx


def deliver(actor: b.Bully, ctx: Context, msg: Any, sender: str | None = None, now: float = 0.1) -> list[Any]:
    ctx.now = now
    ctx.sender = ref(sender) if sender is not None else ctx.self_ref
    actor.receive(ctx, msg)
    return ctx.take_effects()


def sends(effects: list[Any]) -> list[tuple[str, Any]]:
    return [(e.to.node, e.msg) for e in effects if isinstance(e, Send)]


def emitted(effects: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(e.kind, e.fields) for e in effects if isinstance(e, Emit)]


def test_config_errors_are_one_line_and_defaults_are_coherent() -> None:
    d = b.BullyConfig()
    assert (d.election_timeout, d.interval, d.answer_timeout, d.coordinator_timeout) == (10.0, 3.0, 2.0, 5.0)
    bad: tuple[dict[str, Any], ...] = (
        {"interval": 10.0},
        {"answer_timeout": 0.0},
        {"coordinator_timeout": 1.0, "answer_timeout": 2.0},
        {"election_timeout": -1.0},
    )
    for kwargs in bad:
        with pytest.raises(ValueError) as err:
            b.BullyConfig(**kwargs)
        assert "\n" not in str(err.value)
    scaled = b.BullyConfig.of(ElectionConfig(election_timeout=1.0, interval=0.2))
    assert (scaled.answer_timeout, scaled.coordinator_timeout) == (0.2, 0.5)


def test_start_announces_to_seeds_and_waits_before_electing() -> None:
    # Given a node with seeds, When it starts, Expect Join to the seeds and the join/tick timers.
    actor = b.Bully(NODES, b.BullyConfig(seeds=("n1", "n3")))
    ctx = Context(ref("n2"), random.Random(1), now=0.0)
    actor.on_start(ctx, {})
    effects = ctx.take_effects()
    assert sends(effects) == [("n1", b.Join()), ("n3", b.Join())]
    assert [e.key for e in effects if isinstance(e, SetTimer)] == ["join", "tick"]
    assert actor.leader is None and actor.role == b.FOLLOWER


def test_highest_node_wins_at_once_and_syncs_its_epoch_before_announcing() -> None:
    # Given n4 (the highest) restarted with epoch 7 on disk, When its join wait ends,
    # Expect epoch 8 persisted and synced before any Coordinator leaves.
    actor, ctx = started("n4", {"max_epoch": 7})
    effects = deliver(actor, ctx, b.JoinTimeout())
    kinds = [type(e) for e in effects]
    assert kinds.index(Sync) < kinds.index(Send)
    assert Persist("max_epoch", 8) in effects
    assert sends(effects) == [(n, b.Coordinator("n4", 8, NODES)) for n in ("n1", "n2", "n3")]
    assert ("leader.elected", {"epoch": 8}) in emitted(effects)
    assert actor.role == b.COORDINATOR


def test_lower_node_asks_higher_nodes_and_wins_when_nobody_answers() -> None:
    actor, ctx = started("n2")
    effects = deliver(actor, ctx, b.JoinTimeout())
    assert sends(effects) == [("n3", b.Election(1)), ("n4", b.Election(1))]
    assert actor.role == b.ELECTING
    effects = deliver(actor, ctx, b.AnswerTimeout(1), now=0.3)
    assert actor.role == b.COORDINATOR and actor.leader == "n2"


def test_answered_node_waits_then_restarts_the_election() -> None:
    actor, ctx = started("n2")
    deliver(actor, ctx, b.JoinTimeout())
    deliver(actor, ctx, b.Answer(1), sender="n3")
    assert actor.role == b.WAITING
    assert deliver(actor, ctx, b.AnswerTimeout(1), now=0.3) == []  # stale timer: ignored
    effects = deliver(actor, ctx, b.CoordinatorTimeout(1), now=0.7)
    assert sends(effects) == [("n3", b.Election(2)), ("n4", b.Election(2))]


def test_election_from_a_lower_node_is_answered_and_starts_our_own() -> None:
    actor, ctx = started("n3")
    effects = deliver(actor, ctx, b.Election(5), sender="n1")
    assert sends(effects) == [("n1", b.Answer(5)), ("n4", b.Election(1))]


def test_coordinator_answers_an_election_with_its_announcement() -> None:
    actor, ctx = started("n4")
    deliver(actor, ctx, b.JoinTimeout())
    effects = deliver(actor, ctx, b.Election(2), sender="n1")
    assert sends(effects) == [("n1", b.Answer(2)), ("n1", b.Coordinator("n4", 1, NODES))]


def test_follower_adopts_a_newer_higher_coordinator_and_tells_subscribers() -> None:
    actor, ctx = started("n2")
    deliver(actor, ctx, Subscribe(), sender="n2")
    effects = deliver(actor, ctx, b.Coordinator("n4", 3, NODES), sender="n4")
    assert ("leader.changed", {"leader": "n4", "epoch": 3}) in emitted(effects)
    assert ("n2", LeaderChanged("n4", 3)) in sends(effects)
    assert deliver(actor, ctx, GetLeader(), sender="n1") == [Send(ref("n1"), Leader("n4", 3, "n2"))]


def test_older_epoch_from_a_higher_node_gets_stale_and_the_coordinator_reannounces() -> None:
    # Given n2 following n3 at epoch 5, When n4 announces epoch 2, Expect Stale(5) back;
    # When n4 (coordinator at 2) gets it, Expect a new announcement with epoch 6.
    follower, fctx = started("n2")
    deliver(follower, fctx, b.Coordinator("n3", 5, NODES), sender="n3")
    follower.last_heard = -10.0  # n3 has gone quiet
    assert sends(deliver(follower, fctx, b.Coordinator("n4", 2, NODES), sender="n4", now=2.0)) == [
        ("n4", b.Stale(5))
    ]
    top, tctx = started("n4")
    deliver(top, tctx, b.JoinTimeout())
    deliver(top, tctx, b.Stale(1), sender="n2")
    assert top.epoch == 2
    effects = deliver(top, tctx, b.Stale(5), sender="n2")
    assert top.epoch == 6 and ("n2", b.Coordinator("n4", 6, NODES)) in sends(effects)


def test_coordinator_yields_to_a_higher_one_and_bumps_past_a_lower_one() -> None:
    mid, ctx = started("n3")
    deliver(mid, ctx, b.JoinTimeout())
    deliver(mid, ctx, b.AnswerTimeout(1), now=0.3)
    assert mid.role == b.COORDINATOR and mid.epoch == 1
    effects = deliver(mid, ctx, b.Coordinator("n1", 4, NODES), sender="n1")
    assert mid.epoch == 5 and ("n1", b.Coordinator("n3", 5, NODES)) in sends(effects)
    deliver(mid, ctx, b.Coordinator("n4", 6, NODES), sender="n4")
    assert mid.role == b.FOLLOWER and mid.leader == "n4"


def test_follower_that_hears_nothing_elects() -> None:
    actor, ctx = started("n3")
    deliver(actor, ctx, b.Coordinator("n4", 1, NODES), sender="n4", now=0.1)
    assert sends(deliver(actor, ctx, b.Tick(), now=0.9)) == []
    effects = deliver(actor, ctx, b.Tick(), now=1.2)
    assert ("leader.changed", {"leader": None, "epoch": 1}) in emitted(effects)
    assert ("n4", b.Election(1)) in sends(effects)


def test_leaving_leader_is_dropped_and_replaced_at_once() -> None:
    actor, ctx = started("n3")
    deliver(actor, ctx, b.Coordinator("n4", 1, NODES), sender="n4")
    effects = deliver(actor, ctx, b.Leaving(), sender="n4")
    assert "n4" not in actor.members
    assert actor.role == b.COORDINATOR and ("leader.elected", {"epoch": 2}) in emitted(effects)
    # A stale heartbeat from the departed node does not bring it back.
    deliver(actor, ctx, b.Coordinator("n2", 1, NODES), sender="n2")
    assert "n4" not in actor.members


def test_leave_announces_departure_then_stays_quiet() -> None:
    actor, ctx = started("n2")
    effects = deliver(actor, ctx, Leave(), sender="n2")
    assert sends(effects) == [("n1", b.Leaving()), ("n3", b.Leaving()), ("n4", b.Leaving())]
    assert ("member.left", {}) in emitted(effects)
    assert deliver(actor, ctx, b.Election(1), sender="n1") == []
    assert deliver(actor, ctx, b.Tick()) == []


def test_graceful_stop_also_leaves() -> None:
    actor, ctx = started("n4")
    actor.on_stop(ctx)
    assert [n for n, m in sends(ctx.take_effects()) if isinstance(m, b.Leaving)] == ["n1", "n2", "n3"]


def test_priorities_override_ids() -> None:
    cfg = b.BullyConfig(priorities={"n1": 9})
    actor, ctx = started("n1", cfg=cfg)
    deliver(actor, ctx, b.JoinTimeout())
    assert actor.role == b.COORDINATOR
    low, lctx = started("n4", cfg=cfg)
    assert sends(deliver(low, lctx, b.JoinTimeout())) == [("n1", b.Election(1))]
