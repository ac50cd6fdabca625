"""Test tools for real node processes: start ``troupe node`` OS processes and read their events.

Shipped with the library (like the simulator and the memory transport) so users can write the
same kind of tests against their own clusters::

    node = NodeProc("n1", node_cmd("--id", "n1", "--log-json", ...), tmp_path)
    node.start()
    assert poll(lambda: node.find("node.ready"))
    node.kill()        # SIGKILL

Each node prints one JSON event per line (``--log-json``); a thread per process reads them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]


def node_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "transport.cli", "node", *args]


_NODE_PREFIXES = (
    "NODE_", "HEARTBEAT_", "CLUSTER_", "SERVER_", "HTTP_", "METRICS_", "AUTH_", "JWT_", "TLS_",
    "MONGODB_", "TRANSPORT", "STORE", "REDIS_", "ELECTION_", "WORKER_", "RETRY_", "MAX_RETRIES",
    "FAST_LANE_", "DIRECT_LANE_",
)  # fmt: skip


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_NODE_PREFIXES)}
    # Many nodes share this host in tests: ephemeral HTTP and metrics ports unless given.
    env["SERVER_PORT"] = "0"
    env["METRICS_PORT"] = "0"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class NodeProc:
    """One node process and the JSON records it printed (read by a thread); ``env`` adds
    environment variables to the child's."""

    def __init__(self, node_id: str, argv: list[str], tmp: Path, env: Mapping[str, str] | None = None):
        self.node_id = node_id
        self.argv = argv
        self.tmp = tmp
        self.env = dict(env or {})
        self.records: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=child_env(**self.env),
            cwd=self.tmp,
        )
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        with stream:
            self._read_lines(stream)

    def _read_lines(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                self.lines.append(line)
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict):
                    self.records.append(rec)

    def find(self, kind: str, since: float = 0.0, **match: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [
                r
                for r in self.records
                if r.get("kind") == kind
                and r["time"] >= since
                and all(r.get(k) == v for k, v in match.items())
            ]

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(10)
            self._reader.join(10)  # it closes the pipe at EOF

    def terminate(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(10)
        return self.proc.returncode


def poll(pred: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def cluster_procs(
    ids: list[str], tmp: Path, *args: str, env: Mapping[str, str] | None = None
) -> dict[str, NodeProc]:
    """One :class:`NodeProc` per id, on free loopback ports, each told of the others
    (``--id``, ``--listen``, ``--peer``); ``args`` are more flags for every node."""
    from .cluster import free_ports

    ports = dict(zip(ids, free_ports(len(ids)), strict=True))
    procs: dict[str, NodeProc] = {}
    for nid in ids:
        argv = node_cmd("--id", nid, "--listen", f"127.0.0.1:{ports[nid]}", *args)
        for other in ids:
            if other != nid:
                argv += ["--peer", f"{other}=127.0.0.1:{ports[other]}"]
        procs[nid] = NodeProc(nid, argv, tmp, env)
    return procs


@contextlib.contextmanager
def running(procs: Mapping[str, NodeProc]) -> Iterator[dict[str, NodeProc]]:
    """Start every process; SIGKILL them all on the way out, whatever happened."""
    try:
        for p in procs.values():
            p.start()
        yield dict(procs)
    finally:
        for p in procs.values():
            p.kill()


def agreed_leader(procs: Mapping[str, NodeProc]) -> str | None:
    """The leader every process names in its latest ``leader.changed`` event, if they agree."""
    views = set()
    for p in procs.values():
        seen = p.find("leader.changed")
        if not seen:
            return None
        views.add(seen[-1]["leader"])
    return str(views.pop()) if len(views) == 1 else None


def dump(procs: Mapping[str, NodeProc], lines: int = 15) -> str:
    """The last ``lines`` output lines of every process, prefixed by its id (for failures)."""
    return "\n".join(f"{p.node_id}: {line}" for p in procs.values() for line in p.lines[-lines:])


def listen_address(proc: NodeProc) -> str:
    """The ``host:port`` a node process was told to listen on (``--listen``)."""
    return proc.argv[proc.argv.index("--listen") + 1]
