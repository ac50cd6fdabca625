"""Virtual clocks: one per node, derived from the simulator's single true time.

How it works
------------
The simulator keeps one true time ``t`` (seconds since the run began). Each node sees it
through a :class:`NodeClock`:

- monotonic time (``ctx.now``) is ``t * rate`` where ``rate = 1 + drift``; it never jumps and
  never goes backwards, so a timer of ``d`` local seconds fires after ``d / rate`` true seconds;
- wall time (``ctx.wall``) is ``EPOCH + offset + jumps + t * rate``; a clock jump (an NTP step,
  an operator's ``date -s``) changes ``jumps`` and so moves wall time, forwards or backwards,
  without touching monotonic time.

Seeds are derived with SHA-256 (never Python's ``hash()``, which is salted per process), so a
stream's draws depend only on the run seed and the stream's name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

EPOCH = 1_700_000_000.0
"""Wall time of true time 0 on a node without offset (2023-11-14T22:13:20Z)."""


def derive_seed(seed: int, stream: str) -> int:
    """A 64-bit seed for the named random stream of the run ``seed``."""
    digest = hashlib.sha256(f"{seed}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass(frozen=True, slots=True)
class ClockConfig:
    """How a node's clock departs from true time.

    Attributes:
        offset: seconds added to the node's wall clock.
        drift: relative rate error; 0.0001 means the node's clocks run 100 ppm fast.
    """

    offset: float = 0.0
    drift: float = 0.0

    def __post_init__(self) -> None:
        if not -0.5 < self.drift < 0.5:
            raise ValueError(f"clock drift must be in (-0.5, 0.5), got {self.drift}")


class NodeClock:
    """The clocks of one node. ``rate`` and ``wall_base`` are read on the hot path."""

    __slots__ = ("rate", "ns_rate", "ns_per_local", "wall_base", "offset", "drift", "jumped")

    def __init__(self, config: ClockConfig | None = None):
        cfg = config or ClockConfig()
        self.offset = cfg.offset
        self.drift = cfg.drift
        self.rate = 1.0 + cfg.drift
        self.ns_rate = self.rate / 1e9  # local seconds per true nanosecond
        self.ns_per_local = 1e9 / self.rate  # true nanoseconds per local second
        self.jumped = 0.0
        self.wall_base = EPOCH + cfg.offset

    def monotonic(self, true_time: float) -> float:
        """The node's ``ctx.now`` at ``true_time``."""
        return true_time * self.rate

    def wall(self, true_time: float) -> float:
        """The node's ``ctx.wall`` at ``true_time``."""
        return self.wall_base + true_time * self.rate

    def true_delay(self, local_delay: float) -> float:
        """True seconds that ``local_delay`` seconds of this node's clock take."""
        return local_delay / self.rate

    def jump(self, by: float) -> None:
        """Step the wall clock by ``by`` seconds (monotonic time is unaffected)."""
        self.jumped += by
        self.wall_base = EPOCH + self.offset + self.jumped
