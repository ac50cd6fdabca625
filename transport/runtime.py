"""The real-time runtime: hosts pure actors under trio and executes their effects for real.

How it works
------------
A :class:`NodeRuntime` serves one node. ``serve()`` starts the transport, builds the node's
actors from the blueprint and gives each one

- a bounded mailbox (a trio memory channel of ``mailbox_size`` items), and
- one task that loads the actor's durable state, calls ``on_start`` and then ``receive`` for
  each message, executing the effects of every call **in order** before taking the next
  message (a ``Send`` after a ``Sync`` goes out only once the write is durable; see Sync).
  Messages already queued are handled in a row, up to :data:`BURST`, before the task lets
  others run, so the sends of a burst of messages reach each peer in one write.

Direct hand-off: a message for an actor that is idle (its task waits on an empty mailbox) is
handled at once, in the task that delivers it (a transport reader, a service, another actor
executing its effects), instead of waking the actor's task: on an idle machine each scheduler
pass costs tens of microseconds, and a submit through the fast lane crosses three actors. The
actor's own order is unchanged: it is marked busy while the handler and its effects run, so
anything sent to it meanwhile is queued behind, and its task takes the queue afterwards. Hand-
offs nest at most :data:`HANDOFF_DEPTH` deep (deeper ones are queued); timer messages are
always queued; a Stop effect of a handed-off message is left to the actor's task, which runs
it, and the effects after it, before its next message.

Effects:
  Send       local target: straight into its mailbox; remote: ``transport.send`` (encoded).
  SetTimer   one small task per pending timer sleeping in its own cancel scope; a timer with
             the same key is cancelled and replaced. Each timer carries a generation number
             and the actor task drops a fired timer whose generation is no longer current,
             so a cancel or replace is exact even if the old timer already fired.
             The timer's message arrives with ``ctx.sender == ctx.self_ref``.
  Persist    buffered in memory (see :mod:`transport.store`).
  Sync       seals the writes persisted so far; a flusher task per actor makes every sealed
             write durable in one fsync (group commit) while the actor goes on handling
             messages. Every Send that follows a Sync is held until that Sync is durable, so
             "persisted before sent" holds exactly as if Sync had blocked, and a burst of
             Raft appends costs one fsync, not one each.
  Emit       one structured event (see :mod:`transport.events`).
  Spawn/Stop actors on this node (Stop calls ``on_stop`` and keeps the durable state).
  ExecuteJob runs the ``async def`` processor registered for the job type under
             ``trio.move_on_after(timeout)`` in its own task and sends ``JobDone`` back.
  CancelJob  cancels that task's scope (keyed by the reply-to actor and job id); the
             processor sees ``trio.Cancelled`` and ``JobDone`` says ``cancelled: <reason>``.

Borrowed jobs: a task about to deliver messages that may start a job (the store service
answering a batch of replies) can take the first such job and run it itself
(:meth:`NodeRuntime.borrow_job`, then :meth:`NodeRuntime.run_borrowed`), leaving its own loop to
a successor task it starts: the job then starts without waiting for a scheduler pass, which is
what a fast-lane job's submit-to-start is made of. A borrowed job runs under a cancel scope the
runtime cancels when it stops or crashes, as it cancels the jobs in its own tasks.

Executors: ``set_executor(name, executor)`` hands actor ``name``'s ``ExecuteJob`` and
``CancelJob`` effects to an :class:`Executor` instead (the pull-worker registry,
:mod:`transport.pull_workers`, queues them for external processes). The executor is called in
the actor's task, right after the handler that asked, so it must not block; it answers later
with :meth:`NodeRuntime.job_done`, which sends the actor the same ``JobDone`` the built-in path
sends. An actor without an executor pays one empty-dict check per job.

Full mailboxes: delivery never blocks. A message for a full mailbox (from the transport, a
timer, a job or a local actor) is dropped, counted in ``stats`` and reported with a one-line
``runtime.mailbox_full`` warning (at most one per actor per second). Blocking instead would
stall a transport reader for every actor behind it, and two actors sending to each other could
deadlock; actors already tolerate message loss, as the simulator shows them. Timers are the
exception: a timer task waits for room, since losing a periodic tick would stop the actor.

Services: ``add_service(name)`` routes every message for actor ``name`` (local or remote) into
a bounded trio channel of ``(sender, message)`` items instead of an actor's mailbox, for code
that must await real I/O while it handles a message, such as the job store hosting a database
(:mod:`transport.store_service`). A full service channel drops and counts like a full mailbox.
The service answers with ``tell(..., sender=ActorRef(node, name))``; its channel is closed when
the runtime stops, so its ``async for`` ends.

Errors: an exception in a handler is reported as one ``runtime.handler_error`` line, the
effects of that call are discarded, and the actor keeps running with the next message.
``ctx.now`` is ``trio.current_time()``, ``ctx.wall`` is ``time.time()``, ``ctx.random`` is a
``random.Random`` seeded per actor from ``os.urandom`` (or from ``seed``, node and name).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, cast

import trio

from actors import (
    Actor,
    ActorRef,
    CancelJob,
    CancelTimer,
    Context,
    Effect,
    Emit,
    ExecuteJob,
    JobDone,
    NodeBlueprint,
    Persist,
    Rng,
    Send,
    SetTimer,
    Spawn,
    Stop,
    Sync,
)

from .base import Transport
from .codec import CodecError
from .events import EventLog
from .store import ActorStore, NodeStore, StoreError

Processor = Callable[[Any], Awaitable[Any]]
"""A job processor: ``async def process(payload) -> result``."""

JOBS_SENDER = "$jobs"
"""The actor name ``JobDone`` messages come from (``ctx.sender.name``)."""

# Mailbox item: (sender, message, timer key or None, timer generation).
_Item = tuple[ActorRef | None, Any, str | None, int]

BURST = 64
"""Messages an actor handles from its mailbox before it lets other tasks run."""

HANDOFF_DEPTH = 3
"""Direct hand-offs (see the module docstring) one delivery may nest before messages are queued."""


@dataclass(frozen=True, slots=True)
class _Resume:
    """Mailbox item: effects of a handed-off message that the actor's task must await (a Stop)."""

    effects: list[Effect]


