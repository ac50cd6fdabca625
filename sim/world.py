"""The simulation: nodes of actors driven by one deterministic event loop.

How it works
------------
Everything that will happen is an entry on one heap, ordered by ``(true time, seq)``; true time
is an integer count of nanoseconds (exact, no float drift; the trace needs no rounding) and
``seq`` is a global counter, so ties break in scheduling order and nothing depends on hashing
or ``id()``. A sentinel entry at infinity keeps the heap from ever being empty.
Entry kinds: ``DELIVER`` a message, fire a ``TIMER``, finish a ``JOB``, apply a ``FAULT``.
The loop pops an entry and calls the one actor it concerns. The actor's effects execute in the
order it asked for them (sends go through :class:`~sim.network.Network`, timers back onto the
heap, persists into the actor's unsynced buffer, syncs into the node's durable store, emits
into the trace and ``emitted``, spawn/stop/execute-job as their names say; an unknown effect
raises): sends and timers as they are asked for, the rest after the call (see
:mod:`sim.context`, which explains why that is the same run).

Nodes and their lifecycle (crash, restart, pause, late start, graceful stop) are described in
:mod:`sim.nodes`; this module applies the faults that drive it.

Every message between actors is encoded with ``transport.codec.encode_envelope`` when sent and
decoded when delivered (unless ``codec_checks`` is off), so nothing that cannot cross a real wire
crosses a simulated one; a codec error at delivery is traced as a drop.

Timer cancellation is lazy: each slot maps timer key -> token (the heap seq of the current
timer); a popped timer whose token no longer matches is skipped.

The hot path (deliver, send, set timer) is written for speed. A DELIVER entry carries the
destination's slot as it was at send time; when that slot is still ``ready`` (alive, node up
and not paused) and no link is obstructed, delivery is a few attribute stores and the call.
Anything else goes through :meth:`Simulation._deliver_slow`, which applies every rule (crashed
destination, partition, clog, pause, missing actor) exactly as if the fast path did not exist.
The network's ``fast`` flag skips all random draws when no fault or distribution can apply, and
the trace is a list of small tuples of plain data hashed in C (see :mod:`sim.trace`).
"""

from __future__ import annotations

import gc
import heapq
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from random import Random
from types import MappingProxyType
from typing import Any

from actors import (
    Actor,
    ActorRef,
    CancelJob,
    CancelTimer,
    Context,
    Emit,
    ExecuteJob,
    JobDone,
    NodeBlueprint,
    Persist,
    Send,
    SetTimer,
    Spawn,
    Stop,
    Sync,
)
from transport.codec import CodecError, decode_envelope, encode_envelope

from .clock import ClockConfig, NodeClock, derive_seed
from .faults import Fault, Timeline
from .jobs import JobModel
from .network import Network, NetworkConfig
from .nodes import DOWN, NS, PAUSED, UP, Node, Origin, Pending, SimulationError, Slot, snapshot, to_ns
from .result import Emitted, RunResult
from .trace import CHUNK, Trace, message_canon

DELIVER, TIMER, JOB, FAULT, CALL = 0, 1, 2, 3, 4
JOBS_ACTOR = "$jobs"
Sender = Slot | Origin
PACK_AT = 2 * CHUNK
"""The loop packs the trace (see :meth:`Trace.pack`) when it holds this many items."""
_SENTINEL = (float("inf"), -1, -1)
"""Stays on the heap so that the loop never tests for an empty heap."""


