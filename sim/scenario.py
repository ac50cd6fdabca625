"""Scenario files: TOML describing a system, its nodes, network, clocks, jobs and faults.

Schema (every key is checked; unknown keys are errors)::

    name = "heartbeat-partition"        # required
    description = "..."                 # optional
    system = "heartbeat"                # required; a key of sim.systems.SYSTEMS
    nodes = 5                           # required: a count (ids n1..nN) or a list of ids
    late = ["n5"]                       # optional: nodes down at t=0 until a "start" fault
    duration = 60.0                     # required: simulated seconds, > 0
    codec_checks = true                 # optional (default true)
    [heartbeat]                         # the system's parameters (table named after it)
    interval = 1.0
    [network]                           # optional
    latency = { dist = "uniform", low = 0.001, high = 0.01 }
    loss = 0.0                          # also duplicate, reorder, reorder_delay
    [[network.links]]                   # per directed link overrides
    from = "n1"; to = "n2"; latency = { dist = "constant", value = 0.05 }; loss = 0.1
    [[clocks]]
    node = "n2"; offset = 3.5; drift = 0.0001
    [[jobs]]
    type = "resize"; duration = { dist = "exponential", mean = 0.2 }; failure = 0.05
    [[faults]]
    at = 30.0; action = "partition"; groups = [["n1", "n2"], ["n3", "n4", "n5"]]

A system whose parsed parameters carry a ``job_model`` (a :class:`~sim.jobs.JobModel`) supplies
the job model itself; the job engine (``system = "jobs"``) does, since ``[jobs]`` is its own
parameter table (its job types go in ``[[jobs.types]]``).

Latency distributions: constant(value), uniform(low, high), normal(mean, stdev; clipped at 0),
exponential(mean), lognormal(mu, sigma). Fault actions and their keys: see
:data:`sim.faults.ACTIONS` (``from``/``to`` in files are ``src``/``dst`` in :class:`Fault`).
Membership changes: ``start`` brings up a late (or down) node, ``stop`` is a graceful leave
(``on_stop`` runs and its messages go out; then down as after a crash).

Any problem raises :class:`ScenarioError` whose one-line message names the file and field, e.g.
``scenarios/x.toml: faults[2].node: unknown node 'n9' (nodes are n1..n5)``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .clock import ClockConfig
from .faults import ACTIONS, Fault
from .jobs import JobModel, JobSpec
from .network import LATENCY_PARAMS, Latency, LinkConfig, NetworkConfig


class ScenarioError(ValueError):
    """A scenario that cannot be run; the message is one line naming the field."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """A parsed, validated scenario (build one in code or with :func:`load_scenario`)."""

    name: str
    system: str
    nodes: tuple[str, ...]
    duration: float
    params: Any = None
    description: str = ""
    codec_checks: bool = True
    network: NetworkConfig = field(default_factory=NetworkConfig)
    clocks: dict[str, ClockConfig] = field(default_factory=dict)
    jobs: JobModel = field(default_factory=JobModel)
    faults: tuple[Fault, ...] = ()
    source: str = ""
    late: tuple[str, ...] = ()


class Fields:
    """Typed access to one TOML table that remembers which keys were read."""

    def __init__(self, table: Any, path: str, where: str):
        self.where = where
        self.path = path
        if not isinstance(table, dict):
            raise self.error("", f"expected a table, got {_tname(table)}")
        self.table: dict[str, Any] = table
        self.seen: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, msg: str) -> ScenarioError:
        name = self._key(key) if key else (self.path or "(top level)")
        return ScenarioError(f"{self.where}: {name}: {msg}")

    def has(self, key: str) -> bool:
        return key in self.table

    def get(self, key: str, kind: type[Any] | tuple[type[Any], ...], default: Any = ...) -> Any:
        self.seen.add(key)
        if key not in self.table:
            if default is ...:
                raise self.error(key, "missing required field")
            return default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and type(value) is int:
            value = float(value)
        if type(value) not in kinds:
            want = " or ".join(k.__name__ for k in kinds)
            raise self.error(key, f"expected {want}, got {_tname(value)} {value!r}")
        return value

    def number(
        self, key: str, default: Any = ..., low: float | None = None, high: float | None = None
    ) -> Any:
        value = self.get(key, float, default)
        if value is default and key not in self.table:
            return value
        if low is not None and value < low:
            raise self.error(key, f"must be >= {low}, got {value}")
        if high is not None and value > high:
            raise self.error(key, f"must be <= {high}, got {value}")
        return value

    def sub(self, key: str, index: int | None = None) -> Fields:
        value = self.table[key] if index is None else self.table[key][index]
        return Fields(value, self._key(key) + (f"[{index}]" if index is not None else ""), self.where)

    def done(self) -> None:
        extra = sorted(set(self.table) - self.seen)
        if extra:
            raise self.error(extra[0], "unknown field")


def _tname(value: Any) -> str:
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _node_list(nodes: tuple[str, ...]) -> str:
    if all(n == f"n{i}" for i, n in enumerate(nodes, 1)):
        return f"n1..n{len(nodes)}"
    return ", ".join(nodes)


def parse_latency(f: Fields, key: str) -> Latency:
    """A latency table such as ``{ dist = "uniform", low = 0.001, high = 0.01 }``."""
    f.get(key, dict)
    t = f.sub(key)
    dist = t.get("dist", str)
    if dist not in LATENCY_PARAMS:
        raise t.error("dist", f"unknown distribution {dist!r} (one of {', '.join(LATENCY_PARAMS)})")
    cls, names = LATENCY_PARAMS[dist]
    low = None if dist == "lognormal" else 0.0
    values = [t.number(n, low=low) for n in names]
    t.done()
    if dist == "uniform" and values[0] > values[1]:
        raise t.error("high", f"must be >= low ({values[0]}), got {values[1]}")
    latency: Latency = cls(*values)
    return latency


def _check_node(f: Fields, key: str, nodes: tuple[str, ...]) -> str:
    node: str = f.get(key, str)
    if node not in nodes:
        raise f.error(key, f"unknown node {node!r} (nodes are {_node_list(nodes)})")
    return node


def _parse_network(f: Fields, nodes: tuple[str, ...]) -> NetworkConfig:
    kw: dict[str, Any] = {}
    if f.has("latency"):
        kw["latency"] = parse_latency(f, "latency")
    for key in ("loss", "duplicate", "reorder"):
        if f.has(key):
            kw[key] = f.number(key, low=0.0, high=1.0)
    if f.has("reorder_delay"):
        kw["reorder_delay"] = f.number("reorder_delay", low=0.0)
    links = []
    for i in range(len(f.get("links", list, []))):
        lk = f.sub("links", i)
        src, dst = _check_node(lk, "from", nodes), _check_node(lk, "to", nodes)
        latency = parse_latency(lk, "latency") if lk.has("latency") else None
        loss = lk.number("loss", None, 0.0, 1.0)
        lk.done()
        links.append(LinkConfig(src, dst, latency, loss))
    f.done()
    return NetworkConfig(links=tuple(links), **kw)


def _parse_fault(f: Fields, nodes: tuple[str, ...], duration: float) -> Fault:
    at = f.number("at", low=0.0)
    if at > duration:
        raise f.error("at", f"fault time {at} is outside the run (duration {duration})")
    action = f.get("action", str)
    if action not in ACTIONS:
        raise f.error("action", f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
    required, optional = ACTIONS[action]
    for key in required:
        if not f.has(key):
            raise f.error(key, f"missing required field for action {action!r}")
    kw: dict[str, Any] = {}
    for key in required + optional:
        if not f.has(key):
            continue
        if key == "node":
            kw["node"] = _check_node(f, key, nodes)
        elif key in ("from", "to"):
            kw["src" if key == "from" else "dst"] = _check_node(f, key, nodes)
        elif key == "by":
            kw["by"] = f.number("by")
        elif key == "value":
            kw["value"] = f.number("value", low=0.0, high=1.0)
        elif key == "groups":
            kw["groups"] = _parse_groups(f, nodes)
    if ("src" in kw) != ("dst" in kw):
        raise f.error("to" if "src" in kw else "from", "give both from and to, or neither")
    f.done()
    return Fault(at, action, **kw)


def _parse_late(f: Fields, nodes: tuple[str, ...]) -> tuple[str, ...]:
    late = f.get("late", list, [])
    for i, n in enumerate(late):
        if type(n) is not str:
            raise f.error(f"late[{i}]", f"expected a node id, got {_tname(n)} {n!r}")
        if n not in nodes:
            raise f.error(f"late[{i}]", f"unknown node {n!r} (nodes are {_node_list(nodes)})")
        if n in late[:i]:
            raise f.error(f"late[{i}]", f"node {n!r} is listed twice")
    return tuple(late)


def _parse_groups(f: Fields, nodes: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    groups = f.get("groups", list)
    out: list[tuple[str, ...]] = []
    seen: set[str] = set()
    for i, group in enumerate(groups):
        if type(group) is not list or not all(type(n) is str for n in group):
            raise f.error(f"groups[{i}]", "expected an array of node ids")
        for n in group:
            if n not in nodes:
                raise f.error(f"groups[{i}]", f"unknown node {n!r} (nodes are {_node_list(nodes)})")
            if n in seen:
                raise f.error(f"groups[{i}]", f"node {n!r} is in two groups")
            seen.add(n)
        out.append(tuple(group))
    if not out:
        raise f.error("groups", "expected at least one group")
    return tuple(out)


def parse_scenario(data: Mapping[str, Any], where: str = "<scenario>") -> Scenario:
    """Validate a scenario given as a TOML-shaped mapping.

    Raises:
        ScenarioError: anything wrong, with a one-line message naming the field.
    """
    from .systems import SYSTEMS

    f = Fields(dict(data), "", where)
    name = f.get("name", str)
    description = f.get("description", str, "")
    system_name = f.get("system", str)
    if system_name not in SYSTEMS:
        raise f.error("system", f"unknown system {system_name!r} (one of {', '.join(SYSTEMS)})")
    system = SYSTEMS[system_name]
    raw_nodes = f.get("nodes", (int, list))
    if type(raw_nodes) is int:
        if raw_nodes < 1:
            raise f.error("nodes", f"must be >= 1, got {raw_nodes}")
        nodes = tuple(f"n{i}" for i in range(1, raw_nodes + 1))
    else:
        if not raw_nodes or not all(type(n) is str and n for n in raw_nodes):
            raise f.error("nodes", "expected a non-empty array of node ids")
        if len(set(raw_nodes)) != len(raw_nodes):
            raise f.error("nodes", "node ids must be distinct")
        nodes = tuple(raw_nodes)
    late = _parse_late(f, nodes)
    duration = f.number("duration")
    if duration <= 0:
        raise f.error("duration", f"must be > 0, got {duration}")
    codec_checks = f.get("codec_checks", bool, True)
    f.get(system_name, dict, {})
    params = system.parse(f.sub(system_name) if f.has(system_name) else Fields({}, system_name, where))
    network = NetworkConfig()
    if f.has("network"):
        f.get("network", dict)
        network = _parse_network(f.sub("network"), nodes)
    clocks: dict[str, ClockConfig] = {}
    for i in range(len(f.get("clocks", list, []))):
        c = f.sub("clocks", i)
        node = _check_node(c, "node", nodes)
        if node in clocks:
            raise c.error("node", f"clock of {node!r} given twice")
        clocks[node] = ClockConfig(c.number("offset", 0.0), c.number("drift", 0.0, -0.1, 0.1))
        c.done()
    job_types: dict[str, JobSpec] = {}
    # The job engine's own table is [jobs]: it describes its job types itself (see job_model).
    for i in range(len(f.get("jobs", list, [])) if system_name != "jobs" else 0):
        j = f.sub("jobs", i)
        jt = j.get("type", str)
        dur = parse_latency(j, "duration") if j.has("duration") else JobSpec().duration
        job_types[jt] = JobSpec(dur, j.number("failure", 0.0, 0.0, 1.0))
        j.done()
    model = getattr(params, "job_model", None)
    faults = tuple(
        _parse_fault(f.sub("faults", i), nodes, duration) for i in range(len(f.get("faults", list, [])))
    )
    f.done()
    return Scenario(
        name=name,
        system=system_name,
        nodes=nodes,
        duration=duration,
        params=params,
        description=description,
        codec_checks=codec_checks,
        network=network,
        clocks=clocks,
        jobs=model if isinstance(model, JobModel) else JobModel(job_types),
        faults=faults,
        source=where,
        late=late,
    )


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate the TOML scenario at ``path``.

    Raises:
        ScenarioError: unreadable file, bad TOML or a bad field (one-line message).
    """
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ScenarioError(f"{where}: cannot read: {e.strerror or e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{where}: invalid TOML: {e}") from None
    return parse_scenario(data, where)