ServiceItem = tuple[ActorRef | None, Any]
"""What a service receives (see :meth:`NodeRuntime.add_service`): the sender and the message."""


class Executor(Protocol):
    """Runs one actor's jobs instead of the registered processors (see :meth:`NodeRuntime.set_executor`).

    Both methods are called in the actor's task and must return at once; an exception is
    reported as ``runtime.executor_error`` (a failed ``execute`` answers ``JobDone`` with it).
    """

    def execute(self, job: ExecuteJob) -> None:
        """Start ``job``; answer later with :meth:`NodeRuntime.job_done` (``job.job_id``)."""

    def cancel(self, job_id: str, reason: str) -> None:
        """Cancel job ``job_id`` if it is still running (answer ``JobDone`` ``cancelled: <reason>``)."""


@dataclass(slots=True)
class RuntimeStats:
    """Counters of one runtime."""

    delivered: int = 0
    dropped_mailbox_full: int = 0
    dropped_no_actor: int = 0
    dropped_not_encodable: int = 0
    handler_errors: int = 0
    jobs_run: int = 0
    per_actor_dropped: dict[str, int] = field(default_factory=dict)
    sent_by_type: dict[str, int] = field(default_factory=dict)
    """Messages handed to the transport for other nodes, by message class name."""
    received_by_type: dict[str, int] = field(default_factory=dict)
    """Messages that arrived from other nodes, by message class name."""


