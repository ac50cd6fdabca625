"""What every election algorithm shares: configuration, the leader events and queries.

Every algorithm is one actor named :data:`NAME` per node, built by its module's
``blueprint(nodes, config)``. It

- answers :class:`GetLeader` with :class:`Leader` (its current view; ``leader`` may be None);
- sends :class:`LeaderChanged` to every actor that sent it :class:`Subscribe` (actors on the
  same node: the job scheduler, metrics, ...) whenever its view of the leader changes;
- emits ``leader.changed`` (fields ``leader``, ``epoch``) on every change of its view, and
  ``leader.elected`` (``epoch``) when this node itself becomes leader: the simulator's
  checkers read these.

``epoch`` orders leaderships: for Raft it is the term; for Bully and Gossip a number that
increases with every new leadership. Two different leaders never share an epoch in Raft; in
Bully and Gossip the epoch only helps observers order changes.

Membership at run time: nodes join by contacting any of ``seeds`` (nodes already in the
cluster) and leave gracefully on ``on_stop`` (or :class:`Leave`); a crashed node is found by
each algorithm's own failure detection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .._messages import message

NAME = "election"
"""The actor name of the election actor on every node."""

ALGORITHMS = ("bully", "raft", "gossip")


@message("election.LeaderChanged")
@dataclass(frozen=True, slots=True)
class LeaderChanged:
    """Sent to subscribers: the sender's node now sees ``leader`` (None: no leader known)."""

    leader: str | None
    epoch: int


@message("election.Subscribe")
@dataclass(frozen=True, slots=True)
class Subscribe:
    """Ask the election actor to send ``LeaderChanged`` to the sender from now on."""


@message("election.GetLeader")
@dataclass(frozen=True, slots=True)
class GetLeader:
    """Ask for the current view; answered with :class:`Leader`."""


@message("election.Leader")
@dataclass(frozen=True, slots=True)
class Leader:
    """The answer to :class:`GetLeader`: who this node sees as leader, and its epoch."""

    leader: str | None
    epoch: int
    node: str


@message("election.Leave")
@dataclass(frozen=True, slots=True)
class Leave:
    """Ask this node's election actor to leave the cluster gracefully (then it stays quiet)."""


@dataclass(frozen=True, slots=True)
class ElectionConfig:
    """Settings every algorithm understands (seconds of the node's monotonic clock).

    Attributes:
        election_timeout: how long without a leader (or a heartbeat from it) before a node
            acts; Raft randomises it in ``[election_timeout, 2 * election_timeout)``.
        interval: how often the leader (or every member, for Gossip) sends heartbeats/probes.
        priorities: node id -> priority (higher wins) for Bully and Gossip's
            ``highest_priority`` rule; nodes not listed rank by id.
        seeds: nodes to contact when joining; empty means "every node of the blueprint".
    """

    election_timeout: float = 1.0
    interval: float = 0.2
    priorities: Mapping[str, int] = field(default_factory=dict)
    seeds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.election_timeout > 0:
            raise ValueError(f"election_timeout must be > 0, got {self.election_timeout}")
        if not self.interval > 0:
            raise ValueError(f"interval must be > 0, got {self.interval}")

    def rank(self, node: str) -> tuple[int, str]:
        """Bully order: higher priority wins, then the higher id."""
        return (self.priorities.get(node, 0), node)
