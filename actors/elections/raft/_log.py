"""The Raft log in memory, and its durable layout.

How it works
------------
The log is a snapshot (last included index and term, the configuration at that index, the
state machine's data) followed by ``entries``, where ``entries[k].index == snapshot_index + 1 +
k``. Index 0 is the empty prefix with term 0.

Durable layout (one actor's keys, written with ``ctx.persist``; the caller syncs):

- ``"meta"``: ``[term, voted_for]``;
- ``"log/<index>"``: ``[term, kind, data]``, one key per entry, so an append writes only the
  new entries and a truncation deletes only the dropped ones;
- ``"snapshot"``: ``{"index", "term", "voters", "data"}``; compaction deletes the keys of
  the entries it covers.

:meth:`RaftLog.restore` reads the snapshot, then ``log/<snapshot_index + 1>``, ``+ 2``, ...
up to the first missing key: writes go out in index order and deletions from the end, so the
durable log is always a contiguous run.

Rules kept here: entries are only appended after the last index or truncated from an index
on (never rewritten in place), and compaction covers only a prefix the caller has applied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..._context import Context
from ._messages import CONFIG, Entry

META, SNAPSHOT = "meta", "snapshot"


def entry_key(index: int) -> str:
    """The durable key of the entry at ``index``."""
    return f"log/{index}"


class RaftLog:
    """Entries after a snapshot, with persistence of every change."""

    def __init__(self) -> None:
        self.snapshot_index = 0
        self.snapshot_term = 0
        self.snapshot_voters: tuple[str, ...] | None = None
        self.snapshot_data: Any = None
        self.entries: list[Entry] = []

    @classmethod
    def restore(cls, durable: Mapping[str, Any]) -> RaftLog:
        """The log as it was last synced."""
        log = cls()
        snap = durable.get(SNAPSHOT)
        if snap is not None:
            log.snapshot_index = int(snap["index"])
            log.snapshot_term = int(snap["term"])
            log.snapshot_voters = tuple(snap["voters"])
            log.snapshot_data = snap["data"]
        i = log.snapshot_index + 1
        while (raw := durable.get(entry_key(i))) is not None:
            log.entries.append(Entry(i, int(raw[0]), str(raw[1]), raw[2]))
            i += 1
        return log

    @property
    def first_index(self) -> int:
        return self.snapshot_index + 1

    @property
    def last_index(self) -> int:
        return self.snapshot_index + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.snapshot_term

    def term_at(self, index: int) -> int | None:
        """Term of the entry at ``index``; None if compacted away or past the end."""
        if index == self.snapshot_index:
            return self.snapshot_term
        if index < self.snapshot_index or index > self.last_index:
            return None
        return self.entries[index - self.snapshot_index - 1].term

    def entry(self, index: int) -> Entry:
        """The entry at ``index`` (must be in ``[first_index, last_index]``)."""
        return self.entries[index - self.snapshot_index - 1]

    def slice(self, start: int, stop: int) -> tuple[Entry, ...]:
        """Entries with ``start <= index < stop`` (``start >= first_index``)."""
        base = self.snapshot_index + 1
        return tuple(self.entries[start - base : stop - base])

    def first_index_of_term(self, index: int) -> int:
        """The first index of the run of entries with the same term as ``index``."""
        term = self.term_at(index)
        while index - 1 > self.snapshot_index and self.term_at(index - 1) == term:
            index -= 1
        return index

    def last_index_of_term(self, term: int, at_most: int) -> int | None:
        """The last index ``<= at_most`` holding ``term`` (None if there is none)."""
        i = min(at_most, self.last_index)
        while i >= self.snapshot_index:
            t = self.term_at(i)
            if t == term:
                return i
            if t is None or t < term:
                return None
            i -= 1
        return None

    def voters_at(self, index: int, bootstrap: tuple[str, ...]) -> tuple[str, ...]:
        """The configuration in force at ``index``: the last config entry at or before it,
        else the snapshot's, else ``bootstrap``."""
        for i in range(min(index, self.last_index), self.snapshot_index, -1):
            e = self.entry(i)
            if e.kind == CONFIG:
                return tuple(e.data)
        return self.snapshot_voters if self.snapshot_voters is not None else bootstrap

    # -- changes (each persists; the caller syncs) ------------------------------------------

    def append(self, ctx: Context, entries: Sequence[Entry]) -> None:
        """Append ``entries`` (contiguous, starting at ``last_index + 1``)."""
        for e in entries:
            if e.index != self.last_index + 1:
                raise ValueError(f"raft log: appending index {e.index} after {self.last_index}")
            self.entries.append(e)
            ctx.persist(entry_key(e.index), [e.term, e.kind, e.data])

    def truncate_from(self, ctx: Context, index: int) -> None:
        """Drop every entry at ``index`` and after."""
        for i in range(self.last_index, index - 1, -1):
            ctx.persist(entry_key(i), None)
        del self.entries[index - self.snapshot_index - 1 :]

    def compact(self, ctx: Context, index: int, voters: tuple[str, ...], data: Any) -> None:
        """Replace the prefix up to ``index`` (applied) by a snapshot of the machine."""
        term = self.term_at(index)
        if term is None or index <= self.snapshot_index:
            raise ValueError(f"raft log: cannot compact to {index} (first {self.first_index})")
        ctx.persist(SNAPSHOT, {"index": index, "term": term, "voters": list(voters), "data": data})
        for i in range(self.snapshot_index + 1, index + 1):
            ctx.persist(entry_key(i), None)
        del self.entries[: index - self.snapshot_index]
        self.snapshot_index, self.snapshot_term = index, term
        self.snapshot_voters, self.snapshot_data = voters, data

    def install(self, ctx: Context, index: int, term: int, voters: tuple[str, ...], data: Any) -> None:
        """Replace the whole log by a leader's snapshot (Raft §7: the log is discarded)."""
        ctx.persist(SNAPSHOT, {"index": index, "term": term, "voters": list(voters), "data": data})
        for i in range(self.snapshot_index + 1, self.last_index + 1):
            ctx.persist(entry_key(i), None)
        self.entries = []
        self.snapshot_index, self.snapshot_term = index, term
        self.snapshot_voters, self.snapshot_data = voters, data
