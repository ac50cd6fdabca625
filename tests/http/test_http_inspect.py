"""The balancer answers :class:`InspectWorkers` from its table without changing it, and the
report crosses the codec (it travels from the leader to whichever node serves the request)."""

from __future__ import annotations

import random

from actors import ActorRef, Context
from actors.jobs.balancer import Balancer
from actors.jobs.config import JobsConfig
from actors.jobs.inspect import InspectWorkers, WorkerInfo, WorkersReport
from actors.jobs.messages import Route, WorkerStatus
from transport.codec import decode, encode

ASKER = ActorRef("n2", "$http")


def _deliver(balancer: Balancer, ctx: Context, msg: object, at: float, sender: ActorRef) -> list[object]:
    ctx.now, ctx.sender = at, sender
    balancer.receive(ctx, msg)
    return [e.msg for e in ctx.take_effects() if hasattr(e, "msg")]


def test_the_report_describes_the_table_and_changes_nothing() -> None:
    # Given a balancer that heard two workers, one of them silent past offline_after
    cfg = JobsConfig(heartbeat_interval=1.0, offline_after=3.0, strategy="least_loaded")
    balancer = Balancer(cfg)
    ctx = Context(ActorRef("n1", "balancer"), random.Random(1))
    _deliver(
        balancer, ctx, WorkerStatus("n1", 4, (("j1", 1), ("j2", 2)), True, 1, 0), 14.0, ActorRef("n1", "s")
    )
    _deliver(balancer, ctx, WorkerStatus("n2/pull-w", 1, (), True, 1, 0), 11.0, ActorRef("n1", "s"))
    _deliver(balancer, ctx, Route(1, (("j3", 5),)), 15.0, ActorRef("n1", "s"))  # marks n2/pull-w offline
    before = balancer.pool.views()

    # When asked
    (report,) = _deliver(balancer, ctx, InspectWorkers(7), 15.5, ASKER)

    # Expect every worker with its load, leases, state and silence, and the table untouched
    assert report == WorkersReport(
        7,
        "n1",
        "least_loaded",
        (
            WorkerInfo("n1", 4, 3, (("j1", 1), ("j2", 2)), True, 1.5),
            WorkerInfo("n2/pull-w", 1, 0, (), False, 4.5),
        ),
    )
    assert balancer.pool.views() == before
    assert decode(encode(report)) == report
