"""Gossip (SWIM) election: the membership table, suspicions and the broadcast queue.

How it works
------------
The table maps every other member to its current record (state, incarnation, advertised
epoch). Rumours (:class:`Update`) are merged by :meth:`Table.apply` with SWIM's precedence,
the rule this module keeps:

- ``alive(i)`` replaces any record with incarnation ``< i`` (a refutation or a rejoin), and
  adds an unknown member;
- ``suspect(i)`` replaces ``alive(j)`` for ``i >= j`` and a suspicion of a lower incarnation;
  an equal suspicion from a new accuser is a confirmation (Lifeguard), nothing else;
- ``dead(i)`` / ``left(i)`` replace alive or suspect records of incarnation ``<= i``; they are
  final for that incarnation: only ``alive(j > i)`` from the member itself undoes them.

Only a member raises its own incarnation, so "higher incarnation wins" can never be forged by
an accuser, and two records of one incarnation are ordered alive < suspect < dead/left.
Rumours about this node itself never reach the table: the actor refutes them.

:class:`Suspicion` is Lifeguard's dynamic suspicion timeout: it starts at ``max`` and decays
towards ``min`` with the logarithm of the number of independent confirmations, reaching
``min`` at ``k`` confirmations (memberlist's ``remainingSuspicionTime``).

:class:`BroadcastQueue` holds at most one rumour per member (a newer one replaces the older),
bucketed by how often it has been sent; each message takes the least-sent rumours first,
newest first within a bucket, and a rumour is dropped once sent ``limit`` times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ._swim_messages import ALIVE, DEAD, LEFT, SUSPECT, Update

IN_VIEW = (ALIVE, SUSPECT)
"""States of a member that counts (for probing, for the leader rule)."""


@dataclass(slots=True)
class Suspicion:
    """Lifeguard suspicion of one member at one incarnation."""

    incarnation: int
    started: float
    k: int
    min_timeout: float
    max_timeout: float
    accusers: set[str] = field(default_factory=set)

    def confirmations(self) -> int:
        """Independent accusers beyond the first."""
        return max(0, len(self.accusers) - 1)

    def timeout(self) -> float:
        """Total timeout from ``started`` given the confirmations so far."""
        if self.k < 1:
            return self.min_timeout
        frac = math.log(self.confirmations() + 1.0) / math.log(self.k + 1.0)
        raw = self.max_timeout - frac * (self.max_timeout - self.min_timeout)
        return max(self.min_timeout, raw)


@dataclass(slots=True)
class Record:
    """This node's knowledge of one member; ``update`` is the same as a rumour."""

    update: Update

    @property
    def state(self) -> str:
        return self.update.state

    @property
    def incarnation(self) -> int:
        return self.update.incarnation


class Table:
    """Every other member this node has heard of, merged by SWIM's precedence."""

    def __init__(self) -> None:
        self.records: dict[str, Record] = {}
        self.in_view = 0  # members in IN_VIEW states

    def get(self, member: str) -> Record | None:
        return self.records.get(member)

    def state(self, member: str) -> str | None:
        r = self.records.get(member)
        return r.update.state if r is not None else None

    def members(self, states: tuple[str, ...] = IN_VIEW) -> list[str]:
        """Members in ``states``, in table order (deterministic: insertion order)."""
        return [m for m, r in self.records.items() if r.update.state in states]

    def snapshot(self) -> tuple[Update, ...]:
        return tuple(r.update for r in self.records.values())

    def apply(self, u: Update) -> str | None:
        """Merge one rumour about another member.

        Returns:
            None if the rumour changes nothing; ``"confirm"`` if it confirms the current
            suspicion; ``"quiet"`` if it only records a tombstone for an unknown member or a
            newer incarnation of the same state; else the new state (a transition).
        """
        r = self.records.get(u.member)
        s = u.state
        if r is None:
            if s == ALIVE:
                self._set(u, None)
                return ALIVE
            if s in (DEAD, LEFT):
                self._set(u, None)
                return "quiet"
            return None  # a suspicion of someone we never knew: memberlist ignores it
        cur = r.update
        if s == ALIVE:
            if u.incarnation <= cur.incarnation:
                return None
            self._set(u, cur)
            return ALIVE if cur.state != ALIVE else "quiet"
        if u.incarnation < cur.incarnation or cur.state in (DEAD, LEFT):
            return None
        if s == SUSPECT:
            if cur.state == SUSPECT and u.incarnation == cur.incarnation:
                return "confirm"  # the actor counts distinct accusers
            self._set(u, cur)
            return SUSPECT
        self._set(u, cur)
        return s

    def _set(self, u: Update, old: Update | None) -> None:
        was = old is not None and old.state in IN_VIEW
        now = u.state in IN_VIEW
        self.in_view += int(now) - int(was)
        rec = self.records.get(u.member)
        if rec is None:
            self.records[u.member] = Record(u)
        else:
            rec.update = u


class BroadcastQueue:
    """Rumours waiting to be piggybacked, at most one per member."""

    def __init__(self) -> None:
        self._buckets: list[dict[str, Update]] = []  # index = times sent
        self._where: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._where)

    def push(self, u: Update) -> None:
        """Queue ``u``, replacing any rumour about the same member."""
        old = self._where.pop(u.member, None)
        if old is not None:
            del self._buckets[old][u.member]
        if not self._buckets:
            self._buckets.append({})
        self._buckets[0][u.member] = u
        self._where[u.member] = 0

    def pending(self) -> list[Update]:
        """Every queued rumour (least sent first)."""
        return [u for b in self._buckets for u in b.values()]

    def take(self, count: int, limit: int) -> tuple[Update, ...]:
        """Up to ``count`` rumours to send now; each is dropped after ``limit`` sends."""
        if not self._where:
            return ()
        picked: list[tuple[int, Update]] = []
        for sent, bucket in enumerate(self._buckets):
            if not bucket:
                continue
            for member in reversed(bucket):
                picked.append((sent, bucket[member]))
                if len(picked) >= count:
                    break
            if len(picked) >= count:
                break
        for sent, u in picked:
            del self._buckets[sent][u.member]
            if sent + 1 >= limit:
                del self._where[u.member]
                continue
            if sent + 1 == len(self._buckets):
                self._buckets.append({})
            self._buckets[sent + 1][u.member] = u
            self._where[u.member] = sent + 1
        return tuple(u for _, u in picked)
