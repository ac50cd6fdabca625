"""Raft leader election and log replication as a pure actor (see ``_core`` for the theory).

Build a cluster with :func:`blueprint`; talk to the ``election`` actor of any node with
:class:`Propose`, :class:`ChangeMembership`, :class:`TransferLeadership`, :class:`GetStatus`
and the common election messages (``GetLeader``, ``Subscribe``, ``Leave``). Replicate your
own state by passing ``RaftConfig(machine=...)``, a factory of :class:`StateMachine`.
"""

from __future__ import annotations

from ..._actor import Actor, NodeBlueprint
from .._common import NAME
from ._config import KVMachine as KVMachine
from ._config import RaftConfig as RaftConfig
from ._config import StateMachine as StateMachine
from ._core import CANDIDATE as CANDIDATE
from ._core import FOLLOWER as FOLLOWER
from ._core import LEADER as LEADER
from ._core import PRE_CANDIDATE as PRE_CANDIDATE
from ._core import Raft as Raft
from ._core import digest as digest
from ._messages import AppendEntries as AppendEntries
from ._messages import AppendResponse as AppendResponse
from ._messages import ChangeMembership as ChangeMembership
from ._messages import Entry as Entry
from ._messages import GetStatus as GetStatus
from ._messages import InstallSnapshot as InstallSnapshot
from ._messages import MembershipResult as MembershipResult
from ._messages import Propose as Propose
from ._messages import ProposeResult as ProposeResult
from ._messages import RequestVote as RequestVote
from ._messages import Status as Status
from ._messages import Tick as Tick
from ._messages import TimeoutNow as TimeoutNow
from ._messages import TransferLeadership as TransferLeadership
from ._messages import TransferResult as TransferResult
from ._messages import VoteResponse as VoteResponse


def blueprint(
    nodes: tuple[str, ...], config: RaftConfig | None = None, members: tuple[str, ...] | None = None
) -> NodeBlueprint:
    """A :data:`~actors.NodeBlueprint` running one Raft node (actor ``election``) per node.

    Args:
        nodes: every node id the blueprint may be asked to build.
        config: Raft settings (default :class:`RaftConfig`).
        members: the bootstrap voters (default: all of ``nodes``). A node outside it starts
            with an empty configuration and waits to be added with ``ChangeMembership``.
    """
    cfg = config or RaftConfig()
    boot = tuple(nodes if members is None else members)

    def build(node_id: str) -> dict[str, Actor]:
        return {NAME: Raft(node_id, boot if node_id in boot else (), cfg)}

    return build
