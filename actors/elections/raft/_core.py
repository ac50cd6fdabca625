"""Raft (Ongaro & Ousterhout 2014; Ongaro's thesis 2014) as a pure actor.

How it works
------------
The actor is a state machine in the style of etcd-io/raft: input comes only through
:meth:`Raft.receive` (peer RPCs, client requests, and the ``Tick`` timer), output only through
``ctx`` effects. A role is a swapped function: ``become_follower`` sets
``self._step = self._step_follower`` and ``self._tick = self._tick_election``; the leader's are
``_step_leader`` / ``_tick_heartbeat``. Pre-candidates and candidates share
``_step_candidate``.

Every peer message first goes through :meth:`Raft._step_term` (Raft §5.1: a higher term turns
anyone into a follower; a lower one is stale), then to the role's step function.

- Elections (§5.2). A follower that hears no leader for a random timeout in
  ``[election_timeout, 2 * election_timeout)`` (drawn from ``ctx.random``) first asks for
  pre-votes at ``term + 1`` without changing any state (thesis §9.6); with a majority it
  becomes a candidate, bumps its term and votes for itself. A vote is granted to at most one
  candidate per term, and only to one whose log is at least as up to date (§5.4.1).
- Leases (thesis §4.2.3, §9.6). With check-quorum, a node that heard from a leader within
  ``election_timeout`` ignores (pre-)vote requests, unless they come from a leadership
  transfer; and a leader that has not heard from a majority within ``election_timeout``
  steps down.
- Replication (§5.3). The leader keeps per-follower progress (``next``/``match``) in probe or
  replicate state (pipelining), sends AppendEntries after ``(prev_index, prev_term)``; a
  follower truncates a conflicting suffix (never a committed entry) and answers a reject with
  a hint (conflict term and its first index) so the leader skips a whole term per round trip.
- Commitment (§5.4.2). The leader advances ``commit`` to the largest index stored on a
  majority of voters only if that entry is from its current term; entries are applied in
  order to the state machine and clients get their :class:`ProposeResult` after applying.
- Durability (Figure 2). Term, vote and log are persisted and synced *before* any message
  that depends on them is sent: a vote grant, an append response, and the leader's own
  appends before it counts itself. ``on_start`` restores them; commit index and the machine
  are rebuilt from the snapshot and the log.
- Membership (thesis §4.1: one server at a time). A config entry takes effect as soon as it
  is appended; only one may be uncommitted, and only after the leader committed an entry of
  its term. A leader that removed itself steps down once the change commits and hands over
  with ``TimeoutNow``. New nodes start with an empty configuration and only follow.
- Transfer (thesis §3.10). The leader stops taking proposals, catches the target up, and
  sends it ``TimeoutNow``; the target campaigns at once, overriding leases.
- Snapshots (§7). After ``snapshot_threshold`` applied entries the node snapshots the machine
  and drops the log prefix; a follower behind the first index gets ``InstallSnapshot``.

Rules kept (checked by ``sim.checkers_raft``): at most one leader per term; if two logs hold
an entry with the same index and term they are identical up to it; a committed entry is in
the log of every later leader; no two nodes apply different commands at one index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..._actor import Actor
from ..._context import Context
from ..._messages import ActorRef
from .._common import NAME, GetLeader, Leader, LeaderChanged, Leave, Subscribe
from ._config import RaftConfig
from ._log import META, RaftLog
from ._messages import (
    CMD,
    CONFIG,
    NOOP,
    AppendEntries,
    AppendResponse,
    ChangeMembership,
    Entry,
    GetStatus,
    InstallSnapshot,
    MembershipResult,
    Propose,
    ProposeResult,
    RequestVote,
    Status,
    Tick,
    TimeoutNow,
    TransferLeadership,
    TransferResult,
    VoteResponse,
    plain,
)

FOLLOWER, PRE_CANDIDATE, CANDIDATE, LEADER = "follower", "pre-candidate", "candidate", "leader"
PROBE, REPLICATE, SNAPSHOTTING = "probe", "replicate", "snapshot"

_EPSILON = 1e-6  # timers fire on a nanosecond grid: never spin on a deadline a hair away
_PEER_MESSAGES = (RequestVote, VoteResponse, AppendEntries, AppendResponse, InstallSnapshot, TimeoutNow)


def digest(value: Any) -> Any:
    """A short, stable stand-in for a command in events: small scalars as they are, anything
    else a 16-hex-digit BLAKE2b of its canonical form."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str) and len(value) <= 48:
        return value
    return hashlib.blake2b(repr(plain(value)).encode(), digest_size=8).hexdigest()


