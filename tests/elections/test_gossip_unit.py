"""The gossip (SWIM) election as a state machine, fed messages through a Context by hand."""

from __future__ import annotations

import random
from typing import Any

import pytest

from actors import ActorRef, Context, Emit, Send, SetTimer
from actors.elections import NAME, GetLeader, Leader, Leave
from actors.elections._swim_messages import (
    ALIVE,
    DEAD,
    LEFT,
    SUSPECT,
    Ack,
    Gossip,
    JoinTick,
    Ping,
    PingReq,
    ProbeTick,
    ProbeTimeout,
    PushPull,
    SuspicionTimeout,
    Update,
)
from actors.elections._swim_state import BroadcastQueue, Suspicion, Table
from actors.elections.gossip import GossipConfig, GossipElection

NODES = ("n1", "n2", "n3", "n4", "n5")


def ref(node: str) -> ActorRef:
    return ActorRef(node, NAME)


def started(
    node: str = "n1", config: GossipConfig | None = None, nodes: tuple[str, ...] = NODES
) -> tuple[GossipElection, Context]:
    actor = GossipElection(nodes, config or GossipConfig())
    ctx = Context(ref(node), random.Random(7), now=0.0)
    actor.on_start(ctx, {})
    ctx.take_effects()
    return actor, ctx


def deliver(
    actor: GossipElection, ctx: Context, msg: Any, sender: str | None = None, now: float | None = None
) -> list[Any]:
    if now is not None:
        ctx.now = now
    ctx.sender = ref(sender) if sender is not None else ctx.self_ref
    actor.receive(ctx, msg)
    return ctx.take_effects()


def join(actor: GossipElection, ctx: Context, members: tuple[str, ...]) -> None:
    """Given a seed's full state listing ``members`` alive at incarnation 0."""
    state = tuple(Update(m, ALIVE, 0, 0, m) for m in members)
    deliver(actor, ctx, PushPull(state, False, True, 0), sender=members[0])


def emits(effects: list[Any], kind: str) -> list[dict[str, Any]]:
    return [e.fields for e in effects if isinstance(e, Emit) and e.kind == kind]


def sends(effects: list[Any], tp: type[Any]) -> list[Send]:
    return [e for e in effects if isinstance(e, Send) and isinstance(e.msg, tp)]


# -- configuration ------------------------------------------------------------------------------


def test_config_defaults_follow_memberlist_lan_and_reject_nonsense_in_one_line() -> None:
    cfg = GossipConfig()
    assert (cfg.interval, cfg.probe_timeout, cfg.indirect_checks, cfg.election_timeout) == (1.0, 0.5, 3, 15.0)
    assert cfg.suspicion_min(5) == 4.0 and cfg.suspicion_max(5) == 24.0
    assert cfg.suspicion_min(1000) == pytest.approx(12.0)
    assert cfg.retransmit_limit(5) == 4 and cfg.retransmit_limit(1000) == 16
    for kw, words in [
        ({"probe_timeout": 1.5}, "probe_timeout must be in"),
        ({"indirect_checks": -1}, "indirect_checks must be >= 0"),
        ({"suspicion_mult": 0}, "suspicion_mult must be >= 1"),
        ({"leader_rule": "oldest"}, "leader_rule must be one of"),
        ({"interval": 0}, "interval must be > 0"),
    ]:
        with pytest.raises(ValueError, match=words) as err:
            GossipConfig(**kw)
        assert "\n" not in str(err.value)


# -- the membership table ------------------------------------------------------------------------


def test_precedence_alive_suspect_dead_by_incarnation() -> None:
    # Given n2 known alive at incarnation 1
    t = Table()
    assert t.apply(Update("n2", ALIVE, 1, 0, "n2")) == ALIVE
    # Expect a stale alive ignored, a suspicion of the same incarnation to win, a confirmation
    assert t.apply(Update("n2", ALIVE, 1, 0, "n2")) is None
    assert t.apply(Update("n2", SUSPECT, 1, 0, "n3")) == SUSPECT
    assert t.apply(Update("n2", SUSPECT, 1, 0, "n4")) == "confirm"
    # When n2 refutes with incarnation 2, expect alive again; then dead(2) is final for 2
    assert t.apply(Update("n2", ALIVE, 2, 0, "n2")) == ALIVE
    assert t.apply(Update("n2", DEAD, 2, 0, "n3")) == DEAD
    assert t.apply(Update("n2", SUSPECT, 2, 0, "n4")) is None
    assert t.apply(Update("n2", ALIVE, 2, 0, "n2")) is None
    assert t.apply(Update("n2", ALIVE, 3, 0, "n2")) == ALIVE
    # A suspicion of someone never heard of is ignored; a death is kept as a tombstone
    assert t.apply(Update("n9", SUSPECT, 0, 0, "n3")) is None
    assert t.apply(Update("n8", DEAD, 4, 0, "n3")) == "quiet"
    assert t.apply(Update("n8", ALIVE, 4, 0, "n8")) is None
    assert t.in_view == 1


