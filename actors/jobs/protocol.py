"""How actors talk to the job store: one request and one reply message around a command.

Every store, whatever its backend, is reached as the actor named :data:`STORE` on some node
(the local node for ``redis`` and ``raft``, the store's node for ``memory`` and ``sqlite``). A
requester sends :class:`StoreRequest` with its own request number and a command (a plain dict,
see :mod:`actors.jobs.machine`) and gets :class:`StoreReply` with the same number and the
command's result, or ``{"error": ...}``. A store answers only once the command's effect is
durable, so an acknowledged submit survives a crash of the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from .._messages import message

STORE: Final = "store"
"""The actor name every store answers to."""

UNAVAILABLE: Final = "store unavailable"
"""The error a store gives when it cannot reach its backend (the command did not apply)."""


@message("jobs.StoreRequest")
@dataclass(frozen=True, slots=True)
class StoreRequest:
    """Apply ``command`` and answer ``req`` to the sender."""

    req: int
    command: Any


@message("jobs.StoreReply")
@dataclass(frozen=True, slots=True)
class StoreReply:
    """The result of request ``req``: the command's result dict (``{"error": ...}`` on failure)."""

    req: int
    result: Any