@dataclass(eq=False, slots=True)
class _Cell:
    name: str
    actor: Actor
    ctx: Context
    store: ActorStore
    inbox: trio.MemorySendChannel[_Item]
    outbox: trio.MemoryReceiveChannel[_Item]
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    timers: dict[str, tuple[int, trio.CancelScope]] = field(default_factory=dict)
    timer_gen: int = 0
    last_drop_report: float = -1e9
    started: trio.Event = field(default_factory=trio.Event)
    # Direct hand-off: items in the mailbox or handed to the waiting task and not yet taken,
    # and whether the actor is handling something (True until its task first waits).
    pending: int = 0
    busy: bool = True
    # Group commit: Sync effects requested so far, and how many are durable; sends that
    # follow a not-yet-durable Sync wait in ``held`` with the count they need.
    syncs_requested: int = 0
    syncs_durable: int = 0
    syncs_settled: int = 0
    held: list[tuple[int, ActorRef, Any]] = field(default_factory=list)
    sync_wanted: trio.Event = field(default_factory=trio.Event)
    sync_done: trio.Event = field(default_factory=trio.Event)


@dataclass(eq=False, slots=True)
class Borrowed:
    """What :meth:`NodeRuntime.borrow_job` took: the job the caller must run, if any."""

    job: ExecuteJob | None = None


Admit = Callable[[ActorRef | None, Any], Any]
"""A service's hook on each message as it is delivered: returns what to queue in its place."""


@dataclass(eq=False, slots=True)
class _Service:
    inbox: trio.MemorySendChannel[ServiceItem]
    capacity: int
    admit: Admit | None = None
    last_drop_report: float = -1e9


