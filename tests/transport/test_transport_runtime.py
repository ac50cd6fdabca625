"""The trio runtime over the memory transport: timers, durability, errors, jobs, detection.

Each test reads Given / When / Expect. Timings are small but bounds are generous so a loaded
2-core machine does not make them flaky.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
import trio.testing

from actors import Actor, ActorRef, Context, JobDone, message
from actors.heartbeat import HeartbeatConfig, blueprint
from transport.events import EventLog
from transport.memory import MemoryHub
from transport.runtime import HANDOFF_DEPTH, NodeRuntime, Processor
from transport.store import replay


@message("test.rt.Note")
@dataclass(frozen=True, slots=True)
class Note:
    text: str


@message("test.rt.Boom")
@dataclass(frozen=True, slots=True)
class Boom:
    pass


async def wait_for(pred: Callable[[], bool], timeout: float = 10.0, step: float = 0.01) -> bool:
    with trio.move_on_after(timeout):
        while not pred():
            await trio.sleep(step)
        return True
    return False


def one_actor(name: str, make: Callable[[], Actor]) -> Callable[[str], Mapping[str, Actor]]:
    return lambda node_id: {name: make()}


async def start_node(
    nursery: trio.Nursery,
    hub: MemoryHub,
    node_id: str,
    bp: Callable[[str], Mapping[str, Actor]],
    events: EventLog,
    **kw: Any,
) -> NodeRuntime:
    rt = NodeRuntime(node_id, bp, hub.transport(node_id), events=events, seed=1, **kw)
    started: NodeRuntime = await nursery.start(rt.serve)
    return started


# ------------------------------------------------------------------ failure detection


FAST = HeartbeatConfig(interval=0.05, suspect_after=0.15, dead_after=0.3)
NODES = ("n1", "n2", "n3")


async def test_heartbeat_detects_a_crashed_node_and_its_return() -> None:
    # Given three detectors on one hub
    hub, events = MemoryHub(), EventLog()
    async with trio.open_nursery() as nursery:
        rts = {n: await start_node(nursery, hub, n, blueprint(NODES, FAST), events) for n in NODES}
        await trio.sleep(0.3)
        assert not events.find("peer.dead")
        # When n3 crashes
        rts["n3"].crash()
        # Expect n1 and n2 declare it dead
        assert await wait_for(lambda: all(events.find("peer.dead", node=n, peer="n3") for n in ("n1", "n2")))
        # When n3 comes back, Expect both see it alive again
        await start_node(nursery, hub, "n3", blueprint(NODES, FAST), events)
        assert await wait_for(lambda: all(events.find("peer.alive", node=n, peer="n3") for n in ("n1", "n2")))
        nursery.cancel_scope.cancel()


async def test_heartbeat_detects_a_blocked_link_and_heals() -> None:
    # Given two detectors
    hub, events = MemoryHub(), EventLog()
    async with trio.open_nursery() as nursery:
        for n in ("a", "b"):
            await start_node(nursery, hub, n, blueprint(("a", "b"), FAST), events)
        # When frames from a to b are dropped
        hub.block("a", "b")
        # Expect each declares the other dead (a gets no pongs; b gets no pings' pongs... nor pings)
        assert await wait_for(lambda: bool(events.find("peer.dead", node="a", peer="b")))
        assert await wait_for(lambda: bool(events.find("peer.dead", node="b", peer="a")))
        # When healed, Expect alive again
        hub.heal()
        assert await wait_for(lambda: bool(events.find("peer.alive", node="a", peer="b")))
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------ timers


class TimerActor(Actor):
    def __init__(self) -> None:
        self.got: list[tuple[str, bool]] = []

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        ctx.set_timer("a", 0.05, Note("first"))
        ctx.set_timer("a", 0.15, Note("second"))  # replaces "first"
        ctx.set_timer("b", 0.05, Note("cancelled"))
        ctx.cancel_timer("b")
        ctx.set_timer("c", 0.1, Note("c"))

    def receive(self, ctx: Context, msg: Any) -> None:
        self.got.append((msg.text, ctx.sender == ctx.self_ref))


async def test_timers_replace_and_cancel() -> None:
    hub, events = MemoryHub(), EventLog()
    async with trio.open_nursery() as nursery:
        rt = await start_node(nursery, hub, "n1", one_actor("t", TimerActor), events)
        await trio.sleep(0.5)
        actor = rt.actor("t")
        assert isinstance(actor, TimerActor)
        # Expect the replaced and the cancelled timers never fire; timers come from self
        assert actor.got == [("c", True), ("second", True)]
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------ durability


class Counter(Actor):
    def __init__(self) -> None:
        self.durable: dict[str, Any] = {}

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        self.durable = dict(durable)
        starts = int(durable.get("starts", 0)) + 1
        ctx.persist("starts", starts)
        ctx.persist("gone", 1 if starts == 1 else None)  # written at the first start, then deleted
        ctx.sync()
        ctx.persist("unsynced", "lost")  # never synced

    def receive(self, ctx: Context, msg: Any) -> None:
        pass


def synced_starts(data_dir: Path) -> int:
    state, _good, _size = replay(data_dir / "n1" / "c.wal")
    return int(state.get("starts", 0))


async def test_durable_state_survives_restart_and_unsynced_writes_are_lost(tmp_path: Path) -> None:
    hub, events = MemoryHub(), EventLog()
    for expected_starts in (1, 2, 3):
        async with trio.open_nursery() as nursery:
            rt = await start_node(nursery, hub, "n1", one_actor("c", Counter), events, data_dir=tmp_path)
            # wait for on_start's sync to reach the disk (an fsync in a thread: slow under load)
            assert await wait_for(lambda n=expected_starts: synced_starts(tmp_path) == n)
            actor = rt.actor("c")
            assert isinstance(actor, Counter)
            assert actor.durable.get("starts", 0) == expected_starts - 1
            assert "unsynced" not in actor.durable
            assert ("gone" in actor.durable) == (expected_starts == 2)
            # graceful stop and crash both keep only synced writes
            if expected_starts == 1:
                rt.stop()
            else:
                rt.crash()
    on_disk, _good, _size = replay(tmp_path / "n1" / "c.wal")
    assert on_disk == {"starts": 3}
    assert not list((tmp_path / "n1").glob("*.tmp"))


# ------------------------------------------------------------------ errors


class Fragile(Actor):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def receive(self, ctx: Context, msg: Any) -> None:
        if isinstance(msg, Boom):
            ctx.emit("before.boom")  # discarded with the failed call
            raise ZeroDivisionError("boom")
        self.seen.append(msg.text)
        ctx.emit("noted", text=msg.text)


async def test_handler_exception_is_logged_and_the_actor_keeps_running() -> None:
    hub, events = MemoryHub(), EventLog()
    async with trio.open_nursery() as nursery:
        rt = await start_node(nursery, hub, "n1", one_actor("f", Fragile), events)
        ref = ActorRef("n1", "f")
        rt.tell(ref, Note("one"))
        rt.tell(ref, Boom())
        rt.tell(ref, Note("two"))
        assert await wait_for(lambda: len(events.find("noted")) == 2)
        errors = events.find("runtime.handler_error", actor="f")
        assert len(errors) == 1 and "ZeroDivisionError: boom" in errors[0]["error"]
        assert not events.find("before.boom")
        assert rt.stats.handler_errors == 1
        nursery.cancel_scope.cancel()


async def test_full_mailbox_drops_and_counts() -> None:
    hub, events = MemoryHub(), EventLog()
    async with trio.open_nursery() as nursery:
        rt = await start_node(nursery, hub, "n1", one_actor("f", Fragile), events, mailbox_size=4)
        ref = ActorRef("n1", "f")
        await trio.sleep(0.05)  # the actor waits on its mailbox
        # Given an idle actor, Expect every message handled at once (handed off): none queued
        assert all(rt.tell(ref, Note(f"direct{i}")) for i in range(10))
        assert len(events.find("noted")) == 10 and rt.stats.dropped_mailbox_full == 0
        # When messages must queue (as deep in a chain of hand-offs), Expect 4 held, the rest dropped
        rt._depth = HANDOFF_DEPTH
        results = [rt.tell(ref, Note(str(i))) for i in range(10)]  # no checkpoint in between
        rt._depth = 0
        accepted = results.count(True)
        assert accepted in (4, 5)  # a waiting receiver may take one item directly
        assert rt.stats.dropped_mailbox_full == 10 - accepted
        assert len(events.find("runtime.mailbox_full", actor="f")) == 1  # one line, rate limited
        assert await wait_for(lambda: len(events.find("noted")) == 10 + accepted)
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------ jobs


class JobClient(Actor):
    def __init__(self) -> None:
        self.done: dict[str, JobDone] = {}

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        ctx.execute_job("ok", "double", 21, timeout=5)
        ctx.execute_job("fail", "explode", None, timeout=5)
        ctx.execute_job("slow", "sleep", 10, timeout=0.1)
        ctx.execute_job("unknown", "nope", None, timeout=5)

    def receive(self, ctx: Context, msg: Any) -> None:
        assert isinstance(msg, JobDone)
        self.done[msg.job_id] = msg


async def _double(x: Any) -> Any:
    await trio.sleep(0)
    return x * 2


async def _explode(x: Any) -> Any:
    raise ValueError("bad payload")


async def _sleep(x: Any) -> Any:
    await trio.sleep(x)
    return "woke"


async def test_execute_job_success_failure_timeout_unknown() -> None:
    hub, events = MemoryHub(), EventLog()
    procs: dict[str, Processor] = {"double": _double, "explode": _explode, "sleep": _sleep}
    async with trio.open_nursery() as nursery:
        rt = await start_node(nursery, hub, "n1", one_actor("j", JobClient), events, processors=procs)
        actor = rt.actor("j")
        assert isinstance(actor, JobClient)
        assert await wait_for(lambda: len(actor.done) == 4, timeout=5)
        d = actor.done
        assert d["ok"].ok and d["ok"].result == 42 and d["ok"].error == ""
        assert not d["fail"].ok and d["fail"].error == "ValueError: bad payload"
        assert not d["slow"].ok and "timed out" in d["slow"].error
        assert 0.09 <= d["slow"].duration < 2
        assert not d["unknown"].ok and "unknown job type 'nope'" in d["unknown"].error
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------ spawn / stop / remote


class Parent(Actor):
    def receive(self, ctx: Context, msg: Any) -> None:
        if msg.text == "spawn":
            ctx.spawn("child", Fragile())
        elif msg.text == "stop":
            ctx.stop("child")


async def test_spawn_and_stop_on_the_same_node() -> None:
    hub, events = MemoryHub(), EventLog()
    async with trio.open_nursery() as nursery:
        rt = await start_node(nursery, hub, "n1", one_actor("p", Parent), events)
        rt.tell(ActorRef("n1", "p"), Note("spawn"))
        assert await wait_for(lambda: "child" in rt.actor_names())
        rt.tell(ActorRef("n1", "p"), Note("stop"))
        assert await wait_for(lambda: "child" not in rt.actor_names())
        nursery.cancel_scope.cancel()


class Echo(Actor):
    def receive(self, ctx: Context, msg: Any) -> None:
        if isinstance(msg, Note) and not msg.text.startswith("echo:"):
            ctx.reply(Note("echo:" + msg.text))
        else:
            ctx.emit("got", text=msg.text, sender=str(ctx.sender))


async def test_remote_send_goes_through_the_codec() -> None:
    hub, events = MemoryHub(), EventLog()
    async with trio.open_nursery() as nursery:
        a = await start_node(nursery, hub, "a", one_actor("e", Echo), events)
        await start_node(nursery, hub, "b", one_actor("e", Echo), events)
        a.tell(ActorRef("b", "e"), Note("hi"), sender=ActorRef("a", "e"))
        assert await wait_for(lambda: bool(events.find("got", node="a", text="echo:hi", sender="e@b")))
        # an unregistered message cannot cross, even in memory
        assert not a.tell(ActorRef("b", "e"), object(), sender=ActorRef("a", "e"))
        assert events.find("runtime.not_encodable")
        nursery.cancel_scope.cancel()


class Writer(Actor):
    """Persists the sequence number of each note, syncs, then tells the reader."""

    def receive(self, ctx: Context, msg: Any) -> None:
        if isinstance(msg, Note):
            ctx.persist("last", msg.text)
            ctx.sync()
            ctx.send(ActorRef(ctx.node_id, "reader"), Note(msg.text))


class Reader(Actor):
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.durable_when_told: list[bool] = []

    def receive(self, ctx: Context, msg: Any) -> None:
        state, _good, _size = replay(self.data_dir / "n1" / "writer.wal")
        self.durable_when_told.append(state.get("last") is not None and int(state["last"]) >= int(msg.text))


async def test_a_send_after_a_sync_waits_for_the_write_to_be_durable_even_in_a_burst(tmp_path: Path) -> None:
    # Given a writer that persists, syncs and then tells a reader, under a burst of 200 notes
    reader = Reader(tmp_path)
    hub, events = MemoryHub(), EventLog()

    def bp(node_id: str) -> Mapping[str, Actor]:
        return {"writer": Writer(), "reader": reader}

    async with trio.open_nursery() as nursery:
        rt = await start_node(nursery, hub, "n1", bp, events, data_dir=tmp_path)
        for i in range(200):
            rt.tell(ActorRef("n1", "writer"), Note(str(i)))
        assert await wait_for(lambda: len(reader.durable_when_told) == 200)
        # Expect every message to arrive only once its write is on disk, with fewer fsyncs than writes
        assert all(reader.durable_when_told)
        store = rt.store.for_actor("writer")
        assert store.syncs < 200, store.syncs
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------ direct hand-off


class Relay(Actor):
    """Notes what it gets; "self:N" sends itself N more notes, "pass" hands to the next actor,
    "stop-then-pass" stops actor "late" and then tells "last"."""

    def __init__(self, nxt: str | None = None) -> None:
        self.nxt = nxt

    def receive(self, ctx: Context, msg: Any) -> None:
        ctx.emit("relay.got", text=msg.text)
        if msg.text.startswith("self:"):
            for i in range(int(msg.text[5:])):
                ctx.send(ctx.self_ref, Note(f"mine{i}"))
        elif msg.text == "pass" and self.nxt is not None:
            ctx.send(ActorRef(ctx.node_id, self.nxt), Note("pass"))
        elif msg.text == "stop-then-pass":
            ctx.stop("late")
            ctx.send(ActorRef(ctx.node_id, "last"), Note("after the stop"))


class Late(Actor):
    def receive(self, ctx: Context, msg: Any) -> None:
        pass

    def on_stop(self, ctx: Context) -> None:
        ctx.emit("late.stopped")


def relays(node_id: str) -> Mapping[str, Actor]:
    chain: dict[str, Actor] = {f"r{i}": Relay(f"r{i + 1}") for i in range(6)}
    return {**chain, "r6": Relay(), "late": Late(), "last": Relay()}


async def test_a_handed_off_message_keeps_the_actors_order() -> None:
    hub, events = MemoryHub(), EventLog()
    async with trio.open_nursery() as nursery:
        rt = await start_node(nursery, hub, "n1", relays, events)
        await trio.sleep(0.05)  # every actor waits on its mailbox
        # Given an idle actor, When it is told something, Expect it handled before tell returns
        rt.tell(ActorRef("n1", "r0"), Note("self:3"))
        assert [e["text"] for e in events.find("relay.got", actor="r0")] == ["self:3"]
        # and what it sent itself meanwhile, and what comes next, queued behind, in order
        rt.tell(ActorRef("n1", "r0"), Note("next"))
        want = ["self:3", "mine0", "mine1", "mine2", "next"]
        assert await wait_for(lambda: [e["text"] for e in events.find("relay.got", actor="r0")] == want)
        # When a message is passed down a chain of seven idle actors, Expect the first
        # HANDOFF_DEPTH hops at once, and every actor to get it in the end
        rt.tell(ActorRef("n1", "r0"), Note("pass"))
        now = {e["actor"] for e in events.find("relay.got", text="pass")}
        assert now == {f"r{i}" for i in range(HANDOFF_DEPTH)}
        assert await wait_for(lambda: len(events.find("relay.got", text="pass")) == 7)
        nursery.cancel_scope.cancel()


async def test_a_stop_in_a_handed_off_message_runs_before_what_follows_it() -> None:
    hub, events = MemoryHub(), EventLog()
    async with trio.open_nursery() as nursery:
        rt = await start_node(nursery, hub, "n1", relays, events)
        await trio.sleep(0.05)
        # When an idle actor's handler stops another actor, then sends, Expect the stop (with
        # its on_stop) to complete before the send, in the actor's own task
        rt.tell(ActorRef("n1", "r1"), Note("stop-then-pass"))
        rt.tell(ActorRef("n1", "r1"), Note("queued behind"))
        assert await wait_for(lambda: events.find("relay.got", actor="r1", text="queued behind"))
        kinds = ("late.stopped", "relay.got")
        seen = [(e["kind"], e.get("text")) for e in events.records if e["kind"] in kinds]
        assert seen == [
            ("relay.got", "stop-then-pass"),
            ("late.stopped", None),
            ("relay.got", "after the stop"),
            ("relay.got", "queued behind"),  # the actor's next message waited for all of it
        ]
        assert "late" not in rt.actor_names()
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------ borrowed jobs


class Starter(Actor):
    """Starts the job ``mark`` with the note's text as its id; records the JobDones."""

    def __init__(self) -> None:
        self.done: dict[str, JobDone] = {}

    def receive(self, ctx: Context, msg: Any) -> None:
        if isinstance(msg, Note):
            ctx.execute_job(msg.text, "mark", msg.text, timeout=30)
        elif isinstance(msg, JobDone):
            self.done[msg.job_id] = msg


