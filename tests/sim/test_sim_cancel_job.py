"""CancelJob in the simulator: the job ends at once as cancelled and its modelled end is dropped."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sim
from actors import Actor, Context, JobDone, message


@message("test.CancelNow")
@dataclass(frozen=True, slots=True)
class CancelNow:
    pass


class Runner(Actor):
    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        ctx.execute_job("long", "work", None, timeout=100.0)
        ctx.execute_job("short", "work", None, timeout=0.5)  # times out at 0.5 s
        ctx.set_timer("cancel", 1.0, CancelNow())

    def receive(self, ctx: Context, msg: Any) -> None:
        if isinstance(msg, CancelNow):
            ctx.cancel_job("long", "stop")
            ctx.cancel_job("long", "twice")  # a second cancel changes nothing
            ctx.cancel_job("short", "too late")  # already done: nothing happens
        elif isinstance(msg, JobDone):
            ctx.emit("done", id=msg.job_id, ok=msg.ok, error=msg.error, at=ctx.now)


def test_cancel_job_ends_the_job_now_and_only_once() -> None:
    model = sim.JobModel(default=sim.JobSpec(duration=sim.Constant(10.0)))
    s = sim.Simulation(lambda _n: {"r": Runner()}, ["n1"], seed=3, jobs=model)
    result = s.run(until=30.0)
    done = [e.fields for e in result.emitted if e.kind == "done"]
    assert [d["id"] for d in done] == ["short", "long"]
    assert done[0]["error"].startswith("timed out") or not done[0]["ok"]
    assert done[1] == {"id": "long", "ok": False, "error": "cancelled: stop", "at": 1.0}