def test_suspicion_timeout_decays_with_confirmations_from_max_to_min() -> None:
    # Given memberlist's defaults in a 5-node cluster: k = 2, min 4 s, max 24 s
    s = Suspicion(0, 0.0, 2, 4.0, 24.0, {"n2"})
    assert s.timeout() == 24.0
    s.accusers.add("n3")
    one = s.timeout()
    s.accusers.add("n4")
    assert 4.0 < one < 24.0 and s.timeout() == 4.0
    assert Suspicion(0, 0.0, 0, 4.0, 24.0, {"n2"}).timeout() == 4.0


def test_broadcast_queue_sends_least_sent_first_and_drops_after_the_limit() -> None:
    q = BroadcastQueue()
    q.push(Update("a", ALIVE, 0, 0, "a"))
    q.push(Update("b", ALIVE, 0, 0, "b"))
    assert [u.member for u in q.take(1, 2)] == ["b"]  # newest first among the least sent
    assert [u.member for u in q.take(2, 2)] == ["a", "b"]
    q.push(Update("a", SUSPECT, 0, 0, "c"))  # replaces the older rumour about a
    assert q.take(5, 2) == (Update("a", SUSPECT, 0, 0, "c"),)
    assert q.take(5, 2) == (Update("a", SUSPECT, 0, 0, "c"),)
    assert q.take(5, 2) == () and len(q) == 0


# -- the actor -----------------------------------------------------------------------------------


def test_join_contacts_seeds_then_leads_by_the_rule_once_a_seed_answers() -> None:
    # Given n3 starting with seeds n1, n2
    actor = GossipElection(NODES, GossipConfig(seeds=("n1", "n2")))
    ctx = Context(ref("n3"), random.Random(1), now=0.0)
    actor.on_start(ctx, {})
    out = ctx.take_effects()
    # Expect a join push-pull to each seed and no leader yet
    assert sorted(s.to.node for s in sends(out, PushPull)) == ["n1", "n2"]
    assert all(s.msg.join for s in sends(out, PushPull))
    assert deliver(actor, ctx, GetLeader(), sender="n3")[0].msg == Leader(None, 0, "n3")
    # When n1 answers with its state (n1, n2 alive)
    out = deliver(
        actor,
        ctx,
        PushPull((Update("n1", ALIVE, 0, 0, "n1"), Update("n2", ALIVE, 0, 0, "n2")), False, True, 0),
        "n1",
    )
    # Expect both members alive, n1 the leader (lowest id) at epoch >= 1
    assert [f["member"] for f in emits(out, "member.alive")] == ["n1", "n2"]
    assert actor.leader == "n1" and actor.epoch >= 1
    assert emits(out, "leader.changed")[-1] == {"leader": "n1", "epoch": actor.epoch}


def test_a_node_no_seed_answers_leads_alone_after_the_election_timeout() -> None:
    # Given n2 whose seeds never answer, expect no leader until election_timeout, then itself
    actor, ctx = started("n2")
    for t in range(2, 16, 2):
        deliver(
            actor,
            ctx,
            JoinTick(),
            now=float(t),
        )
    assert actor.leader is None
    deliver(actor, ctx, JoinTick(), now=16.0)
    assert actor.leader == "n2"


def test_suspected_member_refutes_with_a_higher_incarnation() -> None:
    # Given n2 joined, at incarnation 0
    actor, ctx = started("n2")
    join(actor, ctx, ("n1", "n3"))
    inc = actor.incarnation
    # When a ping carries "n2 is suspect at its incarnation" from n3
    out = deliver(actor, ctx, Ping(7, "n2", (Update("n2", SUSPECT, inc, 0, "n3"),), 0), sender="n1")
    # Expect a higher incarnation, persisted, and the alive rumour riding on the very ack
    assert actor.incarnation == inc + 1
    ack = sends(out, Ack)[0]
    assert ack.to == ref("n1") and Update("n2", ALIVE, inc + 1, actor.epoch, "n2") in ack.msg.updates
    assert emits(out, "member.refute") == [{"member": "n2", "incarnation": inc + 1, "accused": SUSPECT}]
    assert actor.health == 1  # Lifeguard: being suspected hints at our own trouble


def test_missed_ack_leads_to_indirect_probes_then_suspicion_then_death() -> None:
    cfg = GossipConfig()
    actor, ctx = started("n1", cfg)
    join(actor, ctx, ("n2", "n3", "n4", "n5"))
    # When the probe tick fires, expect one ping
    out = deliver(actor, ctx, ProbeTick(), now=1.0)
    (ping,) = sends(out, Ping)
    target = ping.msg.target
    # When the direct ack is late, expect PingReq to k=3 other alive members
    out = deliver(actor, ctx, ProbeTimeout(ping.msg.seq), now=1.5)
    reqs = sends(out, PingReq)
    assert len(reqs) == 3 and target not in {r.to.node for r in reqs}
    # When the period ends without any ack, expect the target suspected with a max timer
    out = deliver(actor, ctx, ProbeTick(), now=2.0)
    assert emits(out, "member.suspect") == [{"member": target, "incarnation": 0}]
    timer = next(e for e in out if isinstance(e, SetTimer) and e.key == f"suspect:{target}")
    assert timer.delay == cfg.suspicion_max(5)
    # When the timer runs out, expect it dead
    out = deliver(actor, ctx, SuspicionTimeout(target, 0), now=2.0 + timer.delay)
    assert emits(out, "member.dead") == [{"member": target, "incarnation": 0}]