async def test_a_borrowed_job_runs_in_the_borrowing_task() -> None:
    ran_in: dict[str, trio.lowlevel.Task] = {}

    async def mark(key: Any) -> Any:
        ran_in[key] = trio.lowlevel.current_task()
        if key == "long":
            await trio.sleep(60)
        return key

    hub, events = MemoryHub(), EventLog()
    async with trio.open_nursery() as nursery:
        rt = await start_node(nursery, hub, "n1", one_actor("s", Starter), events, processors={"mark": mark})
        starter = rt.actor("s")
        assert isinstance(starter, Starter)
        ref = ActorRef("n1", "s")
        await trio.testing.wait_all_tasks_blocked()  # the actor's task waits: it is idle
        # Given an idle actor, When two messages handed off within the block start two jobs,
        # Expect the first to be taken (not started) and the second to start in a task of its own
        with rt.borrow_job() as borrowed:
            rt.tell(ref, Note("a"))
            rt.tell(ref, Note("b"))
        assert borrowed.job is not None and borrowed.job.job_id == "a"
        assert "a" not in ran_in
        await rt.run_borrowed(borrowed.job)
        me = trio.lowlevel.current_task()
        assert ran_in["a"] is me
        assert await wait_for(lambda: {"a", "b"} <= starter.done.keys())
        assert ran_in["b"] is not me and starter.done["a"].ok and starter.done["a"].result == "a"

        # When the block ends with an exception, Expect the taken job to start as usual
        await trio.testing.wait_all_tasks_blocked()
        try:
            with rt.borrow_job() as failed:
                rt.tell(ref, Note("c"))
                raise KeyError("the borrower broke")
        except KeyError:
            pass
        assert failed.job is None
        assert await wait_for(lambda: "c" in starter.done)
        assert ran_in["c"] is not me

        # When the runtime crashes, Expect a borrowed job that is still running to be cancelled
        await trio.testing.wait_all_tasks_blocked()
        with rt.borrow_job() as long:
            rt.tell(ref, Note("long"))
        assert long.job is not None
        job = long.job
        returned = trio.Event()

        async def run_long() -> None:
            await rt.run_borrowed(job)
            returned.set()

        nursery.start_soon(run_long)
        assert await wait_for(lambda: "long" in ran_in)
        rt.crash()
        with trio.fail_after(10):
            await returned.wait()
        assert "long" not in starter.done
