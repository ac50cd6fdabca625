"""Tiny actors for simulator tests (imported by the test modules through ``sim_actors``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from actors import Actor, ActorRef, Context, message


@message("simtest.Num")
@dataclass(frozen=True, slots=True)
class Num:
    n: int


@message("simtest.Note")
@dataclass(frozen=True, slots=True)
class Note:
    text: str


class Recorder(Actor):
    """Records (ctx.now, ctx.wall, sender, msg) for every message."""

    def __init__(self) -> None:
        self.got: list[tuple[float, float, ActorRef | None, Any]] = []

    def receive(self, ctx: Context, msg: Any) -> None:
        self.got.append((ctx.now, ctx.wall, ctx.sender, msg))


class Burst(Actor):
    """At start, sends Num(0..count-1) to ``to``; records what it receives."""

    def __init__(self, to: ActorRef, count: int) -> None:
        self.to = to
        self.count = count
        self.got: list[Any] = []

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        for i in range(self.count):
            ctx.send(self.to, Num(i))

    def receive(self, ctx: Context, msg: Any) -> None:
        self.got.append(msg)


class Ticker(Actor):
    """Sends Num(k) to ``to`` every ``every`` seconds (timer ``tick``), forever."""

    def __init__(self, to: ActorRef, every: float) -> None:
        self.to = to
        self.every = every
        self.k = 0

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        ctx.set_timer("tick", self.every, Note("tick"))

    def receive(self, ctx: Context, msg: Any) -> None:
        if msg == Note("tick"):
            ctx.send(self.to, Num(self.k))
            self.k += 1
            ctx.set_timer("tick", self.every, Note("tick"))


class SimActors:
    Num = Num
    Note = Note
    Recorder = Recorder
    Burst = Burst
    Ticker = Ticker


@pytest.fixture(scope="session")
def sim_actors() -> type[SimActors]:
    return SimActors