class NodeRuntime:
    """Runs one node's actors in real time over a :class:`~transport.base.Transport`.

    Args:
        node_id: this node's id (actors see it as ``ctx.node_id``).
        blueprint: builds the node's actors by name (see :data:`actors.NodeBlueprint`).
        transport: carries messages to and from other nodes.
        data_dir: where durable state lives (None: memory only).
        processors: job type -> ``async def`` processor, for ``ExecuteJob``.
        events: where emitted events and diagnostics go (default: in memory only).
        mailbox_size: capacity of each actor's mailbox.
        seed: seed for every actor's ``ctx.random`` (None: ``os.urandom``).
    """

    def __init__(
        self,
        node_id: str,
        blueprint: NodeBlueprint,
        transport: Transport,
        *,
        data_dir: Path | str | None = None,
        processors: Mapping[str, Processor] | None = None,
        events: EventLog | None = None,
        mailbox_size: int = 1000,
        seed: int | str | None = None,
    ):
        if mailbox_size < 1:
            raise ValueError(f"mailbox_size must be >= 1, got {mailbox_size}")
        self.node_id = node_id
        self.blueprint = blueprint
        self.transport = transport
        self.processors: dict[str, Processor] = dict(processors or {})
        self.events = events if events is not None else EventLog()
        self.mailbox_size = mailbox_size
        self.seed = seed
        self.stats = RuntimeStats()
        self.store = NodeStore(data_dir, node_id)
        self._cells: dict[str, _Cell] = {}
        self._services: dict[str, _Service] = {}
        # (actor, job id) -> (its cancel scope, cancellation reasons) while the job runs
        self._jobs: dict[tuple[str, str], tuple[trio.CancelScope, list[str]]] = {}
        self._executors: dict[str, Executor] = {}
        self._depth = 0  # direct hand-offs under way in the current call chain
        self._borrow: Borrowed | None = None  # the taker of the next ExecuteJob, if any
        self._borrowed_scopes: set[trio.CancelScope] = set()
        self._nursery: trio.Nursery | None = None
        self._stop_requested = trio.Event()
        self._graceful = True
        self.running = False

    # ---------------------------------------------------------------- lifecycle

    async def serve(self, *, task_status: trio.TaskStatus[NodeRuntime] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the node until :meth:`stop` or :meth:`crash` (or cancellation).

        Use ``runtime = await nursery.start(NodeRuntime(...).serve)``: it returns once the
        transport is up and every blueprint actor is spawned.

        Raises:
            OSError: the transport could not start (for example a port in use).
        """
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self.transport.start(nursery, self._deliver_remote)
            self.running = True
            for name, actor in self.blueprint(self.node_id).items():
                self.spawn(name, actor)
            self._diag("runtime.started", actors=",".join(sorted(self._cells)))
            task_status.started(self)
            await self._stop_requested.wait()
            if self._graceful:
                with trio.move_on_after(5):
                    for name in list(self._cells):
                        await self._stop_actor(name)
            await self.transport.aclose()
            nursery.cancel_scope.cancel()
            self._cancel_borrowed()
        for name in list(self._services):
            self.remove_service(name)
        self.running = False
        self._nursery = None

    def stop(self) -> None:
        """Stop gracefully: every actor's ``on_stop`` runs, then tasks and transport close."""
        self._stop_requested.set()

    def crash(self) -> None:
        """Stop at once as a crash would: no ``on_stop``, unsynced writes are lost."""
        self._graceful = False
        self._stop_requested.set()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        self._cancel_borrowed()

    @contextlib.contextmanager
    def borrow_job(self) -> Iterator[Borrowed]:
        """Within this block, take the first ``ExecuteJob`` (of the built-in processors) that
        the caller's deliveries produce instead of starting it in a task of its own.

        The caller then owes it a :meth:`run_borrowed` (``borrowed.job``); if the block ends with
        an exception, the job is started as usual. Blocks do not nest: an inner one takes nothing.
        """
        borrowed = Borrowed()
        if self._borrow is not None:
            yield borrowed
            return
        self._borrow = borrowed
        try:
            yield borrowed
        except BaseException:
            if borrowed.job is not None:
                self._start_job(borrowed.job)
                borrowed.job = None
            raise
        finally:
            self._borrow = None

    async def run_borrowed(self, job: ExecuteJob) -> None:
        """Run a job taken with :meth:`borrow_job` in the calling task, as its own task would
        (timeout, cancellation, ``JobDone``), cancelled when the runtime stops or crashes."""
        if self.running:
            await self._run_job(job, borrowed=True)

    def _cancel_borrowed(self) -> None:
        """Cancel every borrowed job as a crash would: no ``JobDone`` follows."""
        for scope in list(self._borrowed_scopes):
            self._borrowed_scopes.discard(scope)  # the mark _run_job reads
            scope.cancel()

    # ---------------------------------------------------------------- actors

    def spawn(self, name: str, actor: Actor) -> ActorRef:
        """Start ``actor`` under ``name`` on this node (the name must be free).

        Raises:
            RuntimeError: the runtime is not serving.
            ValueError: an actor with that name is already running.
        """
        if self._nursery is None:
            raise RuntimeError("NodeRuntime.spawn: the runtime is not serving; call serve() first")
        if name in self._cells:
            raise ValueError(f"actor {name!r} already runs on node {self.node_id}; stop it first")
        if name in self._services:
            raise ValueError(f"{name!r} is a service on node {self.node_id}; pick another actor name")
        ref = ActorRef(self.node_id, name)
        inbox, outbox = trio.open_memory_channel[_Item](self.mailbox_size)
        cell = _Cell(name, actor, Context(ref, self._rng(name)), self.store.for_actor(name), inbox, outbox)
        self._cells[name] = cell
        self._nursery.start_soon(self._run_actor, cell)
        return ref

    def add_service(
        self, name: str, capacity: int = 10_000, *, admit: Admit | None = None
    ) -> trio.MemoryReceiveChannel[ServiceItem]:
        """Route messages for actor ``name`` on this node to the channel returned.

        Each item is ``(sender, message)``; the service answers with :meth:`tell`. A message
        for a full channel is dropped and counted as for a full mailbox. ``admit(sender,
        message)``, if given, is called as each message is delivered (in the delivering task; it
        must not block or raise) and what it returns is queued instead of the message.

        Raises:
            ValueError: ``capacity`` is below 1, or an actor or service already has ``name``.
        """
        if capacity < 1:
            raise ValueError(f"service capacity must be >= 1, got {capacity}")
        if name in self._cells or name in self._services:
            raise ValueError(f"{name!r} is already taken on node {self.node_id}; remove it first")
        inbox, outbox = trio.open_memory_channel[ServiceItem](capacity)
        self._services[name] = _Service(inbox, capacity, admit)
        return outbox

    def remove_service(self, name: str) -> None:
        """Stop routing to service ``name`` and close its channel (no-op if there is none)."""
        service = self._services.pop(name, None)
        if service is not None:
            service.inbox.close()

    def actor(self, name: str) -> Actor | None:
        """The running actor object called ``name`` (for tests and tools), or None."""
        cell = self._cells.get(name)
        return cell.actor if cell is not None else None

    def actor_names(self) -> list[str]:
        """Names of the running actors."""
        return sorted(self._cells)

    def tell(self, dst: ActorRef, msg: Any, sender: ActorRef | None = None) -> bool:
        """Send ``msg`` to ``dst`` (local or remote) from outside any actor.

        Returns:
            True if it was queued, False if it was dropped (full mailbox, no such actor).
        """
        return self._send(sender, dst, msg)

    def set_executor(self, name: str, executor: Executor | None) -> None:
        """Hand actor ``name``'s ``ExecuteJob``/``CancelJob`` effects to ``executor`` (None: back to
        the registered processors). The actor need not run yet; the setting outlives it."""
        if executor is None:
            self._executors.pop(name, None)
        else:
            self._executors[name] = executor

    def job_done(
        self,
        name: str,
        job_id: str,
        ok: bool,
        *,
        result: Any = None,
        error: str = "",
        duration: float = 0.0,
    ) -> bool:
        """Send actor ``name`` on this node the ``JobDone`` of its job ``job_id`` (for executors).

        Returns:
            True if it was queued, False if dropped (no such actor, or its mailbox is full).
        """
        done = JobDone(job_id, ok, result, "" if ok else (error or "failed"), round(duration, 6))
        return self._send(ActorRef(self.node_id, JOBS_SENDER), ActorRef(self.node_id, name), done)

    async def stop_actor(self, name: str) -> None:
        """Stop actor ``name`` gracefully (``on_stop`` runs); its durable state is kept."""
        await self._stop_actor(name)

    def _rng(self, name: str) -> Rng:
        if self.seed is None:
            rng = random.Random(int.from_bytes(os.urandom(16), "big"))
        else:
            rng = random.Random(f"{self.seed}/{self.node_id}/{name}")
        # typeshed gives Random.expovariate no default on 3.11; the runtime object does have one.
        return cast(Rng, rng)

    async def _run_actor(self, cell: _Cell) -> None:
        with cell.scope:
            try:
                durable = await cell.store.load()
            except StoreError as e:
                self._diag("runtime.store_error", level="error", actor=cell.name, error=str(e))
                durable = {}
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._flusher, cell)
                effects = self._call(
                    cell, None, "on_start", cell.actor.on_start, cell.ctx, MappingProxyType(durable)
                )
                cell.started.set()
                await self._execute(cell, effects)
                outbox = cell.outbox
                burst = 0
                while True:
                    # Take what is already queued without yielding between messages (up to
                    # BURST): the sends of a burst then leave in one batch per peer, one syscall.
                    try:
                        sender, msg, key, gen = outbox.receive_nowait()
                        burst += 1
                        if burst >= BURST:
                            burst = 0
                            await trio.lowlevel.checkpoint()
                    except trio.WouldBlock:
                        burst = 0
                        cell.busy = False  # idle: a message may now be handed off to it directly
                        try:
                            sender, msg, key, gen = await outbox.receive()
                        except trio.EndOfChannel:
                            break
                        cell.busy = True
                    except trio.EndOfChannel:
                        break
                    cell.pending -= 1
                    if type(msg) is _Resume:
                        await self._execute(cell, msg.effects)
                        continue
                    if key is not None:
                        current = cell.timers.get(key)
                        if current is None or current[0] != gen:
                            continue  # cancelled or replaced after it fired
                        del cell.timers[key]
                    await self._execute(cell, self._receive(cell, sender, msg))
                nursery.cancel_scope.cancel()

    async def _flusher(self, cell: _Cell) -> None:
        """Group commit: one fsync covers every write persisted since the last one began.

        The actor keeps handling messages while a sync is in its thread; its later Persists
        join the next sync, and every Send that follows a Sync waits in ``cell.held`` until
        that Sync is durable, so "persisted before sent" holds as if each Sync had blocked.
        """
        while True:
            await cell.sync_wanted.wait()
            cell.sync_wanted = trio.Event()
            target = cell.syncs_requested
            try:
                await cell.store.flush()
            except StoreError as e:
                # Sends that relied on this durability are dropped, as after a crash.
                self._diag("runtime.store_error", level="error", actor=cell.name, error=str(e))
                cell.held = [h for h in cell.held if h[0] > target]
            else:
                cell.syncs_durable = target
                self._release(cell)
            cell.syncs_settled = target
            cell.sync_done.set()
            cell.sync_done = trio.Event()

    def _release(self, cell: _Cell) -> None:
        me = cell.ctx.self_ref
        ready = 0
        for needs, to, msg in cell.held:
            if needs > cell.syncs_durable:
                break
            self._send(me, to, msg)
            ready += 1
        if ready:
            del cell.held[:ready]

    async def _wait_durable(self, cell: _Cell) -> None:
        """Wait until every Sync requested so far is durable (or has failed)."""
        while cell.syncs_settled < cell.syncs_requested:
            await cell.sync_done.wait()

    def _receive(self, cell: _Cell, sender: ActorRef | None, msg: Any) -> list[Effect]:
        """Deliver ``msg`` to the actor of ``cell``; the effects of its ``receive``."""
        self.stats.delivered += 1
        return self._call(cell, sender, type(msg).__name__, cell.actor.receive, cell.ctx, msg)

    def _call(
        self, cell: _Cell, sender: ActorRef | None, what: str, fn: Callable[..., None], *args: Any
    ) -> list[Effect]:
        ctx = cell.ctx
        ctx.now = trio.current_time()
        ctx.wall = time.time()
        ctx.sender = sender
        try:
            fn(*args)
        except Exception as e:
            ctx.take_effects()
            self.stats.handler_errors += 1
            self._diag(
                "runtime.handler_error",
                level="error",
                actor=cell.name,
                handling=what,
                error=f"{type(e).__name__}: {e}",
            )
            return []
        return ctx.take_effects()

    async def _stop_actor(self, name: str) -> None:
        cell = self._cells.pop(name, None)
        if cell is None:
            return
        for _gen, scope in cell.timers.values():
            scope.cancel()
        cell.timers.clear()
        effects = self._call(cell, None, "on_stop", cell.actor.on_stop, cell.ctx)
        allowed: list[Effect] = [e for e in effects if isinstance(e, (Emit, Send, Persist, Sync))]
        try:
            await self._execute(cell, allowed)
            with trio.move_on_after(10):
                await self._wait_durable(cell)
        finally:
            cell.inbox.close()
            cell.scope.cancel()

    # ---------------------------------------------------------------- effects

    async def _execute(self, cell: _Cell, effects: list[Effect]) -> None:
        for eff in effects:
            if type(eff) is Stop:
                assert isinstance(eff, Stop)
                await self._stop_actor(eff.name)
            else:
                self._apply(cell, eff)

    def _hand_off(self, cell: _Cell, item: _Item) -> None:
        """Handle ``item`` for the idle actor of ``cell`` now, in the caller's task."""
        cell.busy = True
        self._depth += 1
        try:
            effects = self._receive(cell, item[0], item[1])
            for i, eff in enumerate(effects):
                if type(eff) is Stop:  # awaited by the actor's task, before its next message
                    cell.pending += 1
                    cell.inbox.send_nowait((None, _Resume(effects[i:]), None, 0))
                    return
                self._apply(cell, eff)
        except Exception as e:  # a bug in an effect: the delivering task must go on
            self._diag(
                "runtime.handoff_error", level="error", actor=cell.name, error=f"{type(e).__name__}: {e}"
            )
        finally:
            self._depth -= 1
        cell.busy = cell.pending > 0

    def _apply(self, cell: _Cell, eff: Effect) -> None:
        """Carry out one effect other than Stop (which must be awaited)."""
        me = cell.ctx.self_ref
        t = type(eff)
        if t is Send:
            assert isinstance(eff, Send)
            if cell.syncs_durable < cell.syncs_requested:
                cell.held.append((cell.syncs_requested, eff.to, eff.msg))
            else:
                self._send(me, eff.to, eff.msg)
        elif t is SetTimer:
            assert isinstance(eff, SetTimer)
            self._set_timer(cell, eff.key, eff.delay, eff.msg)
        elif t is CancelTimer:
            assert isinstance(eff, CancelTimer)
            old = cell.timers.pop(eff.key, None)
            if old is not None:
                old[1].cancel()
        elif t is Persist:
            assert isinstance(eff, Persist)
            cell.store.persist(eff.key, eff.value)
        elif t is Sync:
            if cell.store.seal():
                cell.syncs_requested += 1
                cell.sync_wanted.set()
        elif t is Emit:
            assert isinstance(eff, Emit)
            self.events.emit(self.node_id, cell.name, eff.kind, eff.fields)
        elif t is Spawn:
            assert isinstance(eff, Spawn)
            try:
                self.spawn(eff.name, eff.actor)
            except ValueError as e:
                self._diag("runtime.spawn_refused", level="warning", actor=cell.name, error=str(e))
        elif t is ExecuteJob:
            assert isinstance(eff, ExecuteJob)
            if self._executors and cell.name in self._executors:
                self._hand_over(cell.name, eff)
            elif self._borrow is not None and self._borrow.job is None:
                self._borrow.job = eff
            else:
                self._start_job(eff)
        elif t is CancelJob:
            assert isinstance(eff, CancelJob)
            running = self._jobs.get((cell.name, eff.job_id))
            if running is not None:
                running[1].append(eff.reason)
                running[0].cancel()
            elif self._executors and cell.name in self._executors:
                try:
                    self._executors[cell.name].cancel(eff.job_id, eff.reason)
                except Exception as e:
                    self._diag("runtime.executor_error", level="error", actor=cell.name, error=repr(e))
        else:
            self._diag("runtime.unknown_effect", level="error", actor=cell.name, effect=repr(eff))

    def _send(self, src: ActorRef | None, dst: ActorRef, msg: Any) -> bool:
        if dst.node == self.node_id:
            return self._enqueue(dst.name, (src, msg, None, 0), remote=False)
        if src is None:
            src = ActorRef(self.node_id, "$external")
        by_type = self.stats.sent_by_type
        kind = type(msg).__name__
        by_type[kind] = by_type.get(kind, 0) + 1
        try:
            return self.transport.send(src, dst, msg)
        except CodecError as e:
            self.stats.dropped_not_encodable += 1
            self._diag("runtime.not_encodable", level="error", actor=src.name, to=str(dst), error=str(e))
            return False

    def _deliver_remote(self, src: ActorRef, dst: ActorRef, msg: Any) -> None:
        if dst.node != self.node_id:
            self.stats.dropped_no_actor += 1
            self._diag("runtime.misrouted", level="warning", to=str(dst), source=str(src))
            return
        by_type = self.stats.received_by_type
        kind = type(msg).__name__
        by_type[kind] = by_type.get(kind, 0) + 1
        self._enqueue(dst.name, (src, msg, None, 0), remote=True)

    def _enqueue(self, name: str, item: _Item, *, remote: bool) -> bool:
        target: _Cell | _Service | None = self._cells.get(name) or self._services.get(name)
        if target is None:
            self.stats.dropped_no_actor += 1
            return False
        try:
            if isinstance(target, _Cell):
                if (
                    not target.busy
                    and target.pending == 0
                    and self._depth < HANDOFF_DEPTH
                    and item[2] is None
                ):
                    self._hand_off(target, item)
                    return True
                target.inbox.send_nowait(item)
                target.pending += 1
            elif target.admit is None:
                target.inbox.send_nowait((item[0], item[1]))
            else:
                target.inbox.send_nowait((item[0], target.admit(item[0], item[1])))
            return True
        except trio.WouldBlock:
            self.stats.dropped_mailbox_full += 1
            n = self.stats.per_actor_dropped.get(name, 0) + 1
            self.stats.per_actor_dropped[name] = n
            now = trio.current_time()
            if now - target.last_drop_report >= 1.0:
                target.last_drop_report = now
                self._diag(
                    "runtime.mailbox_full",
                    level="warning",
                    actor=name,
                    dropped_total=n,
                    capacity=target.capacity if isinstance(target, _Service) else self.mailbox_size,
                    remote=remote,
                    message=type(item[1]).__name__,
                )
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self.stats.dropped_no_actor += 1
            return False

    def _set_timer(self, cell: _Cell, key: str, delay: float, msg: Any) -> None:
        old = cell.timers.pop(key, None)
        if old is not None:
            old[1].cancel()
        cell.timer_gen += 1
        scope = trio.CancelScope()
        cell.timers[key] = (cell.timer_gen, scope)
        assert self._nursery is not None
        self._nursery.start_soon(self._timer, cell, key, cell.timer_gen, scope, delay, msg)

    async def _timer(
        self, cell: _Cell, key: str, gen: int, scope: trio.CancelScope, delay: float, msg: Any
    ) -> None:
        with scope:
            await trio.sleep(max(0.0, delay))
            with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
                cell.pending += 1
                try:
                    await cell.inbox.send((cell.ctx.self_ref, msg, key, gen))
                except BaseException:
                    cell.pending -= 1
                    raise

    def _start_job(self, job: ExecuteJob) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._run_job, job)

    def _hand_over(self, name: str, job: ExecuteJob) -> None:
        self.stats.jobs_run += 1
        try:
            self._executors[name].execute(job)
        except Exception as e:
            error = f"executor failed: {type(e).__name__}: {e}"
            self._diag("runtime.executor_error", level="error", actor=name, error=error)
            self.job_done(name, job.job_id, False, error=error)

    async def _run_job(self, job: ExecuteJob, borrowed: bool = False) -> None:
        """Run ``job``'s processor under its timeout and send its ``JobDone``. A borrowed job's
        scope is also the one :meth:`_cancel_borrowed` cancels (one scope on the job's path,
        not two): a job so cancelled ends without a ``JobDone``, as in a crash."""
        self.stats.jobs_run += 1
        started = trio.current_time()
        proc = self.processors.get(job.job_type)
        ok, result, error = False, None, ""
        if proc is None:
            known = ", ".join(sorted(self.processors)) or "none"
            error = f"unknown job type {job.job_type!r} (registered: {known}); register a processor for it"
        else:
            key = (job.reply_to.name, job.job_id)
            reasons: list[str] = []
            # One scope for both ends: its deadline is the timeout, and CancelJob cancels it
            # after noting a reason (so a reason tells a cancel from a timeout).
            with trio.CancelScope(deadline=started + job.timeout) as scope:
                self._jobs[key] = (scope, reasons)
                if borrowed:
                    self._borrowed_scopes.add(scope)
                try:
                    result = await proc(job.payload)
                    ok = True
                except Exception as e:
                    error = f"{type(e).__name__}: {e}"
                finally:
                    self._jobs.pop(key, None)
                    stopped = borrowed and scope not in self._borrowed_scopes
                    self._borrowed_scopes.discard(scope)
            if stopped:  # cancelled by a stop or a crash of the runtime
                return
            if scope.cancelled_caught:
                ok, result = False, None
                error = f"cancelled: {reasons[0]}" if reasons else f"timed out after {job.timeout} s"
        done = JobDone(job.job_id, ok, result, error, round(trio.current_time() - started, 6))
        self._send(ActorRef(self.node_id, JOBS_SENDER), job.reply_to, done)

    def _diag(self, kind: str, actor: str = "", **fields: Any) -> None:
        self.events.emit(self.node_id, actor, kind, fields)
