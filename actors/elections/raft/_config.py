"""Raft's configuration and the replicated state machine interface.

A :class:`StateMachine` is what Raft replicates: every node applies the same committed
commands in the same order, so every node's machine goes through the same states. Raft calls
it from inside the actor (so it must be pure too: no I/O, no clocks, no randomness):

- ``apply(index, command)`` for each committed command, in index order, exactly once per
  incarnation (after a restart, again from the last snapshot on); the result goes back to the
  proposing client;
- ``snapshot()`` returns the whole state as plain data (it is persisted and sent to lagging
  followers, so it must not be mutated afterwards);
- ``restore(data)`` replaces the state by a snapshot's (data as it comes back from storage or
  the wire: tuples may have become lists).

:class:`KVMachine` is the default: a key-value map driven by ``["set", k, v]``, ``["del", k]``
and ``["get", k]``, that also records every other command in an append-only list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._common import ElectionConfig


class StateMachine(Protocol):
    """The replicated state machine Raft drives (see the module docstring)."""

    def apply(self, index: int, command: Any) -> Any: ...
    def snapshot(self) -> Any: ...
    def restore(self, data: Any) -> None: ...


class KVMachine:
    """Default machine: a key-value map plus an append-only list of other commands.

    Commands: ``["set", key, value]`` returns the previous value, ``["del", key]`` returns the
    removed value, ``["get", key]`` returns the value; anything else is appended to
    :attr:`items` and returns its position there.
    """

    def __init__(self) -> None:
        self.kv: dict[str, Any] = {}
        self.items: list[Any] = []
        self.last_index = 0

    def apply(self, index: int, command: Any) -> Any:
        self.last_index = index
        if isinstance(command, list) and command and command[0] in ("set", "del", "get"):
            op = command[0]
            key = str(command[1]) if len(command) > 1 else ""
            if op == "set":
                old = self.kv.get(key)
                self.kv[key] = command[2] if len(command) > 2 else None
                return old
            if op == "del":
                return self.kv.pop(key, None)
            return self.kv.get(key)
        self.items.append(command)
        return len(self.items) - 1

    def snapshot(self) -> Any:
        return {"kv": dict(self.kv), "items": list(self.items), "last_index": self.last_index}

    def restore(self, data: Any) -> None:
        self.kv = dict(data["kv"])
        self.items = list(data["items"])
        self.last_index = int(data["last_index"])


@dataclass(frozen=True, slots=True)
class RaftConfig(ElectionConfig):
    """Raft settings (seconds of the node's monotonic clock).

    Attributes:
        election_timeout: a follower that hears no leader for a random time in
            ``[election_timeout, 2 * election_timeout)`` campaigns; also the leader lease and
            the check-quorum window.
        interval: the tick: the leader's heartbeat period (must be < election_timeout).
        pre_vote: ask for pre-votes before bumping the term (thesis §9.6).
        check_quorum: a leader that has not heard from a majority within an election timeout
            steps down, and followers that heard from a leader within it ignore votes (leases).
        snapshot_threshold: snapshot and compact the log after this many applied entries
            past the last snapshot (0: never).
        max_entries_per_append: at most this many entries per AppendEntries.
        machine: builds the replicated state machine (a fresh one per incarnation).
        election_randomness: the election timeout is drawn from
            ``[election_timeout, election_timeout + election_randomness)``; None (default)
            means ``election_timeout`` (the usual ``[t, 2t)``). The Raft paper's Figure 16
            varies it (5 ms to 150 ms over a 150 ms base).
    """

    election_timeout: float = 1.0
    interval: float = 0.2
    pre_vote: bool = True
    check_quorum: bool = True
    snapshot_threshold: int = 1000
    max_entries_per_append: int = 64
    machine: Callable[[], StateMachine] = field(default=KVMachine, compare=False)
    election_randomness: float | None = None

    def __post_init__(self) -> None:
        ElectionConfig.__post_init__(self)
        if not self.interval < self.election_timeout:
            raise ValueError(
                f"raft interval ({self.interval}) must be < election_timeout ({self.election_timeout})"
            )
        if self.election_randomness is not None and not self.election_randomness > 0:
            raise ValueError(f"election_randomness must be > 0 seconds, got {self.election_randomness}")
        if self.snapshot_threshold < 0:
            raise ValueError(f"snapshot_threshold must be >= 0 (0: never), got {self.snapshot_threshold}")
        if self.max_entries_per_append < 1:
            raise ValueError(f"max_entries_per_append must be >= 1, got {self.max_entries_per_append}")
