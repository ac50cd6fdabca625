"""The actor API: effects come back as data, in the order the handler asked for them."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from actors import (
    EFFECT_TYPES,
    ActorRef,
    CancelJob,
    CancelTimer,
    Context,
    Emit,
    ExecuteJob,
    Persist,
    RegistrationError,
    Send,
    SetTimer,
    Spawn,
    Stop,
    Sync,
    message,
)
from actors.heartbeat import HeartbeatConfig, HeartbeatDetector, Ping, Pong, Tick


def make_ctx(node: str = "n1", name: str = "a") -> Context:
    return Context(ActorRef(node, name), random.Random(1), now=10.0, wall=1e9)


def test_context_records_effects_in_call_order() -> None:
    ctx = make_ctx()
    other = ActorRef("n2", "b")
    ctx.persist("term", 3)
    ctx.sync()
    ctx.send(other, Ping(1.0))
    ctx.set_timer("t", 0.5, Tick())
    ctx.cancel_timer("t")
    ctx.emit("x.happened", n=1)
    child = HeartbeatDetector(("n2",))
    assert ctx.spawn("child", child) == ActorRef("n1", "child")
    ctx.stop()
    ctx.execute_job("j1", "resize", {"w": 1}, 30.0)
    ctx.cancel_job("j1", "not needed")
    assert ctx.take_effects() == [
        Persist("term", 3),
        Sync(),
        Send(other, Ping(1.0)),
        SetTimer("t", 0.5, Tick()),
        CancelTimer("t"),
        Emit("x.happened", {"n": 1}),
        Spawn("child", child),
        Stop("a"),
        ExecuteJob("j1", "resize", {"w": 1}, 30.0, ActorRef("n1", "a")),
        CancelJob("j1", "not needed"),
    ]
    assert ctx.effects == []
    assert len(EFFECT_TYPES) == 10


def test_reply_goes_to_the_sender_and_needs_one() -> None:
    ctx = make_ctx()
    with pytest.raises(RuntimeError):
        ctx.reply(Pong(1.0))
    ctx.sender = ActorRef("n9", "heartbeat")
    ctx.reply(Pong(1.0))
    assert ctx.take_effects() == [Send(ActorRef("n9", "heartbeat"), Pong(1.0))]


def test_messages_must_be_frozen_slotted_dataclasses_with_unique_tags() -> None:
    class NotADataclass:
        pass

    @dataclass
    class Mutable:
        x: int

    @dataclass(frozen=True)
    class NoSlots:
        x: int

    @dataclass(frozen=True, slots=True)
    class Other:
        x: int

    for cls, why in [(NotADataclass, "dataclasses"), (Mutable, "frozen"), (NoSlots, "slots")]:
        with pytest.raises(RegistrationError, match=why):
            message("test.bad")(cls)
    with pytest.raises(RegistrationError, match="already used"):
        message("heartbeat.Ping")(Other)


def test_heartbeat_config_rejects_impossible_timeouts() -> None:
    with pytest.raises(ValueError, match="interval must be > 0"):
        HeartbeatConfig(interval=0)
    with pytest.raises(ValueError, match="suspect_after <= dead_after"):
        HeartbeatConfig(suspect_after=20, dead_after=15)
    assert HeartbeatConfig() == HeartbeatConfig(5.0, 10.0, 15.0)


def test_detector_suspects_then_declares_dead_then_alive_again() -> None:
    # Given a detector with peer n2 that stops answering
    cfg = HeartbeatConfig(interval=1.0, suspect_after=2.0, dead_after=3.0)
    det = HeartbeatDetector(("n1", "n2"), cfg)
    ctx = make_ctx(name="heartbeat")
    ctx.now = 0.0
    det.on_start(ctx, {})
    assert [type(e) for e in ctx.take_effects()] == [Send, SetTimer]
    kinds = []
    for t in range(1, 6):
        ctx.now = float(t)
        ctx.sender = ctx.self_ref
        det.receive(ctx, Tick())
        kinds += [e.kind for e in ctx.take_effects() if isinstance(e, Emit)]
    # Expect suspicion after 2 s of silence and death after 3 s
    assert kinds == ["peer.suspect", "peer.dead"]
    assert det.status().peers == {"n2": "DEAD"}
    # When a pong for a recent ping arrives, expect it alive at once
    ctx.sender = ActorRef("n2", "heartbeat")
    det.receive(ctx, Pong(5.0))
    assert [e.kind for e in ctx.take_effects() if isinstance(e, Emit)] == ["peer.alive"]
    assert det.status().peers == {"n2": "ALIVE"}
