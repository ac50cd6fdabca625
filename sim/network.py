"""The network model: latency, loss, duplication, reordering, partitions and clogged links.

How it works
------------
The simulator asks :meth:`Network.plan` once per message between two different nodes. The plan
is either a drop reason (``"loss"``, ``"partition"``) or the delays of the copies to deliver:
one copy, or two when the message is duplicated; a reordered copy gets an extra delay drawn
from ``[0, reorder_delay]`` so later messages overtake it. All draws come from the network's
own random stream, in a fixed order, so adding an actor or a fault does not shift them.

At delivery time the simulator asks :meth:`Network.obstruction` again: a message in flight when
a partition starts is dropped, and a message on a clogged link is held (not dropped) in
``held`` until :meth:`Network.unclog` releases it.

Partitions are directed pairs ``(src, dst)``: a symmetric partition into groups blocks every
pair of nodes in different groups both ways (nodes named in no group form one more group);
``block(a, b)`` blocks only ``a -> b``. ``heal`` lifts both kinds. Messages between actors on the
same node never reach this module: they have zero latency and are never lost.

``fast`` is true when the plan of every message is one copy after a constant delay
(``const_ns`` nanoseconds); the simulator then skips :meth:`plan` altogether.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from random import Random
from typing import Any, Protocol

Pair = tuple[str, str]


class Latency(Protocol):
    """A one-way delay distribution, in seconds."""

    def sample(self, rng: Random) -> float: ...
    def upper_bound(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Constant:
    value: float

    def sample(self, rng: Random) -> float:
        return self.value

    def upper_bound(self) -> float | None:
        return self.value


@dataclass(frozen=True, slots=True)
class Uniform:
    low: float
    high: float

    def sample(self, rng: Random) -> float:
        return rng.uniform(self.low, self.high)

    def upper_bound(self) -> float | None:
        return self.high


@dataclass(frozen=True, slots=True)
class Normal:
    """Normal, clipped at 0 (so unbounded above)."""

    mean: float
    stdev: float

    def sample(self, rng: Random) -> float:
        return max(0.0, rng.gauss(self.mean, self.stdev))

    def upper_bound(self) -> float | None:
        return None if self.stdev > 0 else self.mean


@dataclass(frozen=True, slots=True)
class Exponential:
    mean: float

    def sample(self, rng: Random) -> float:
        return rng.expovariate(1.0 / self.mean) if self.mean > 0 else 0.0

    def upper_bound(self) -> float | None:
        return None if self.mean > 0 else 0.0


@dataclass(frozen=True, slots=True)
class LogNormal:
    """``exp(N(mu, sigma))`` seconds."""

    mu: float
    sigma: float

    def sample(self, rng: Random) -> float:
        return rng.lognormvariate(self.mu, self.sigma)

    def upper_bound(self) -> float | None:
        return None if self.sigma > 0 else math.exp(self.mu)


LATENCY_PARAMS: dict[str, tuple[type[Any], tuple[str, ...]]] = {
    "constant": (Constant, ("value",)),
    "uniform": (Uniform, ("low", "high")),
    "normal": (Normal, ("mean", "stdev")),
    "exponential": (Exponential, ("mean",)),
    "lognormal": (LogNormal, ("mu", "sigma")),
}
"""Distribution name -> (class, parameter names in constructor order)."""


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """Overrides for the directed link ``src -> dst``."""

    src: str
    dst: str
    latency: Latency | None = None
    loss: float | None = None


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """The network of a run; probabilities are per message."""

    latency: Latency = field(default_factory=lambda: Constant(0.001))
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_delay: float = 0.05
    links: tuple[LinkConfig, ...] = ()

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"network {name} must be in [0, 1], got {v}")
        if self.reorder_delay < 0:
            raise ValueError(f"network reorder_delay must be >= 0, got {self.reorder_delay}")

    def latency_bound(self) -> float | None:
        """The largest one-way latency any link can draw (None if unbounded)."""
        bounds = [self.latency.upper_bound()]
        bounds += [lk.latency.upper_bound() for lk in self.links if lk.latency is not None]
        if any(b is None for b in bounds):
            return None
        return max(b for b in bounds if b is not None)


def partition_pairs(groups: Sequence[Sequence[str]], nodes: Iterable[str]) -> set[Pair]:
    """Directed pairs cut by a symmetric partition into ``groups`` (+ the unnamed nodes)."""
    named = [n for g in groups for n in g]
    rest = [n for n in nodes if n not in named]
    all_groups = [list(g) for g in groups] + ([rest] if rest else [])
    cut: set[Pair] = set()
    for i, a_group in enumerate(all_groups):
        for j, b_group in enumerate(all_groups):
            if i != j:
                cut.update((a, b) for a in a_group for b in b_group)
    return cut


class Network:
    """The mutable state of the network during a run (see the module docstring)."""

    def __init__(self, config: NetworkConfig, rng: Random):
        self.config = config
        self.rng = rng
        self.latency: Latency = config.latency
        self.loss = config.loss
        self.duplicate = config.duplicate
        self.reorder = config.reorder
        self.reorder_delay = config.reorder_delay
        self.links: dict[Pair, LinkConfig] = {(lk.src, lk.dst): lk for lk in config.links}
        self.partitioned: set[Pair] = set()
        self.blocked_pairs: set[Pair] = set()
        self.blocked: set[Pair] = set()
        self.clogged: set[Pair] = set()
        # Held messages per clogged link, in arrival order (dict: deterministic iteration).
        self.held: dict[Pair, list[Any]] = {}
        self.obstructed = False
        self.fast = False
        self.const_ns = 0
        self._refresh()

    def _refresh(self) -> None:
        self.blocked = self.partitioned | self.blocked_pairs
        self.obstructed = bool(self.blocked or self.clogged)
        self.fast = (
            type(self.latency) is Constant
            and not self.links
            and not self.obstructed
            and self.loss == 0.0
            and self.duplicate == 0.0
            and self.reorder == 0.0
        )
        self.const_ns = round(self.latency.value * 1e9) if isinstance(self.latency, Constant) else 0

    # -- per message -------------------------------------------------------------------------

    def plan(self, src: str, dst: str) -> str | tuple[float, ...]:
        """Drop reason, or the delays of the copies of one message from ``src`` to ``dst``."""
        if (src, dst) in self.blocked:
            return "partition"
        rng = self.rng
        latency = self.latency
        loss = self.loss
        link = self.links.get((src, dst)) if self.links else None
        if link is not None:
            if link.latency is not None:
                latency = link.latency
            if link.loss is not None:
                loss = link.loss
        if loss > 0.0 and rng.random() < loss:
            return "loss"
        first = latency.sample(rng)
        if self.reorder > 0.0 and rng.random() < self.reorder:
            first += rng.uniform(0.0, self.reorder_delay)
        if self.duplicate > 0.0 and rng.random() < self.duplicate:
            return (first, latency.sample(rng))
        return (first,)

    def obstruction(self, src: str, dst: str) -> str | None:
        """At delivery: ``"partition"`` (drop), ``"clog"`` (hold) or None (deliver)."""
        if (src, dst) in self.blocked:
            return "partition"
        if (src, dst) in self.clogged:
            return "clog"
        return None

    # -- faults ------------------------------------------------------------------------------

    def partition(self, groups: Sequence[Sequence[str]], nodes: Iterable[str]) -> None:
        """Replace the symmetric partition by one into ``groups``."""
        self.partitioned = partition_pairs(groups, nodes)
        self._refresh()

    def block(self, src: str, dst: str) -> None:
        """Drop every message from ``src`` to ``dst`` (one direction only)."""
        self.blocked_pairs.add((src, dst))
        self._refresh()

    def unblock(self, src: str, dst: str) -> None:
        self.blocked_pairs.discard((src, dst))
        self._refresh()

    def heal(self) -> None:
        """Lift every partition and block (clogs stay: see :meth:`unclog`)."""
        self.partitioned = set()
        self.blocked_pairs = set()
        self._refresh()

    def clog(self, src: str, dst: str) -> None:
        """Hold messages from ``src`` to ``dst`` until :meth:`unclog`."""
        self.clogged.add((src, dst))
        self._refresh()

    def unclog(self, src: str | None = None, dst: str | None = None) -> list[Any]:
        """Reopen one link (or all with no arguments); return its held messages in order."""
        if src is None or dst is None:
            pairs = list(self.held)
            self.clogged = set()
        else:
            pairs = [(src, dst)] if (src, dst) in self.held else []
            self.clogged.discard((src, dst))
        out: list[Any] = []
        for pair in pairs:
            out.extend(self.held.pop(pair))
        self._refresh()
        return out

    def hold(self, src: str, dst: str, item: Any) -> None:
        self.held.setdefault((src, dst), []).append(item)

    def set_param(self, name: str, value: float) -> None:
        """Change ``loss``, ``duplicate`` or ``reorder`` for the rest of the run."""
        if name not in ("loss", "duplicate", "reorder"):
            raise ValueError(f"unknown network parameter {name!r}")
        setattr(self, name, value)
        self._refresh()