@dataclass(slots=True)
class Progress:
    """What the leader knows of one follower (thesis §3.5, etcd's Progress)."""

    next: int
    match: int = 0
    state: str = PROBE
    last_ack: float = 0.0
    snapshot_sent_at: float = 0.0


@dataclass(slots=True)
class _Pending:
    """A client waiting for the entry at some index to commit."""

    to: ActorRef
    kind: str
    request: int
    term: int


class Raft(Actor):
    """One Raft node (the ``election`` actor). See the module docstring.

    Args:
        node_id: this node's id.
        members: the bootstrap configuration (voters) used while neither log nor snapshot
            holds one; empty for a node that joins later (it waits to be added).
        config: timing and features.
    """

    _step: Callable[[Context, Any, str], None]
    _tick: Callable[[Context], None]

    def __init__(self, node_id: str, members: tuple[str, ...], config: RaftConfig) -> None:
        self.id = node_id
        self.bootstrap = tuple(sorted(members))
        self.cfg = config
        self.machine = config.machine()

    # -- lifecycle ------------------------------------------------------------------------------

    def on_start(self, ctx: Context, durable: Mapping[str, Any]) -> None:
        meta = durable.get(META) or [0, None]
        self.term: int = int(meta[0])
        self.vote: str | None = meta[1]
        self.log = RaftLog.restore(durable)
        self.voters: tuple[str, ...] = self.log.voters_at(self.log.last_index, self.bootstrap)
        self.commit = self.applied = self.log.snapshot_index
        if self.log.snapshot_voters is not None:
            self.machine.restore(self.log.snapshot_data)
            ctx.emit("raft.restore", index=self.log.snapshot_index, term=self.log.snapshot_term)
        self.role = FOLLOWER
        self.leader: str | None = None
        self.leader_contact = -1e18
        self.election_deadline = 0.0
        self.subscribers: list[ActorRef] = []
        self.pending: dict[int, _Pending] = {}
        self.progress: dict[str, Progress] = {}
        self.votes: dict[str, bool] = {}
        self.leader_since = 0.0
        self.term_start = 0
        self.transferee: str | None = None
        self.transfer_deadline = 0.0
        self.removed = False
        self.become_follower(ctx, self.term, None)
        self._schedule_tick(ctx)

    def receive(self, ctx: Context, msg: Any) -> None:
        t = type(msg)
        if t is Tick:
            self._tick(ctx)
            self._schedule_tick(ctx)
        elif t in _PEER_MESSAGES:
            frm = ctx.sender.node if ctx.sender is not None else ""
            if self._step_term(ctx, msg, frm):
                self._step(ctx, msg, frm)
        elif t is Propose:
            self._on_propose(ctx, msg)
        elif t is ChangeMembership:
            self._on_change(ctx, msg)
        elif t is TransferLeadership:
            self._on_transfer(ctx, msg)
        elif t is GetLeader:
            ctx.reply(Leader(self.leader, self.term, self.id))
        elif t is GetStatus:
            ctx.reply(self.status())
        elif t is Subscribe:
            if ctx.sender is not None and ctx.sender not in self.subscribers:
                self.subscribers.append(ctx.sender)
            ctx.reply(LeaderChanged(self.leader, self.term))
        elif t is Leave:
            if self.role == LEADER:
                self._on_change(ctx, ChangeMembership(remove=self.id))
            elif self.leader is not None:
                ctx.send(ActorRef(self.leader, NAME), ChangeMembership(remove=self.id))

    def status(self) -> Status:
        """This node's current state."""
        return Status(
            self.id,
            self.role,
            self.term,
            self.leader,
            self.commit,
            self.applied,
            self.log.first_index,
            self.log.last_index,
            self.voters,
        )

    # -- roles ----------------------------------------------------------------------------------

    def become_follower(self, ctx: Context, term: int, leader: str | None) -> None:
        """Follow ``leader`` (None: unknown) in ``term``."""
        was_leader = self.role == LEADER
        self._set_term(ctx, term)
        self.role = FOLLOWER
        self._step = self._step_follower
        self._tick = self._tick_election
        self._reset_election_timer(ctx)
        self._set_leader(ctx, leader)
        if was_leader:
            self._abandon_leadership(ctx)

    def become_pre_candidate(self, ctx: Context) -> None:
        self.role = PRE_CANDIDATE
        self._step = self._step_candidate
        self._tick = self._tick_election
        self.votes = {self.id: True}
        self._reset_election_timer(ctx)
        self._set_leader(ctx, None)

    def become_candidate(self, ctx: Context) -> None:
        self._set_term(ctx, self.term + 1, vote=self.id)
        self.role = CANDIDATE
        self._step = self._step_candidate
        self._tick = self._tick_election
        self.votes = {self.id: True}
        self._reset_election_timer(ctx)
        self._set_leader(ctx, None)
        ctx.emit("raft.campaign", term=self.term)

    def become_leader(self, ctx: Context) -> None:
        self.role = LEADER
        self._step = self._step_leader
        self._tick = self._tick_heartbeat
        self.leader_since = ctx.now
        self.transferee = None
        last = self.log.last_index
        ctx.emit("leader.elected", epoch=self.term, last_index=last, last_term=self.log.last_term)
        self.progress = {p: Progress(next=last + 1, last_ack=ctx.now) for p in self.voters if p != self.id}
        self._set_leader(ctx, self.id)
        self.term_start = last + 1
        self._append_as_leader(ctx, NOOP, None)
        self._broadcast_append(ctx)
        self._maybe_commit(ctx)

    def _abandon_leadership(self, ctx: Context) -> None:
        self.progress = {}
        self.transferee = None
        for index in sorted(self.pending):
            self._reply_failure(ctx, self.pending[index], index, "leadership lost")
        self.pending = {}

    def _set_term(self, ctx: Context, term: int, vote: str | None = None) -> None:
        if term == self.term and vote is None:
            return
        if term != self.term:
            ctx.emit("raft.term", term=term)
        self.term, self.vote = term, vote
        ctx.persist(META, [self.term, self.vote])
        ctx.sync()

    def _set_leader(self, ctx: Context, leader: str | None) -> None:
        if leader == self.leader:
            return
        self.leader = leader
        ctx.emit("leader.changed", leader=leader, epoch=self.term)
        note = LeaderChanged(leader, self.term)
        for ref in self.subscribers:
            ctx.send(ref, note)

    def _reset_election_timer(self, ctx: Context) -> None:
        timeout = self.cfg.election_timeout
        spread = timeout if self.cfg.election_randomness is None else self.cfg.election_randomness
        self.election_deadline = ctx.now + ctx.random.uniform(timeout, timeout + spread)

    def _schedule_tick(self, ctx: Context) -> None:
        delay = self.cfg.interval
        if self.role != LEADER:
            delay = max(_EPSILON, min(delay, self.election_deadline - ctx.now))
        ctx.set_timer("tick", delay, Tick())

    @property
    def quorum(self) -> int:
        return len(self.voters) // 2 + 1

    def promotable(self) -> bool:
        """Only a voter of its own configuration may campaign."""
        return self.id in self.voters

    def _in_lease(self, ctx: Context) -> bool:
        if not self.cfg.check_quorum or self.leader is None:
            return False
        return self.leader == self.id or ctx.now - self.leader_contact < self.cfg.election_timeout

    # -- ticks ----------------------------------------------------------------------------------

    def _tick_election(self, ctx: Context) -> None:
        if ctx.now < self.election_deadline - _EPSILON:
            return
        if not self.promotable():
            self._reset_election_timer(ctx)
            return
        self.campaign(ctx, pre_vote=self.cfg.pre_vote)

    def _tick_heartbeat(self, ctx: Context) -> None:
        now = ctx.now
        cfg = self.cfg
        if cfg.check_quorum and now - self.leader_since >= cfg.election_timeout:
            active = sum(
                1
                for v in self.voters
                if v == self.id
                or (v in self.progress and now - self.progress[v].last_ack < cfg.election_timeout)
            )
            if active < self.quorum:
                ctx.emit("raft.stepdown", term=self.term, reason="check-quorum", active=active)
                self.become_follower(ctx, self.term, None)
                return
        if self.transferee is not None and now >= self.transfer_deadline:
            ctx.emit("raft.transfer.aborted", target=self.transferee)
            self.transferee = None
        for peer, pr in self.progress.items():
            if pr.state == REPLICATE and pr.match < self.log.last_index:
                pr.next = pr.match + 1  # resend what may have been lost
            if pr.state == SNAPSHOTTING and now - pr.snapshot_sent_at < cfg.election_timeout:
                continue
            self._send_append(ctx, peer, pr)

    # -- elections (§5.2, thesis §9.6) ----------------------------------------------------------

    def campaign(self, ctx: Context, pre_vote: bool, transfer: bool = False) -> None:
        """Start a (pre-)election."""
        if not self.promotable():
            return
        if pre_vote:
            self.become_pre_candidate(ctx)
            term = self.term + 1
        else:
            self.become_candidate(ctx)
            term = self.term
        if self._tally(ctx):
            return
        req = RequestVote(term, self.log.last_index, self.log.last_term, pre_vote, transfer)
        for v in self.voters:
            if v != self.id:
                ctx.send(ActorRef(v, NAME), req)

    def _tally(self, ctx: Context) -> bool:
        """Act on the votes so far; True if the round is over."""
        granted = sum(1 for v, ok in self.votes.items() if ok and v in self.voters)
        rejected = sum(1 for v, ok in self.votes.items() if not ok and v in self.voters)
        if granted >= self.quorum:
            if self.role == PRE_CANDIDATE:
                self.campaign(ctx, pre_vote=False)
            else:
                self.become_leader(ctx)
            return True
        if rejected >= self.quorum:
            self.become_follower(ctx, self.term, None)
            return True
        return False

    def _on_request_vote(self, ctx: Context, m: RequestVote, frm: str) -> None:
        log = self.log
        can_vote = (
            self.vote == frm
            or (self.vote is None and self.leader is None)
            or (m.pre_vote and m.term > self.term)
        )
        up_to_date = (m.last_term, m.last_index) >= (log.last_term, log.last_index)
        if can_vote and up_to_date:
            if not m.pre_vote:
                self._set_term(ctx, self.term, vote=frm)  # durable before the grant leaves
                self._reset_election_timer(ctx)
            ctx.reply(VoteResponse(m.term, True, m.pre_vote))
        else:
            ctx.reply(VoteResponse(self.term, False, m.pre_vote))

    # -- the step functions ---------------------------------------------------------------------

    def _step_term(self, ctx: Context, m: Any, frm: str) -> bool:
        """Raft §5.1 term rules; False if the message is fully handled (or dropped) here."""
        t = type(m)
        if m.term > self.term:
            if t is RequestVote:
                if not m.transfer and self._in_lease(ctx):
                    return False  # a leader is alive: do not let a rejoining node disrupt it
                if m.pre_vote:
                    self._on_request_vote(ctx, m, frm)
                    return False
            if t is VoteResponse and m.pre_vote and m.granted:
                return True
            leader = frm if t in (AppendEntries, InstallSnapshot) else None
            self.become_follower(ctx, m.term, leader)
        elif m.term < self.term:
            if t in (AppendEntries, InstallSnapshot) and (self.cfg.check_quorum or self.cfg.pre_vote):
                ctx.reply(AppendResponse(self.term, False))  # tells a stale leader to step down
            elif t is RequestVote and m.pre_vote:
                ctx.reply(VoteResponse(self.term, False, True))
            return False
        if t is RequestVote:
            self._on_request_vote(ctx, m, frm)
            return False
        return True

    def _step_follower(self, ctx: Context, m: Any, frm: str) -> None:
        t = type(m)
        if t is AppendEntries:
            self._heard_from_leader(ctx, frm)
            self._on_append(ctx, m)
        elif t is InstallSnapshot:
            self._heard_from_leader(ctx, frm)
            self._on_snapshot(ctx, m)
        elif t is TimeoutNow and self.promotable():
            ctx.emit("raft.transfer.timeout_now", term=self.term)
            self.campaign(ctx, pre_vote=False, transfer=True)

    def _step_candidate(self, ctx: Context, m: Any, frm: str) -> None:
        t = type(m)
        if t in (AppendEntries, InstallSnapshot):
            self.become_follower(ctx, m.term, frm)
            self._step_follower(ctx, m, frm)
        elif t is VoteResponse and m.pre_vote == (self.role == PRE_CANDIDATE):
            self.votes[frm] = m.granted
            self._tally(ctx)

    def _step_leader(self, ctx: Context, m: Any, frm: str) -> None:
        if type(m) is not AppendResponse:
            return
        pr = self.progress.get(frm)
        if pr is None:
            return
        pr.last_ack = ctx.now
        if m.success:
            self._on_append_success(ctx, frm, pr, m)
        else:
            self._on_append_reject(ctx, frm, pr, m)

    def _heard_from_leader(self, ctx: Context, leader: str) -> None:
        self.leader_contact = ctx.now
        self._reset_election_timer(ctx)
        self._set_leader(ctx, leader)

    # -- replication: follower side (§5.3) ------------------------------------------------------

    def _on_append(self, ctx: Context, m: AppendEntries) -> None:
        log = self.log
        prev, prev_term, entries = m.prev_index, m.prev_term, m.entries
        if prev < self.commit:
            # Entries up to our commit index are committed, hence identical to the leader's.
            skip = self.commit - prev
            entries = entries[skip:]
            prev = self.commit
            prev_term = log.term_at(prev) or 0
        if prev > log.last_index:
            ctx.reply(AppendResponse(self.term, False, 0, m.prev_index, log.last_index + 1, 0))
            return
        here = log.term_at(prev)
        if here != prev_term:
            assert here is not None  # prev >= commit >= snapshot_index
            hint = log.first_index_of_term(prev)
            ctx.reply(AppendResponse(self.term, False, 0, m.prev_index, hint, here))
            return
        changed = self._append_from_leader(ctx, entries)
        if changed:
            ctx.sync()  # durable before the success answer leaves
        match = prev + len(entries)
        ctx.reply(AppendResponse(self.term, True, match))
        new_commit = min(m.commit, match)
        if new_commit > self.commit:
            self.commit = new_commit
            self._apply(ctx)

    def _append_from_leader(self, ctx: Context, entries: tuple[Entry, ...]) -> bool:
        log = self.log
        for k, e in enumerate(entries):
            here = log.term_at(e.index)
            if here == e.term:
                continue
            if here is not None:
                if e.index <= self.commit:
                    raise AssertionError(f"raft: leader conflicts with committed entry {e.index}")
                log.truncate_from(ctx, e.index)
            log.append(ctx, entries[k:])
            self._refresh_voters(ctx)
            return True
        return False

    def _on_snapshot(self, ctx: Context, m: InstallSnapshot) -> None:
        log = self.log
        if m.last_index <= self.commit:
            ctx.reply(AppendResponse(self.term, True, self.commit))
            return
        if log.term_at(m.last_index) == m.last_term:
            # We hold that entry: keep the log after it (§7) and just learn it is committed.
            ctx.reply(AppendResponse(self.term, True, m.last_index))
            self.commit = m.last_index
            self._apply(ctx)
            return
        log.install(ctx, m.last_index, m.last_term, tuple(m.voters), m.data)
        ctx.sync()
        self.machine.restore(m.data)
        self.commit = self.applied = m.last_index
        self._refresh_voters(ctx)
        ctx.emit("raft.install", index=m.last_index, term=m.last_term)
        ctx.reply(AppendResponse(self.term, True, m.last_index))

    def _refresh_voters(self, ctx: Context) -> None:
        voters = self.log.voters_at(self.log.last_index, self.bootstrap)
        if voters == self.voters:
            return
        self.voters = voters
        ctx.emit("raft.config", voters=list(voters), term=self.term)
        if self.role == LEADER:
            for v in voters:
                if v != self.id and v not in self.progress:
                    self.progress[v] = Progress(next=self.log.last_index, last_ack=ctx.now)

    # -- replication: leader side ---------------------------------------------------------------

    def _append_as_leader(self, ctx: Context, kind: str, data: Any) -> int:
        index = self.log.last_index + 1
        self.log.append(ctx, [Entry(index, self.term, kind, data)])
        ctx.sync()  # the leader counts itself only once its own copy is durable
        if kind == CONFIG:
            self._refresh_voters(ctx)
        return index

    def _broadcast_append(self, ctx: Context, only_replicating: bool = False) -> None:
        for peer, pr in self.progress.items():
            if not only_replicating or pr.state == REPLICATE:
                self._send_append(ctx, peer, pr)

    def _send_append(self, ctx: Context, peer: str, pr: Progress) -> None:
        log = self.log
        to = ActorRef(peer, NAME)
        if pr.next <= log.snapshot_index:
            pr.state = SNAPSHOTTING
            pr.snapshot_sent_at = ctx.now
            voters = log.snapshot_voters if log.snapshot_voters is not None else self.bootstrap
            snap = InstallSnapshot(
                self.term, log.snapshot_index, log.snapshot_term, voters, log.snapshot_data
            )
            ctx.send(to, snap)
            return
        prev = pr.next - 1
        entries = log.slice(pr.next, min(log.last_index + 1, pr.next + self.cfg.max_entries_per_append))
        ctx.send(to, AppendEntries(self.term, prev, log.term_at(prev) or 0, entries, self.commit))
        if entries and pr.state == REPLICATE:
            pr.next = entries[-1].index + 1

    def _on_append_success(self, ctx: Context, peer: str, pr: Progress, m: AppendResponse) -> None:
        if m.match_index > pr.match:
            pr.match = m.match_index
        pr.next = max(pr.next, pr.match + 1)
        if pr.state == PROBE or (pr.state == SNAPSHOTTING and pr.match >= self.log.snapshot_index):
            pr.state = REPLICATE
        self._maybe_commit(ctx)
        if self.role != LEADER:
            return
        if self.transferee == peer and pr.match == self.log.last_index:
            ctx.send(ActorRef(peer, NAME), TimeoutNow(self.term))
        if pr.next <= self.log.last_index and pr.state == REPLICATE:
            self._send_append(ctx, peer, pr)

    def _on_append_reject(self, ctx: Context, peer: str, pr: Progress, m: AppendResponse) -> None:
        if m.reject_index <= pr.match:
            return  # stale: we already know it matches further
        nxt = m.hint_index
        if m.hint_term > 0:
            mine = self.log.last_index_of_term(m.hint_term, m.reject_index)
            if mine is not None:
                nxt = mine + 1
        pr.next = max(pr.match + 1, min(nxt, m.reject_index))
        pr.state = PROBE
        self._send_append(ctx, peer, pr)

    def _maybe_commit(self, ctx: Context) -> None:
        """Raft §5.4.2: commit the majority-replicated index if it is of the current term."""
        if self.role != LEADER or not self.voters:
            return
        matches = sorted(
            (self.log.last_index if v == self.id else self.progress[v].match if v in self.progress else 0)
            for v in self.voters
        )
        n = matches[len(matches) - self.quorum]
        if n > self.commit and self.log.term_at(n) == self.term:
            old = self.commit
            self.commit = n
            ctx.emit(
                "raft.commit",
                term=self.term,
                first=old + 1,
                entries=[[e.term, digest(e.data)] for e in self.log.slice(old + 1, n + 1)],
            )
            self._apply(ctx)

    # -- applying -------------------------------------------------------------------------------

    def _apply(self, ctx: Context) -> None:
        stepped_down = False
        while self.applied < self.commit:
            i = self.applied + 1
            e = self.log.entry(i)
            result = self.machine.apply(i, e.data) if e.kind == CMD else None
            self.applied = i
            ctx.emit("raft.apply", index=i, term=e.term, what=e.kind, cmd=digest(e.data))
            waiting = self.pending.pop(i, None) if self.role == LEADER else None
            if waiting is not None:
                self._reply_success(ctx, waiting, e, result)
            if e.kind == CONFIG and self.role == LEADER:
                for p in list(self.progress):
                    if p not in self.voters:
                        del self.progress[p]
                if self.id not in self.voters:
                    stepped_down = True
        if stepped_down and self.role == LEADER and self.log.voters_at(self.commit, ()) == self.voters:
            self._step_down_removed(ctx)
        self._maybe_snapshot(ctx)

    def _step_down_removed(self, ctx: Context) -> None:
        best = max(self.progress.items(), key=lambda kv: (kv[1].match, kv[0]), default=None)
        ctx.emit("raft.removed", term=self.term)
        term = self.term
        self.become_follower(ctx, term, None)
        if best is not None:
            ctx.send(ActorRef(best[0], NAME), TimeoutNow(term))

    def _maybe_snapshot(self, ctx: Context) -> None:
        threshold = self.cfg.snapshot_threshold
        if threshold and self.applied - self.log.snapshot_index >= threshold:
            voters = self.log.voters_at(self.applied, self.bootstrap)
            self.log.compact(ctx, self.applied, voters, self.machine.snapshot())
            ctx.sync()
            ctx.emit("raft.snapshot", index=self.applied, term=self.log.snapshot_term)

    def _reply_success(self, ctx: Context, p: _Pending, e: Entry, result: Any) -> None:
        if p.kind == CMD:
            ctx.emit("raft.ack", index=e.index, term=e.term, cmd=digest(e.data))
            ctx.send(p.to, ProposeResult(True, e.index, e.term, self.id, p.request, result))
        else:
            ctx.send(p.to, MembershipResult(True, e.index, e.term, self.id, tuple(e.data), p.request))

    def _reply_failure(self, ctx: Context, p: _Pending, index: int, reason: str) -> None:
        if p.kind == CMD:
            ctx.send(p.to, ProposeResult(False, index, p.term, self.leader, p.request, None, reason))
        else:
            ctx.send(p.to, MembershipResult(False, index, p.term, self.leader, (), p.request, reason))

    # -- client requests ------------------------------------------------------------------------

    def _on_propose(self, ctx: Context, m: Propose) -> None:
        if self.role != LEADER or self.transferee is not None:
            reason = "not leader" if self.role != LEADER else "transferring leadership"
            ctx.reply(ProposeResult(False, 0, self.term, self.leader, m.request, None, reason))
            return
        index = self._append_as_leader(ctx, CMD, plain(m.command))
        if ctx.sender is not None:
            self.pending[index] = _Pending(ctx.sender, CMD, m.request, self.term)
        self._broadcast_append(ctx, only_replicating=True)
        self._maybe_commit(ctx)

    def _on_change(self, ctx: Context, m: ChangeMembership) -> None:
        def refuse(reason: str) -> None:
            if ctx.sender is not None and ctx.sender.name != NAME:
                ctx.reply(MembershipResult(False, 0, self.term, self.leader, self.voters, m.request, reason))

        if self.role != LEADER:
            refuse("not leader")
            return
        if (m.add is None) == (m.remove is None):
            refuse("give exactly one of add and remove")
            return
        if self.log.voters_at(self.commit, self.bootstrap) != self.voters:
            refuse("a membership change is already in progress")
            return
        if self.commit < self.term_start:
            refuse("the leader has not committed an entry of its term yet")
            return
        if m.add is not None:
            if m.add in self.voters:
                refuse(f"{m.add} is already a voter")
                return
            voters = tuple(sorted((*self.voters, m.add)))
        else:
            if m.remove not in self.voters:
                refuse(f"{m.remove} is not a voter")
                return
            voters = tuple(v for v in self.voters if v != m.remove)
            if not voters:
                refuse("cannot remove the last voter")
                return
        index = self._append_as_leader(ctx, CONFIG, list(voters))
        if ctx.sender is not None and ctx.sender.name != NAME:
            self.pending[index] = _Pending(ctx.sender, CONFIG, m.request, self.term)
        self._broadcast_append(ctx)
        self._maybe_commit(ctx)

    def _on_transfer(self, ctx: Context, m: TransferLeadership) -> None:
        if self.role != LEADER:
            ctx.reply(TransferResult(False, self.leader, "not leader"))
            return
        if m.target == self.id:
            ctx.reply(TransferResult(True, self.id))
            return
        pr = self.progress.get(m.target)
        if pr is None or m.target not in self.voters:
            ctx.reply(TransferResult(False, self.id, f"{m.target} is not a voter"))
            return
        self.transferee = m.target
        self.transfer_deadline = ctx.now + self.cfg.election_timeout
        ctx.emit("raft.transfer", target=m.target, term=self.term)
        ctx.reply(TransferResult(True, self.id))
        if pr.match == self.log.last_index:
            ctx.send(ActorRef(m.target, NAME), TimeoutNow(self.term))
        else:
            self._send_append(ctx, m.target, pr)