def test_independent_confirmations_shorten_the_suspicion() -> None:
    cfg = GossipConfig()
    actor, ctx = started("n1", cfg)
    join(actor, ctx, ("n2", "n3", "n4", "n5"))
    # Given n1 heard n3 suspect n5 at t=10 (timer: max = 24 s)
    out = deliver(actor, ctx, Gossip((Update("n5", SUSPECT, 0, 0, "n3"),), 0), "n3", now=10.0)
    first = next(e for e in out if isinstance(e, SetTimer) and e.key == "suspect:n5")
    assert first.delay == 24.0
    # When n4 independently confirms at t=11, expect a shorter remaining time
    out = deliver(actor, ctx, Gossip((Update("n5", SUSPECT, 0, 0, "n4"),), 0), "n4", now=11.0)
    second = next(e for e in out if isinstance(e, SetTimer) and e.key == "suspect:n5")
    assert 10.0 + 1.0 + second.delay < 10.0 + 24.0
    # When n3 repeats itself, expect nothing new (not independent)
    out = deliver(actor, ctx, Gossip((Update("n5", SUSPECT, 0, 0, "n3"),), 0), "n3", now=12.0)
    assert not [e for e in out if isinstance(e, SetTimer)]
    # When n2 confirms too (k = 2), expect the minimum: 4 s after the start, so fire at once
    out = deliver(actor, ctx, Gossip((Update("n5", SUSPECT, 0, 0, "n2"),), 0), "n2", now=15.0)
    third = next(e for e in out if isinstance(e, SetTimer) and e.key == "suspect:n5")
    assert third.delay == 0.0


def test_helper_relays_the_ack_of_an_indirect_probe() -> None:
    actor, ctx = started("n2")
    join(actor, ctx, ("n1", "n3"))
    # When n1 asks n2 to ping n3 for its probe 41
    out = deliver(actor, ctx, PingReq(41, "n3", (), 0), sender="n1")
    (ping,) = sends(out, Ping)
    assert ping.to == ref("n3")
    # When n3 answers n2's own sequence, expect Ack(41) relayed to n1
    out = deliver(actor, ctx, Ack(ping.msg.seq, (), 0), sender="n3")
    assert [(s.to, s.msg.seq) for s in sends(out, Ack)] == [(ref("n1"), 41)]


def test_graceful_leave_tells_every_member_and_goes_quiet() -> None:
    actor, ctx = started("n3")
    join(actor, ctx, ("n1", "n2"))
    # When n3 is asked to leave
    epoch = actor.epoch
    out = deliver(actor, ctx, Leave(), sender="n3")
    # Expect "n3 left" sent to every member, the event, no leader, and silence afterwards
    farewell = sends(out, Gossip)
    assert sorted(s.to.node for s in farewell) == ["n1", "n2"]
    assert farewell[0].msg.updates == (Update("n3", LEFT, actor.incarnation, epoch, "n3"),)
    assert emits(out, "member.left") == [{"member": "n3", "incarnation": actor.incarnation}]
    assert emits(out, "leader.changed")[-1]["leader"] is None
    assert deliver(actor, ctx, Ping(1, "n3", (), 0), sender="n1") == []
    # And a receiver marks it left and drops it from the leader rule
    other, octx = started("n1")
    join(other, octx, ("n2", "n3"))
    out = deliver(other, octx, farewell[0].msg, sender="n3")
    assert emits(out, "member.left") == [{"member": "n3", "incarnation": 0}]
    assert other.view()["n3"] == LEFT


def test_leader_rules_lowest_id_and_highest_priority() -> None:
    actor, ctx = started("n3")
    join(actor, ctx, ("n1", "n2", "n4"))
    assert actor.leader == "n1"
    cfg = GossipConfig(leader_rule="highest_priority", priorities={"n2": 5})
    actor, ctx = started("n3", cfg)
    join(actor, ctx, ("n1", "n2", "n4"))
    assert actor.leader == "n2"
    # When n2 dies, expect the next by rank (priority 0, then the highest id): n4
    deliver(actor, ctx, Gossip((Update("n2", DEAD, 0, 0, "n1"),), 0), "n1")
    assert actor.leader == "n4"


def test_epoch_rises_on_every_view_change_and_follows_hints() -> None:
    actor, ctx = started("n1")
    join(actor, ctx, ("n2", "n3"))
    assert actor.leader == "n1"
    e = actor.epoch
    # When a member hints at a higher epoch, expect the leader to adopt and re-advertise it
    out = deliver(actor, ctx, Gossip((), e + 5), "n2")
    assert actor.epoch == e + 5
    assert emits(out, "leader.changed") == [{"leader": "n1", "epoch": e + 5}]
    assert Update("n1", ALIVE, actor.incarnation, e + 5, "n1") in actor.queue.pending()