class Simulation:
    """A deterministic world of nodes running the actors a blueprint builds.

    Build one, optionally schedule faults or inject messages, then :meth:`run`::

        sim = Simulation(heartbeat.blueprint(("n1", "n2")), ["n1", "n2"], seed=7)
        sim.schedule(Fault(5.0, "crash", node="n2"))
        result = sim.run(until=20.0)

    Args:
        blueprint: builds a node's actors by name; called at start and at every restart.
        nodes: node ids, in the order they start.
        seed: the run seed; every random stream is derived from it.
        network: the network model (default: 1 ms constant latency, no faults).
        clocks: per-node clock offset and drift.
        jobs: the job model for ``ExecuteJob``.
        codec_checks: encode and decode every delivered message.
        name: a label for results.
        late: nodes that stay down at first; a ``start`` fault brings each one up.
    """

    def __init__(
        self,
        blueprint: NodeBlueprint,
        nodes: Sequence[str],
        *,
        seed: int = 0,
        network: NetworkConfig | None = None,
        clocks: Mapping[str, ClockConfig] | None = None,
        jobs: JobModel | None = None,
        codec_checks: bool = True,
        name: str = "simulation",
        late: Sequence[str] = (),
    ):
        if len(set(nodes)) != len(nodes) or not nodes:
            raise ValueError("nodes must be a non-empty list of distinct ids")
        unknown = [n for n in late if n not in nodes]
        if unknown:
            raise ValueError(f"late nodes must be among the nodes, got {unknown[0]!r}")
        self.late = tuple(n for n in nodes if n in late)
        self.blueprint = blueprint
        self.seed = seed
        self.name = name
        self.codec_checks = codec_checks
        self.network_config = network or NetworkConfig()
        self.network = Network(self.network_config, Random(derive_seed(seed, "network")))
        self.job_rng = Random(derive_seed(seed, "jobs"))
        # (node, incarnation, actor, job id) of modelled jobs not yet done, and of those cancelled
        # (-> the JobDone the cancellation sent; the modelled one is then dropped)
        self._running_jobs: set[tuple[str, int, str, str]] = set()
        self._cancelled_jobs: dict[tuple[str, int, str, str], JobDone] = {}
        self.jobs = jobs or JobModel()
        clocks = clocks or {}
        self.nodes: dict[str, Node] = {n: Node(n, NodeClock(clocks.get(n))) for n in nodes}
        self.now_ns = 0
        self.trace = Trace()
        self.emitted: list[Emitted] = []
        self.faults: list[Fault] = []
        self.timeline = Timeline()
        self.deliveries = 0
        self._heap: list[tuple[Any, ...]] = [_SENTINEL]
        self._seq = itertools.count()
        self._started = False
        self._ever_reorder = self.network_config.reorder > 0
        self._origins: dict[tuple[str, str], Origin] = {}
        self._send = self._make_send()

    @property
    def now(self) -> float:
        """True time in seconds."""
        return self.now_ns / NS

    # -- scheduling ---------------------------------------------------------------------------

    def schedule(self, fault: Fault) -> None:
        """Apply ``fault`` at ``fault.at`` (true seconds; must not be in the past)."""
        at = to_ns(fault.at)
        if at < self.now_ns:
            raise SimulationError(f"fault {fault.describe()} at {fault.at} is in the past")
        for name in (fault.node, fault.src, fault.dst, *(n for g in fault.groups for n in g)):
            if name is not None and name not in self.nodes:
                raise SimulationError(f"fault {fault.describe()}: unknown node {name!r}")
        if fault.action == "set_reorder" and fault.value > 0:
            self._ever_reorder = True
        heapq.heappush(self._heap, (at, next(self._seq), FAULT, fault))

    def call_at(self, at: float, fn: Callable[[Simulation], None]) -> None:
        """Call ``fn(self)`` at true time ``at`` seconds (for tests and notebooks)."""
        heapq.heappush(self._heap, (to_ns(at), next(self._seq), CALL, fn))

    def inject(self, to: ActorRef, msg: Any, at: float | None = None, sender: str = "$client") -> None:
        """Deliver ``msg`` to ``to`` at ``at`` seconds (default now) from an outside client on
        ``to``'s node (so no network faults apply). Starts the nodes if not yet started."""
        self.start()
        t = self.now_ns if at is None else to_ns(at)
        self._send(self._origin(to.node, sender), to, msg, t)

    def _origin(self, node: str, name: str) -> Origin:
        """A sender that is no actor: ``name`` on ``node``."""
        key = (node, name)
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = Origin(ActorRef(node, name), self.trace.actor_id(node, name))
        return origin

    # -- inspection ---------------------------------------------------------------------------

    def actor(self, node: str, name: str) -> Actor | None:
        """The live actor ``name`` on ``node`` (None if the node is down or it does not exist)."""
        slot = self.nodes[node].actors.get(name)
        return slot.actor if slot is not None else None

    def durable(self, node: str, name: str) -> dict[str, Any]:
        """A copy of the synced durable state of actor ``name`` on ``node``."""
        return dict(self.nodes[node].durable.get(name, {}))

    def node_state(self, node: str) -> str:
        """``"up"``, ``"paused"`` or ``"down"``."""
        return self.nodes[node].state

    # -- the loop -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start every node but the late ones (done by the first :meth:`run`)."""
        if self._started:
            return
        self._started = True
        first = [node for n, node in self.nodes.items() if n not in self.late]
        for node in first:
            self._bring_up(node)
        for node in first:
            self._start_actors(node)
        self._snapshot()

    def run(self, until: float) -> RunResult:
        """Run until true time ``until`` seconds and return the result so far."""
        wall0 = time.perf_counter()
        self.start()
        end = to_ns(until)
        # The trace holds millions of tuples: cyclic GC passes over them would dominate the run
        # (and nothing on the hot path makes cycles), so collection waits until the run ends.
        gc_enabled = gc.isenabled()
        gc.disable()
        try:
            self._loop(end)
        finally:
            if gc_enabled:
                gc.enable()
        self.now_ns = max(self.now_ns, end)
        res = self.result()
        res.wall_seconds = time.perf_counter() - wall0
        return res

    def result(self) -> RunResult:
        """The result of the run so far (hashes the trace)."""
        bound = self.network_config.latency_bound()
        if bound is not None and self._ever_reorder:
            bound += self.network_config.reorder_delay
        return RunResult(
            name=self.name,
            seed=self.seed,
            nodes=tuple(self.nodes),
            late=self.late,
            sim_seconds=self.now,
            events=len(self.trace),
            trace_sha256=self.trace.sha256(),
            emitted=self.emitted,
            faults=self.faults,
            stats=self.trace.counts(),
            timeline=self.timeline,
            drift={n: node.clock.drift for n, node in self.nodes.items()},
            latency_bound=bound,
            trace=self.trace,
            deliveries=self.deliveries,
            durable={
                n: {actor: dict(state) for actor, state in node.durable.items()}
                for n, node in self.nodes.items()
            },
        )

    def _loop(self, until: int) -> None:
        heap = self._heap
        pop = heapq.heappop
        trace = self.trace
        compact = trace.compact
        rec = compact.append
        add = trace.add
        mark = trace.mark  # the time of the last time mark in the trace
        marks = 0
        codec = self.codec_checks
        net = self.network
        obstructed = net.obstructed
        flush = self._flush
        deliveries = 0
        t = self.now_ns
        try:
            while True:
                ev = pop(heap)
                if ev[0] > until:
                    heapq.heappush(heap, ev)
                    break
                t = ev[0]
                kind = ev[2]
                if kind == DELIVER:
                    _, _, _, mid, src, _, msg, slot = ev  # (time, seq, kind, id, src, dst, payload, target)
                    if slot.ready and not obstructed:
                        if codec:
                            try:
                                msg = decode_envelope(msg)[2]
                            except CodecError as err:
                                add("drop", t, slot.node.id, slot.name, mid, f"codec: {err}")
                                continue
                        ctx = slot.ctx
                        ctx.t = t
                        ctx.sender = src
                        if t != mark:
                            rec(~t)
                            mark = t
                            marks += 1
                            if len(compact) >= PACK_AT:
                                trace.pack()
                        rec(mid)
                        deliveries += 1
                        slot.receive(ctx, msg)
                        if ctx.effects:
                            flush(slot, t)
                    else:
                        self._deliver_slow(ev, t)
                elif kind == TIMER:
                    _, _, _, slot, key, token, msg = ev
                    if not slot.alive or slot.timers.get(key) != token:
                        continue
                    node = slot.node
                    if node.state is PAUSED:
                        node.queue.append(ev)
                        continue
                    del slot.timers[key]
                    ctx = slot.ctx
                    ctx.t = t
                    ctx.sender = slot.ref
                    add("timer", t, node.id, slot.name, key)
                    slot.receive(ctx, msg)
                    if ctx.effects:
                        flush(slot, t)
                else:
                    self.now_ns = t
                    self._other(ev)
                    obstructed = net.obstructed
        finally:
            self.now_ns = t
            self.deliveries += deliveries
            trace.fast += deliveries
            trace.marks += marks
            trace.mark = mark

    def _deliver_slow(self, ev: tuple[Any, ...], t: int) -> None:
        """Deliver, hold, queue or drop a message the fast path could not take."""
        _, _, _, mid, src, dst, payload, target = ev
        node, inc = target.node, target.inc
        trace = self.trace
        if node is None or node.incarnation != inc or node.state is DOWN:
            trace.add("drop", t, dst.node, dst.name, mid, "crashed")
            return
        net = self.network
        if net.obstructed and src.node != dst.node:
            why = net.obstruction(src.node, dst.node)
            if why == "partition":
                trace.add("drop", t, dst.node, dst.name, mid, "partition")
                return
            if why == "clog":
                trace.add("hold", t, dst.node, dst.name, mid)
                net.hold(src.node, dst.node, ev)
                return
        if node.state is PAUSED:
            node.queue.append(ev)
            return
        slot = node.actors.get(dst.name)
        if slot is None:
            trace.add("drop", t, dst.node, dst.name, mid, "no-actor")
            return
        if self.codec_checks:
            try:
                msg = decode_envelope(payload)[2]
            except CodecError as err:
                trace.add("drop", t, dst.node, dst.name, mid, f"codec: {err}")
                return
        else:
            msg = payload
        ctx = self._prepare(slot, t, src)
        trace.add("deliver", t, dst.node, dst.name, mid)
        self.deliveries += 1
        slot.receive(ctx, msg)
        if ctx.effects:
            self._flush(slot, t)

    def _other(self, ev: tuple[Any, ...]) -> None:
        t, kind = ev[0], ev[2]
        if kind == FAULT:
            self._apply(ev[3])
        elif kind == CALL:
            ev[3](self)
        elif kind == JOB:
            _, _, _, node, inc, reply_to, done = ev
            key = (node.id, inc, reply_to.name, done.job_id)
            cancelled = self._cancelled_jobs.get(key)
            if cancelled is not None and cancelled is not done:
                del self._cancelled_jobs[key]  # the modelled end of a cancelled job: not delivered
                return
            self._running_jobs.discard(key)
            if node.incarnation != inc or node.state is DOWN:
                self.trace.add("drop", t, node.id, reply_to.name, done.job_id, "job-lost")
                return
            if node.state is PAUSED:
                node.queue.append(ev)
                return
            self.trace.add("job.done", t, node.id, reply_to.name, done.job_id, done.ok)
            self._send(self._origin(node.id, JOBS_ACTOR), reply_to, done, t)
        else:  # pragma: no cover - the loop only pushes known kinds
            raise SimulationError(f"unknown heap entry kind {kind}")

    # -- effects ------------------------------------------------------------------------------

    def _make_send(self) -> Callable[[Sender, ActorRef, Any, int], None]:
        """The send path as a closure over local bindings (it runs once per message)."""
        heap = self._heap
        push = heapq.heappush
        seq = self._seq
        trace = self.trace
        rec = trace.compact.append
        add = trace.add
        nodes = self.nodes
        net = self.network
        codec = self.codec_checks
        canon: dict[type[Any], tuple[int, Callable[[Any], Any]]] = {}

        def pending(node: Node | None, to: ActorRef) -> Pending:
            """The target of a message to an actor that is not live (or a node that is not known)."""
            inc = node.incarnation if node is not None else -1
            return Pending(node, inc, trace.actor_id(to.node, to.name))

        # A DELIVER entry is (time, seq, DELIVER, msg_id, src, dst, payload, target): src and dst
        # are ActorRefs, target the destination's Slot at send time (or a Pending).
        def send(src: Sender, to: ActorRef, msg: Any, t: int) -> None:
            mid = next(seq)
            ref = src.ref
            dst_node = to.node
            node = nodes.get(dst_node)
            target: Slot | Pending | None = node.actors.get(to.name) if node is not None else None
            if target is None:
                target = pending(node, to)
            try:
                tag, get = canon[msg.__class__]
            except KeyError:
                name, get = message_canon(msg.__class__)
                tag, get = canon[msg.__class__] = (trace.tag_id(name), get)
            rec((t, mid, src.tid, target.tid, tag, get(msg)))
            if codec:
                try:
                    payload: Any = encode_envelope(ref, to, msg)
                except CodecError as err:
                    add("drop", t, ref.node, ref.name, mid, f"codec: {err}")
                    return
            else:
                payload = msg
            if dst_node == ref.node:
                push(heap, (t, mid, DELIVER, mid, ref, to, payload, target))
            elif net.fast:
                push(heap, (t + net.const_ns, mid, DELIVER, mid, ref, to, payload, target))
            else:
                plan = net.plan(ref.node, dst_node)
                if isinstance(plan, str):
                    add("drop", t, ref.node, ref.name, mid, plan)
                    return
                push(heap, (t + round(plan[0] * NS), mid, DELIVER, mid, ref, to, payload, target))
                for delay in plan[1:]:
                    add("duplicate", t, ref.node, ref.name, mid)
                    push(heap, (t + round(delay * NS), next(seq), DELIVER, mid, ref, to, payload, target))

        return send

    def _arm(self, slot: Slot, key: str, delay: float, msg: Any, t: int) -> None:
        """Set (or replace) the timer ``key`` of ``slot``."""
        if slot.alive:
            token = next(self._seq)
            slot.timers[key] = token
            fire = t + max(0, round(delay * slot.node.clock.ns_per_local))
            heapq.heappush(self._heap, (fire, token, TIMER, slot, key, token, msg))

    def _flush(self, slot: Slot, t: int) -> None:
        """Execute the effects ``slot``'s context held back (see :mod:`sim.context`)."""
        ctx = slot.ctx
        effects = ctx.effects
        ctx.effects = []
        self._effects(slot, effects, t)

    def _effects(self, slot: Slot, effects: list[Any], t: int) -> None:
        send = self._send
        for e in effects:
            tp = type(e)
            if tp is Send:
                send(slot, e.to, e.msg, t)
            elif tp is SetTimer:
                self._arm(slot, e.key, e.delay, e.msg, t)
            elif tp is CancelTimer:
                slot.timers.pop(e.key, None)
            else:
                self._slow_effect(slot, e, t)

    def _slow_effect(self, slot: Slot, e: Any, t: int) -> None:
        tp = type(e)
        node = slot.node
        trace = self.trace
        if tp is Emit:
            self.emitted.append(Emitted(t / NS, node.id, slot.name, node.incarnation, e.kind, e.fields))
            trace.add("emit", t, node.id, slot.name, e.kind, e.fields)
        elif tp is Persist:
            slot.unsynced.append((e.key, e.value))
            trace.add("persist", t, node.id, slot.name, e.key)
        elif tp is Sync:
            self._sync(slot, t)
        elif tp is Spawn:
            self._spawn(node, e.name, e.actor, t)
        elif tp is Stop:
            self._stop(node, e.name, t)
        elif tp is ExecuteJob:
            self._execute(slot, e, t)
        elif tp is CancelJob:
            self._cancel_job(slot, e, t)
        else:
            raise SimulationError(f"{slot.ref}: unknown effect {e!r}")

    def _sync(self, slot: Slot, t: int) -> None:
        if not slot.alive:
            return
        store = slot.node.durable.setdefault(slot.name, {})
        for key, value in slot.unsynced:
            if value is None:
                store.pop(key, None)
            else:
                store[key] = value
        self.trace.add("sync", t, slot.node.id, slot.name, len(slot.unsynced))
        slot.unsynced = []

    def _spawn(self, node: Node, name: str, actor: Actor, t: int) -> None:
        if name in node.actors:
            raise SimulationError(f"spawn: actor {name!r} already exists on {node.id}")
        self.trace.add("spawn", t, node.id, name, node.incarnation)
        self._start_actor(node, name, actor, t)

    def _stop(self, node: Node, name: str, t: int) -> None:
        slot = node.actors.pop(name, None)
        if slot is None:
            return
        self.trace.add("stop", t, node.id, name)
        # on_stop gets a plain Context: only some of its effects run, all after the call.
        now = t * node.clock.ns_rate
        ctx = Context(slot.ref, slot.ctx.random, now, node.clock.wall_base + now)
        slot.actor.on_stop(ctx)
        self._effects(slot, [e for e in ctx.effects if type(e) in (Emit, Send, Persist, Sync)], t)
        slot.kill()

    def _execute(self, slot: Slot, e: ExecuteJob, t: int) -> None:
        node = slot.node
        out = self.jobs.outcome(e.job_type, e.timeout, self.job_rng)
        done = JobDone(e.job_id, out.ok, None, out.error, out.duration)
        self.trace.add("job.start", t, node.id, slot.name, e.job_id, e.job_type)
        entry = (t + to_ns(out.duration), next(self._seq), JOB, node, node.incarnation, e.reply_to, done)
        heapq.heappush(self._heap, entry)
        self._running_jobs.add((node.id, node.incarnation, e.reply_to.name, e.job_id))

    def _cancel_job(self, slot: Slot, e: CancelJob, t: int) -> None:
        """Finish a running job now as cancelled; its modelled JobDone will be dropped."""
        node = slot.node
        key = (node.id, node.incarnation, slot.name, e.job_id)
        if key not in self._running_jobs or key in self._cancelled_jobs:
            return
        self.trace.add("job.cancel", t, node.id, slot.name, e.job_id)
        done = JobDone(e.job_id, False, None, f"cancelled: {e.reason}", 0.0)
        self._cancelled_jobs[key] = done
        heapq.heappush(self._heap, (t, next(self._seq), JOB, node, node.incarnation, slot.ref, done))

    def _prepare(self, slot: Slot, t: int, sender: ActorRef | None) -> Context:
        ctx = slot.ctx
        ctx.t = t
        ctx.sender = sender
        return ctx

    # -- node lifecycle -----------------------------------------------------------------------

    def _start_actor(self, node: Node, name: str, actor: Actor, t: int) -> None:
        rng = Random(derive_seed(self.seed, f"actor/{node.id}/{name}/{node.incarnation}"))
        tid = self.trace.actor_id(node.id, name)
        slot = Slot(node, name, actor, rng, tid, self._send, self._arm)
        node.actors[name] = slot
        ctx = self._prepare(slot, t, None)
        actor.on_start(ctx, MappingProxyType(dict(node.durable.get(name, {}))))
        if ctx.effects:
            self._flush(slot, t)

    def _bring_up(self, node: Node) -> None:
        node.incarnation += 1
        node.state = UP
        self.trace.add("start", self.now_ns, node.id, "", node.incarnation)

    def _start_actors(self, node: Node) -> None:
        for name, actor in self.blueprint(node.id).items():
            self._start_actor(node, name, actor, self.now_ns)

    def _leave(self, node: Node) -> None:
        """A graceful stop: every actor's ``on_stop`` (its sends go out), then down as a crash."""
        for name in list(node.actors):
            self._stop(node, name, self.now_ns)
        self._crash(node)

    def _crash(self, node: Node) -> None:
        for slot in node.actors.values():
            slot.kill()
        node.actors = {}
        node.queue = []
        node.state = DOWN

    def _requeue(self, entries: list[tuple[Any, ...]]) -> None:
        """Push entries back at the current time, keeping their order (fresh seqs)."""
        for ev in entries:
            heapq.heappush(self._heap, (self.now_ns, next(self._seq), *ev[2:]))

    # -- faults -------------------------------------------------------------------------------

    def _apply(self, f: Fault) -> None:
        t = self.now_ns
        net = self.network
        a = f.action
        trace = self.trace
        node = self.nodes[f.node] if f.node is not None else None
        self.faults.append(f)
        if node is not None:
            trace.add(a, t, node.id, "", f.by if a == "clock_jump" else node.incarnation)
        else:
            trace.add("fault", t, "", "", f.describe())
        if a == "crash" and node is not None and node.state is not DOWN:
            self._crash(node)
        elif a == "stop" and node is not None and node.state is not DOWN:
            self._leave(node)
        elif a in ("restart", "start") and node is not None and node.state is DOWN:
            self._bring_up(node)
            self._start_actors(node)
        elif a == "pause" and node is not None and node.state is UP:
            node.state = PAUSED
            for slot in node.actors.values():
                slot.ready = False
        elif a == "resume" and node is not None and node.state is PAUSED:
            node.state = UP
            for slot in node.actors.values():
                slot.ready = True
            queued, node.queue = node.queue, []
            self._requeue(queued)
        elif a == "clock_jump" and node is not None:
            node.clock.jump(f.by)
        elif a == "partition":
            net.partition(f.groups, self.nodes)
        elif a == "block" and f.src is not None and f.dst is not None:
            net.block(f.src, f.dst)
        elif a == "unblock" and f.src is not None and f.dst is not None:
            net.unblock(f.src, f.dst)
        elif a == "heal":
            net.heal()
        elif a == "clog" and f.src is not None and f.dst is not None:
            net.clog(f.src, f.dst)
        elif a == "unclog":
            released = net.unclog(f.src, f.dst)
            for ev in released:
                trace.add("release", t, ev[5].node, ev[5].name, ev[3])
            self._requeue(released)
        elif a in ("set_loss", "set_duplicate", "set_reorder"):
            net.set_param(a[4:], f.value)
        self._snapshot()

    def _snapshot(self) -> None:
        net = self.network
        lossy = net.loss > 0 or any((lk.loss or 0) > 0 for lk in net.links.values())
        obstructed = frozenset(net.blocked | net.clogged)
        self.timeline.snapshots.append(snapshot(self.now, self.nodes, obstructed, lossy))
