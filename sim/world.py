"""The simulation: nodes of actors driven by one deterministic event loop.

How it works
------------
Everything that will happen is an entry on one heap, ordered by ``(true time, seq)``; true time
is an integer count of nanoseconds (exact, no float drift; the trace needs no rounding) and
``seq`` is a global counter, so ties break in scheduling order and nothing depends on hashing
or ``id()``.
Entry kinds: ``DELIVER`` a message, fire a ``TIMER``, finish a ``JOB``, apply a ``FAULT``.
The loop pops an entry, calls the one actor it concerns, then executes the effects the actor
returned, in order (sends go through :class:`~sim.network.Network`, timers back onto the heap,
persists into the actor's unsynced buffer, syncs into the node's durable store, emits into the
trace and ``emitted``, spawn/stop/execute-job as their names say). An unknown effect raises.

Nodes and their lifecycle (crash, restart, pause, late start, graceful stop) are described in
:mod:`sim.nodes`; this module applies the faults that drive it.

Every message between actors is encoded with ``transport.codec.encode_envelope`` when sent and
decoded when delivered (unless ``codec_checks`` is off), so nothing that cannot cross a real wire
crosses a simulated one; a codec error at delivery is traced as a drop.

Timer cancellation is lazy: each slot maps timer key -> token (the heap seq of the current
timer); a popped timer whose token no longer matches is skipped.

The hot path (deliver, send, set timer) is written for speed: handlers reuse their actor's
``Context``, sends are a closure over local bindings, the fast network path skips all random
draws, and the trace is a list of tuples hashed in C at the end.
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
from .nodes import DOWN, NS, PAUSED, UP, Node, SimulationError, Slot, snapshot, to_ns
from .result import Emitted, RunResult
from .trace import Trace

DELIVER, TIMER, JOB, FAULT, CALL = 0, 1, 2, 3, 4
JOBS_ACTOR = "$jobs"


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
        self._heap: list[tuple[Any, ...]] = []
        self._seq = itertools.count()
        self._started = False
        self._ever_reorder = self.network_config.reorder > 0
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
        self._send(ActorRef(to.node, sender), to, msg, t)

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
        net = self.network
        trace = self.trace.records.append
        codec = self.codec_checks
        effects_of = self._effects
        send = self._send
        deliveries = 0
        t = self.now_ns
        try:
            while heap and heap[0][0] <= until:
                ev = pop(heap)
                t = ev[0]
                kind = ev[2]
                if kind == DELIVER:
                    _, _, _, mid, src, dst, payload, inc, node = ev
                    if node is None or node.incarnation != inc or node.state is DOWN:
                        trace((t, "drop", dst.node, dst.name, mid, "crashed"))
                        continue
                    if net.obstructed and src.node != dst.node:
                        why = net.obstruction(src.node, dst.node)
                        if why == "partition":
                            trace((t, "drop", dst.node, dst.name, mid, "partition"))
                            continue
                        if why == "clog":
                            trace((t, "hold", dst.node, dst.name, mid))
                            net.hold(src.node, dst.node, ev)
                            continue
                    if node.state is PAUSED:
                        node.queue.append(ev)
                        continue
                    slot = node.actors.get(dst.name)
                    if slot is None:
                        trace((t, "drop", dst.node, dst.name, mid, "no-actor"))
                        continue
                    if codec:
                        try:
                            msg = decode_envelope(payload)[2]
                        except CodecError as err:
                            trace((t, "drop", dst.node, dst.name, mid, f"codec: {err}"))
                            continue
                    else:
                        msg = payload
                    ctx = slot.ctx
                    clock = node.clock
                    ctx.now = local = t * clock.ns_rate
                    ctx.wall = clock.wall_base + local
                    ctx.sender = src
                    trace((t, "deliver", dst.node, dst.name, mid))
                    deliveries += 1
                    slot.actor.receive(ctx, msg)
                    effects = ctx.effects
                    if effects:
                        ctx.effects = []
                        if len(effects) == 1 and type(e := effects[0]) is Send:  # a reply: the common case
                            send(slot.ref, e.to, e.msg, t)
                        else:
                            effects_of(slot, effects, t)
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
                    clock = node.clock
                    ctx.now = local = t * clock.ns_rate
                    ctx.wall = clock.wall_base + local
                    ctx.sender = slot.ref
                    trace((t, "timer", node.id, slot.name, key))
                    slot.actor.receive(ctx, msg)
                    if ctx.effects:
                        effects = ctx.effects
                        ctx.effects = []
                        effects_of(slot, effects, t)
                else:
                    self.now_ns = t
                    self._other(ev)
        finally:
            self.now_ns = t
            self.deliveries += deliveries

    def _other(self, ev: tuple[Any, ...]) -> None:
        t, kind = ev[0], ev[2]
        if kind == FAULT:
            self._apply(ev[3])
        elif kind == CALL:
            ev[3](self)
        elif kind == JOB:
            _, _, _, node, inc, reply_to, done = ev
            records = self.trace.records
            key = (node.id, inc, reply_to.name, done.job_id)
            cancelled = self._cancelled_jobs.get(key)
            if cancelled is not None and cancelled is not done:
                del self._cancelled_jobs[key]  # the modelled end of a cancelled job: not delivered
                return
            self._running_jobs.discard(key)
            if node.incarnation != inc or node.state is DOWN:
                records.append((t, "drop", node.id, reply_to.name, done.job_id, "job-lost"))
                return
            if node.state is PAUSED:
                node.queue.append(ev)
                return
            records.append((t, "job.done", node.id, reply_to.name, done.job_id, done.ok))
            self._send(ActorRef(node.id, JOBS_ACTOR), reply_to, done, t)
        else:  # pragma: no cover - the loop only pushes known kinds
            raise SimulationError(f"unknown heap entry kind {kind}")

    # -- effects ------------------------------------------------------------------------------

    def _make_send(self) -> Callable[[ActorRef, ActorRef, Any, int], None]:
        """The send path as a closure over local bindings (it runs once per message)."""
        heap = self._heap
        push = heapq.heappush
        seq = self._seq
        records = self.trace.records
        trace = records.append
        nodes = self.nodes
        net = self.network
        codec = self.codec_checks

        # A DELIVER entry is (time, seq, DELIVER, msg_id, src, dst, payload, dst incarnation at
        # send, dst Node or None): the Node is resolved here, once, so delivery skips a lookup.
        def send(src: ActorRef, to: ActorRef, msg: Any, t: int) -> None:
            mid = next(seq)
            src_node = src.node
            dst_node = to.node
            trace((t, "send", src_node, src.name, mid, dst_node, to.name, msg))
            if codec:
                try:
                    payload: Any = encode_envelope(src, to, msg)
                except CodecError as err:
                    trace((t, "drop", src_node, src.name, mid, f"codec: {err}"))
                    return
            else:
                payload = msg
            dst = nodes.get(dst_node)
            inc = dst.incarnation if dst is not None else -1
            if dst_node == src_node:
                push(heap, (t, mid, DELIVER, mid, src, to, payload, inc, dst))
            elif net.fast:
                push(heap, (t + net.const_ns, mid, DELIVER, mid, src, to, payload, inc, dst))
            else:
                plan = net.plan(src_node, dst_node)
                if isinstance(plan, str):
                    trace((t, "drop", src_node, src.name, mid, plan))
                    return
                push(heap, (t + round(plan[0] * NS), mid, DELIVER, mid, src, to, payload, inc, dst))
                for delay in plan[1:]:
                    trace((t, "duplicate", src_node, src.name, mid))
                    push(heap, (t + round(delay * NS), next(seq), DELIVER, mid, src, to, payload, inc, dst))

        return send

    def _effects(self, slot: Slot, effects: list[Any], t: int) -> None:
        send = self._send
        ref = slot.ref
        for e in effects:
            tp = type(e)
            if tp is Send:
                send(ref, e.to, e.msg, t)
            elif tp is SetTimer:
                if slot.alive:
                    token = next(self._seq)
                    slot.timers[e.key] = token
                    fire = t + max(0, round(e.delay * slot.node.clock.ns_per_local))
                    heapq.heappush(self._heap, (fire, token, TIMER, slot, e.key, token, e.msg))
            elif tp is CancelTimer:
                slot.timers.pop(e.key, None)
            else:
                self._slow_effect(slot, e, t)

    def _slow_effect(self, slot: Slot, e: Any, t: int) -> None:
        tp = type(e)
        node = slot.node
        records = self.trace.records
        if tp is Emit:
            self.emitted.append(Emitted(t / NS, node.id, slot.name, node.incarnation, e.kind, e.fields))
            records.append((t, "emit", node.id, slot.name, e.kind, e.fields))
        elif tp is Persist:
            slot.unsynced.append((e.key, e.value))
            records.append((t, "persist", node.id, slot.name, e.key))
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
        self.trace.records.append((t, "sync", slot.node.id, slot.name, len(slot.unsynced)))
        slot.unsynced = []

    def _spawn(self, node: Node, name: str, actor: Actor, t: int) -> None:
        if name in node.actors:
            raise SimulationError(f"spawn: actor {name!r} already exists on {node.id}")
        self.trace.records.append((t, "spawn", node.id, name, node.incarnation))
        self._start_actor(node, name, actor, t)

    def _stop(self, node: Node, name: str, t: int) -> None:
        slot = node.actors.pop(name, None)
        if slot is None:
            return
        self.trace.records.append((t, "stop", node.id, name))
        ctx = self._prepare(slot, t, None)
        slot.actor.on_stop(ctx)
        effects = ctx.effects
        ctx.effects = []
        self._effects(slot, [e for e in effects if type(e) in (Emit, Send, Persist, Sync)], t)
        slot.alive = False

    def _execute(self, slot: Slot, e: ExecuteJob, t: int) -> None:
        node = slot.node
        out = self.jobs.outcome(e.job_type, e.timeout, self.job_rng)
        done = JobDone(e.job_id, out.ok, None, out.error, out.duration)
        self.trace.records.append((t, "job.start", node.id, slot.name, e.job_id, e.job_type))
        entry = (t + to_ns(out.duration), next(self._seq), JOB, node, node.incarnation, e.reply_to, done)
        heapq.heappush(self._heap, entry)
        self._running_jobs.add((node.id, node.incarnation, e.reply_to.name, e.job_id))

    def _cancel_job(self, slot: Slot, e: CancelJob, t: int) -> None:
        """Finish a running job now as cancelled; its modelled JobDone will be dropped."""
        node = slot.node
        key = (node.id, node.incarnation, slot.name, e.job_id)
        if key not in self._running_jobs or key in self._cancelled_jobs:
            return
        self.trace.records.append((t, "job.cancel", node.id, slot.name, e.job_id))
        done = JobDone(e.job_id, False, None, f"cancelled: {e.reason}", 0.0)
        self._cancelled_jobs[key] = done
        heapq.heappush(self._heap, (t, next(self._seq), JOB, node, node.incarnation, slot.ref, done))

    def _prepare(self, slot: Slot, t: int, sender: ActorRef | None) -> Context:
        ctx = slot.ctx
        clock = slot.node.clock
        ctx.now = t * clock.ns_rate
        ctx.wall = clock.wall_base + ctx.now
        ctx.sender = sender
        return ctx

    # -- node lifecycle -----------------------------------------------------------------------

    def _start_actor(self, node: Node, name: str, actor: Actor, t: int) -> None:
        rng = Random(derive_seed(self.seed, f"actor/{node.id}/{name}/{node.incarnation}"))
        slot = Slot(node, name, actor, rng)
        node.actors[name] = slot
        ctx = self._prepare(slot, t, None)
        actor.on_start(ctx, MappingProxyType(dict(node.durable.get(name, {}))))
        if ctx.effects:
            effects = ctx.effects
            ctx.effects = []
            self._effects(slot, effects, t)

    def _bring_up(self, node: Node) -> None:
        node.incarnation += 1
        node.state = UP
        self.trace.records.append((self.now_ns, "start", node.id, "", node.incarnation))

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
            slot.alive = False
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
        records = self.trace.records
        node = self.nodes[f.node] if f.node is not None else None
        self.faults.append(f)
        if node is not None:
            records.append((t, a, node.id, "", f.by if a == "clock_jump" else node.incarnation))
        else:
            records.append((t, "fault", "", "", f.describe()))
        if a == "crash" and node is not None and node.state is not DOWN:
            self._crash(node)
        elif a == "stop" and node is not None and node.state is not DOWN:
            self._leave(node)
        elif a in ("restart", "start") and node is not None and node.state is DOWN:
            self._bring_up(node)
            self._start_actors(node)
        elif a == "pause" and node is not None and node.state is UP:
            node.state = PAUSED
        elif a == "resume" and node is not None and node.state is PAUSED:
            node.state = UP
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
                records.append((t, "release", ev[5].node, ev[5].name, ev[3]))
            self._requeue(released)
        elif a in ("set_loss", "set_duplicate", "set_reorder"):
            net.set_param(a[4:], f.value)
        self._snapshot()

    def _snapshot(self) -> None:
        net = self.network
        lossy = net.loss > 0 or any((lk.loss or 0) > 0 for lk in net.links.values())
        obstructed = frozenset(net.blocked | net.clogged)
        self.timeline.snapshots.append(snapshot(self.now, self.nodes, obstructed, lossy))
