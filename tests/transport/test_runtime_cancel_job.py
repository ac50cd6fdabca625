"""CancelJob in the trio runtime: a running processor is cancelled and JobDone says why."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import trio

from actors import Actor, ActorRef, Context, JobDone
from transport.events import EventLog
from transport.memory import MemoryHub
from transport.runtime import NodeRuntime

started = trio.Event()
saw_cancel: list[bool] = []


async def _forever(payload: Any) -> Any:
    started.set()
    try:
        await trio.sleep(3600)
    except trio.Cancelled:
        saw_cancel.append(True)
        raise


async def _quick(payload: Any) -> Any:
    return payload


class Canceller(Actor):
    def __init__(self) -> None:
        self.done: list[JobDone] = []

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        ctx.execute_job("long", "forever", None, timeout=3600)
        ctx.execute_job("short", "quick", 7, timeout=5)

    def receive(self, ctx: Context, msg: Any) -> None:
        if isinstance(msg, JobDone):
            self.done.append(msg)
        elif msg == "cancel":
            ctx.cancel_job("long", "operator said stop")
            ctx.cancel_job("short", "too late")  # already finished: nothing happens
            ctx.cancel_job("never-started", "unknown")


async def test_cancel_job_stops_the_processor_and_reports_the_reason(nursery: trio.Nursery) -> None:
    hub = MemoryHub()
    actor = Canceller()
    rt = NodeRuntime(
        "n1",
        lambda _n: {"c": actor},
        hub.transport("n1"),
        events=EventLog(),
        processors={"forever": _forever, "quick": _quick},
    )
    await nursery.start(rt.serve)
    with trio.fail_after(5):
        await started.wait()
        while not actor.done:
            await trio.sleep(0.01)
    rt.tell(ActorRef("n1", "c"), "cancel")
    with trio.fail_after(5):
        while len(actor.done) < 2:
            await trio.sleep(0.01)
    by_id = {d.job_id: d for d in actor.done}
    assert by_id["short"].ok and by_id["short"].result == 7
    assert not by_id["long"].ok and by_id["long"].error == "cancelled: operator said stop"
    assert saw_cancel == [True]
    await trio.sleep(0.05)
    assert len(actor.done) == 2  # the late cancels produced nothing
    rt.crash()
