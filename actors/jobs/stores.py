"""Store actors: the job machine hosted as an actor (memory) or replicated by Raft (raft).

How it works
------------
Both answer :class:`StoreRequest` with :class:`StoreReply` under the actor name ``store``.

:class:`MemoryStore` (the simulator's store, on the store's own node) applies each command to
its :class:`JobMachine`, persists every changed job record (``job/<id>``) and the epoch and
sequence counter (``meta``), syncs, then answers. The reply is a send after a sync, so it
leaves only once the change is durable: a crash loses only commands nobody was told about, and a
restart rebuilds the machine from what was synced.

:class:`RaftStore` (on every node) turns each request into a Raft ``Propose`` to the leader it
knows of (its node's election actor tells it; ``leader_hint`` in refusals corrects it) and
answers once the command is committed and applied by the replicated :class:`JobMachine`
(``RaftConfig(machine=...)``). A request without an answer is proposed again every
``resend_after`` seconds (commands are idempotent, so a double commit is harmless) until
``give_up_after``, then answered ``{"error": "store unavailable: ..."}``.

Both emit ``store.applied`` for the commands that matter to the checkers (``dispatch``,
``renew``, ``maintain``, ``report``, ``submit``): ``op``, ``index`` (the store's order of
application), ``epoch``, ``fenced``, and per op what changed. A submit through the fast lane
also carries what a ``dispatch`` carries (``epoch``, ``fenced``, ``lane``, ``jobs``, ``lowest``,
``left_best``, ``until``, ``at``), since it is a fenced write that may dispatch the job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._actor import Actor
from .._context import Context
from .._messages import ActorRef
from ..elections._common import NAME as ELECTION
from ..elections._common import LeaderChanged, Subscribe
from ..elections.raft._messages import Propose, ProposeResult
from ._retry import RetryPolicy
from .machine import WRITES, JobMachine
from .protocol import UNAVAILABLE, StoreReply, StoreRequest

AUDITED = frozenset({"submit", "dispatch", "renew", "maintain", "report", "cancel", "dlq_requeue"})


def audit(ctx: Context, index: int, command: Any, result: Any) -> None:
    """Emit ``store.applied`` for a command the checkers follow (see the module docstring)."""
    if not isinstance(command, dict) or not isinstance(result, dict) or "error" in result:
        return
    op = command.get("op")
    if op not in AUDITED:
        return
    fields: dict[str, Any] = {"op": op, "index": index}
    if "epoch" in command:
        fields["epoch"] = command["epoch"]
        fields["fenced"] = bool(result.get("fenced"))
    if op == "submit":
        fields["id"] = result["job"]["id"]
        fields["created"] = result["created"]
        lane = command.get("lane")
        if isinstance(lane, dict) and "lane" in result:  # the fast lane: a fenced write, maybe a dispatch
            job = result["job"]
            dispatched = result["lane"] == "dispatched"
            fields["epoch"] = lane.get("epoch")
            fields["fenced"] = result["lane"] == "fenced"
            fields["lane"] = result["lane"]
            fields["jobs"] = f"{job['id']}#1@{lane.get('worker')}" if dispatched else ""
            fields["lowest"] = job["priority"] if dispatched else None
            fields["left_best"] = result.get("left_best")
            fields["until"] = lane.get("lease_until")
            fields["at"] = lane.get("at")
    elif op == "dispatch":
        jobs = result.get("jobs", [])
        fields["jobs"] = ",".join(
            f"{j['id']}#{len(j['attempts'])}@{j['attempts'][-1]['worker']}" for j in jobs
        )
        fields["lowest"] = min((j["priority"] for j in jobs), default=None)
        fields["left_best"] = result.get("left_best")
        fields["until"] = command.get("lease_until")
        fields["at"] = command.get("at")
    elif op == "renew":
        fields["worker"] = command.get("worker")
        fields["renewed"] = ",".join(result.get("renewed", []))
        fields["until"] = command.get("lease_until")
    elif op == "maintain":
        fields["expired"] = ",".join(result.get("expired", []))
        fields["at"] = command.get("at")
    elif op == "report":
        fields["id"] = command.get("id")
        fields["attempt"] = command.get("attempt")
        fields["worker"] = command.get("worker")
        fields["ok"] = command.get("ok")
        fields["accepted"] = bool(result.get("accepted")) and not result.get("duplicate")
        fields["status"] = result.get("status")
    elif op == "cancel":
        fields["id"] = command.get("id")
    elif op == "dlq_requeue":
        fields["ids"] = ",".join(result.get("requeued", []))
    ctx.emit("store.applied", **fields)


class MemoryStore(Actor):
    """The job machine as one durable actor (see the module docstring)."""

    def __init__(self, policy: RetryPolicy | None = None) -> None:
        self.machine = JobMachine(policy)
        self.index = 0

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        meta = durable.get("meta") or {"epoch": 0, "next_seq": 1, "index": 0}
        records = [(int(v[0]), v[1]) for k, v in durable.items() if k.startswith("job/")]
        self.machine.load(records, int(meta["epoch"]), int(meta["next_seq"]))
        # The op counter behind ready marks survives too, so a mark handed out before a crash
        # is still measured against the same count (jobs loaded ready count as ready at 0).
        self.machine.ops = int(meta.get("ops", 0))
        self.index = int(meta.get("index", 0))
        ctx.emit("store.loaded", jobs=len(records), epoch=self.machine.epoch)

    def receive(self, ctx: Context, msg: Any) -> None:
        if not isinstance(msg, StoreRequest):
            return
        self.index += 1
        result = self.machine.apply(self.index, msg.command)
        op = msg.command.get("op") if isinstance(msg.command, dict) else None
        if op in WRITES:
            changed, deleted = self.machine.take_changes()
            for jid, (seq, plain) in changed.items():
                ctx.persist(f"job/{jid}", [seq, plain])
            for jid in sorted(deleted):
                ctx.persist(f"job/{jid}", None)
            meta = {
                "epoch": self.machine.epoch,
                "next_seq": self.machine.next_seq,
                "index": self.index,
                "ops": self.machine.ops,
            }
            ctx.persist("meta", meta)
            ctx.sync()
        audit(ctx, self.index, msg.command, result)
        ctx.reply(StoreReply(msg.req, result))


@dataclass(slots=True)
class _Waiting:
    to: ActorRef
    req: int
    command: Any
    first_sent: float
    last_sent: float


@dataclass(frozen=True, slots=True)
class _Resend:
    pass


class RaftStore(Actor):
    """Store requests as Raft proposals (see the module docstring)."""

    def __init__(self, resend_after: float = 1.0, give_up_after: float = 5.0) -> None:
        self.resend_after = resend_after
        self.give_up_after = give_up_after
        self.leader: str | None = None
        self.waiting: dict[int, _Waiting] = {}
        self._next = 1

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        # Number proposals from a random point: a leader's late answer to a proposal of this
        # node's previous incarnation must not be taken for the answer to a new one.
        self._next = (ctx.random.getrandbits(40) << 16) + 1
        ctx.send(ActorRef(ctx.node_id, ELECTION), Subscribe())
        ctx.set_timer("resend", self.resend_after / 4, _Resend())

    def receive(self, ctx: Context, msg: Any) -> None:
        if isinstance(msg, StoreRequest):
            assert ctx.sender is not None
            mine = self._next
            self._next += 1
            self.waiting[mine] = _Waiting(ctx.sender, msg.req, msg.command, ctx.now, ctx.now)
            self._propose(ctx, mine)
        elif isinstance(msg, ProposeResult):
            self._on_result(ctx, msg)
        elif isinstance(msg, LeaderChanged):
            self.leader = msg.leader
        elif isinstance(msg, _Resend):
            ctx.set_timer("resend", self.resend_after / 4, _Resend())
            self._resend(ctx)

    def _propose(self, ctx: Context, mine: int) -> None:
        w = self.waiting[mine]
        w.last_sent = ctx.now
        target = self.leader or ctx.node_id
        ctx.send(ActorRef(target, ELECTION), Propose(w.command, mine))

    def _on_result(self, ctx: Context, msg: ProposeResult) -> None:
        w = self.waiting.get(msg.request)
        if w is None:
            return
        if msg.ok:
            del self.waiting[msg.request]
            audit(ctx, msg.index, w.command, msg.result)
            ctx.send(w.to, StoreReply(w.req, msg.result))
            return
        if msg.leader_hint and msg.leader_hint != self.leader:
            self.leader = msg.leader_hint
            self._propose(ctx, msg.request)
        # otherwise wait for the resend timer (no leader yet, or it was just deposed)

    def _resend(self, ctx: Context) -> None:
        for mine, w in list(self.waiting.items()):
            if ctx.now - w.first_sent >= self.give_up_after:
                del self.waiting[mine]
                ctx.send(w.to, StoreReply(w.req, {"error": f"{UNAVAILABLE}: no Raft leader answered"}))
            elif ctx.now - w.last_sent >= self.resend_after:
                self._propose(ctx, mine)


def machine_factory(policy: RetryPolicy | None) -> Callable[[], JobMachine]:
    """A factory for ``RaftConfig(machine=...)``: a fresh :class:`JobMachine` per incarnation."""
    return lambda: JobMachine(policy)
