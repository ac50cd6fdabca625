"""Raft's wire messages (tags ``raft.*``): peer RPCs, the client API and introspection.

Peer messages all carry the sender's ``term``; the sender's node id is the envelope's source
(``ctx.sender.node``), so it is not repeated in the body. Log entries travel as nested
:class:`Entry` messages. Field types are the codec's: plain data only (``Any`` for commands and
state-machine snapshots).

Client API (sent to the ``election`` actor of any node):

- :class:`Propose` -> :class:`ProposeResult` once the command is committed and applied (or at
  once with ``ok=False`` and a ``leader_hint`` when this node is not the leader);
- :class:`ChangeMembership` -> :class:`MembershipResult` once the configuration entry commits;
- :class:`TransferLeadership` -> :class:`TransferResult` when the transfer starts (its outcome
  shows as a ``LeaderChanged``);
- :class:`GetStatus` -> :class:`Status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..._messages import message

CMD, NOOP, CONFIG = "cmd", "noop", "config"
"""Entry kinds: a client command, the no-op a new leader appends, a membership change."""


@message("raft.Entry")
@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry. ``data`` is the command (``cmd``), None (``noop``) or the sorted list of
    voters of the new configuration (``config``)."""

    index: int
    term: int
    kind: str
    data: Any


# -- peer RPCs ------------------------------------------------------------------------------


@message("raft.RequestVote")
@dataclass(frozen=True, slots=True)
class RequestVote:
    """Ask for a vote (or, with ``pre_vote``, whether a vote would be granted) in ``term``.

    A pre-vote carries the term the candidate *would* use (its term + 1) and changes no state
    on either side (thesis §9.6). ``transfer`` marks a campaign started by ``TimeoutNow``: it
    overrides leader leases.
    """

    term: int
    last_index: int
    last_term: int
    pre_vote: bool = False
    transfer: bool = False


@message("raft.VoteResponse")
@dataclass(frozen=True, slots=True)
class VoteResponse:
    """A (pre-)vote answer. A granted pre-vote echoes the requested term."""

    term: int
    granted: bool
    pre_vote: bool = False


@message("raft.AppendEntries")
@dataclass(frozen=True, slots=True)
class AppendEntries:
    """Replicate ``entries`` after ``(prev_index, prev_term)``; empty entries = heartbeat."""

    term: int
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int


@message("raft.AppendResponse")
@dataclass(frozen=True, slots=True)
class AppendResponse:
    """Answer to AppendEntries or InstallSnapshot.

    On success ``match_index`` is the last index known to match the leader's log. On reject
    ``reject_index`` is the rejected ``prev_index`` and the hint lets the leader skip a whole
    term at once: ``hint_term`` is the term of this node's entry at ``reject_index`` (0 if the
    log is shorter) and ``hint_index`` the first index of that term here (or last index + 1).
    """

    term: int
    success: bool
    match_index: int = 0
    reject_index: int = 0
    hint_index: int = 0
    hint_term: int = 0


@message("raft.InstallSnapshot")
@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """Replace the follower's state by a snapshot up to ``last_index`` (Raft §7), sent in one
    message (no chunking)."""

    term: int
    last_index: int
    last_term: int
    voters: tuple[str, ...]
    data: Any


@message("raft.TimeoutNow")
@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """Leadership transfer (thesis §3.10): start an election now, skipping pre-vote."""

    term: int


@message("raft.Tick")
@dataclass(frozen=True, slots=True)
class Tick:
    """The timer message: heartbeat for a leader, election clock for everyone else."""


# -- client API -----------------------------------------------------------------------------


@message("raft.Propose")
@dataclass(frozen=True, slots=True)
class Propose:
    """Replicate ``command`` (plain data). ``request`` is echoed in the result."""

    command: Any
    request: int = 0


@message("raft.ProposeResult")
@dataclass(frozen=True, slots=True)
class ProposeResult:
    """``ok``: committed at ``index`` in ``term`` and applied, with the machine's ``result``.

    Not ok: ``reason`` says why (``not leader``, ``leadership lost``, ``transferring``); the
    command may still commit later if it was appended (``index`` > 0). ``leader_hint`` names
    the leader this node knows of, if any.
    """

    ok: bool
    index: int
    term: int
    leader_hint: str | None
    request: int = 0
    result: Any = None
    reason: str = ""


@message("raft.ChangeMembership")
@dataclass(frozen=True, slots=True)
class ChangeMembership:
    """Add or remove one voter (give exactly one of ``add`` and ``remove``)."""

    add: str | None = None
    remove: str | None = None
    request: int = 0


@message("raft.MembershipResult")
@dataclass(frozen=True, slots=True)
class MembershipResult:
    """``ok``: the configuration ``voters`` committed at ``index``; else ``reason``."""

    ok: bool
    index: int
    term: int
    leader_hint: str | None
    voters: tuple[str, ...] = ()
    request: int = 0
    reason: str = ""


@message("raft.TransferLeadership")
@dataclass(frozen=True, slots=True)
class TransferLeadership:
    """Ask the leader to hand leadership to ``target``."""

    target: str


@message("raft.TransferResult")
@dataclass(frozen=True, slots=True)
class TransferResult:
    """``ok``: the transfer started (or ``target`` already leads); else ``reason``."""

    ok: bool
    leader_hint: str | None
    reason: str = ""


@message("raft.GetStatus")
@dataclass(frozen=True, slots=True)
class GetStatus:
    """Ask for a :class:`Status`."""


@message("raft.Status")
@dataclass(frozen=True, slots=True)
class Status:
    """A node's Raft state, for operators and tests."""

    node: str
    role: str
    term: int
    leader: str | None
    commit: int
    applied: int
    first_index: int
    last_index: int
    voters: tuple[str, ...]


def plain(value: Any) -> Any:
    """``value`` as it looks after a trip through the codec (tuples become lists), so every
    node's state machine sees the same command."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value
