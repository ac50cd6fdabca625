"""The job queue in memory: the :class:`JobMachine` itself, nothing durable.

How it works
------------
Each command goes straight to the machine, in order; nothing is written anywhere, so a restart
starts empty. It is the reference the other backends are compared against, and what tests and
one-process runs use. A command that makes the machine raise (a bug: the machine answers bad
input with ``{"error": ...}`` itself) is answered with an error naming it, and the batch goes on.
"""

from __future__ import annotations

from typing import Any

import trio

from actors.jobs import RetryPolicy
from actors.jobs.machine import JobMachine


class MemoryJobStore:
    """A :class:`~transport.stores.base.JobStoreBackend` holding the queue in memory only.

    Args:
        policy: retry backoff applied to failed jobs (default ``RetryPolicy()``).
    """

    def __init__(self, policy: RetryPolicy | None = None) -> None:
        self.machine = JobMachine(policy)

    async def open(self) -> None:
        """Nothing to connect to."""
        await trio.lowlevel.checkpoint()

    async def execute(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apply ``commands`` in order and return their results (see ``JobStoreBackend``)."""
        await trio.lowlevel.checkpoint()
        results: list[dict[str, Any]] = []
        for command in commands:
            try:
                results.append(self.machine.apply(self.machine.last_index + 1, command))
            except Exception as e:
                op = command.get("op") if isinstance(command, dict) else None
                results.append({"error": f"{op}: internal store error ({type(e).__name__}: {e})"})
        self.machine.take_changes()  # nothing to write; keep the change sets from growing
        return results

    async def close(self) -> None:
        """Nothing to release; the jobs stay in memory."""
        await trio.lowlevel.checkpoint()
