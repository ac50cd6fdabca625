"""A real node in the test's own trio run, serving its HTTP API on a real socket.

The ``start_node`` fixture gives ``start_node(env, *flags, pool=True)``, an async context
manager that builds the node exactly as ``troupe node`` resolves it (the same flags and
variables), over the in-memory transport with the ``memory`` job store and a Bully
election (a single node leads at once), with its built-in worker pool unless ``pool=False``
(then only pull workers run jobs), starts the pull-worker registry and
:func:`transport.http.server.serve_http` on ``127.0.0.1:0``, and yields the base URL and the
node's handle. Every part is real; only the link to other nodes is in memory (there are none).
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio

from actors import Actor
from actors.jobs.messages import WORKER
from transport.cli import build_parser
from transport.events import EventLog
from transport.gateway_bridge import GatewayBridge
from transport.http.server import serve_http
from transport.memory import MemoryHub
from transport.node_cli import node_blueprint, resolve_settings, serve_store
from transport.node_handle import NodeHandle
from transport.processors import load_modules, registry
from transport.pull_workers import PullWorkers
from transport.runtime import NodeRuntime


@dataclass
class Node:
    url: str
    handle: NodeHandle

    def client(self, token: str | None = None, **kwargs: object) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=20, **kwargs)  # type: ignore[arg-type]


@asynccontextmanager
async def serve_node(
    tmp_path: Path, env: Mapping[str, str] | None = None, *flags: str, pool: bool = True
) -> AsyncIterator[Node]:
    argv = [
        "node", "--id", "n1", "--listen", "127.0.0.1:7999", "--data-dir", str(tmp_path),
        "--store", "memory", "--election", "bully", "--election-timeout", "1s",
        "--election-interval", "200ms",
        "--http-host", "127.0.0.1", "--http-port", "0", "--jobs-module", "transport.demo_jobs",
        "--worker-heartbeat", "300ms", "--worker-offline-after", "1s", *flags,
    ]  # fmt: skip
    if not pool:  # no pool, no fast lane into it
        argv += ["--fast-lane-slots", "0"]
    settings = resolve_settings(build_parser().parse_args(argv), dict(env or {}))
    load_modules(settings.job_modules)
    events = EventLog()
    transport = MemoryHub().transport("n1")
    blueprint = node_blueprint(settings)
    if not pool:  # no built-in worker pool: jobs go to pull workers only

        def without_pool(node_id: str) -> dict[str, Actor]:
            return {k: v for k, v in node_blueprint(settings)(node_id).items() if k != WORKER}

        blueprint = without_pool
    runtime = NodeRuntime("n1", blueprint, transport, data_dir=tmp_path, events=events, processors=registry())
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.serve)
        nursery.start_soon(serve_store, runtime, settings)
        handle = NodeHandle(settings, runtime, events, transport, GatewayBridge(runtime), time.time())
        await nursery.start(handle.bridge.run)
        pull = PullWorkers(handle)
        handle.extras["pull"] = pull
        await nursery.start(pull.run)
        host, port = await nursery.start(serve_http, handle)
        node = Node(f"http://{host}:{port}", handle)
        with trio.fail_after(10):
            async with node.client() as http:
                while (await http.get("/health")).json()["status"] != "ok":
                    await trio.sleep(0.05)
        try:
            yield node
        finally:
            runtime.stop()
            nursery.cancel_scope.cancel()


@pytest.fixture
def start_node(tmp_path: Path) -> Callable[..., AbstractAsyncContextManager[Node]]:
    """``async with start_node(env, *flags) as node:`` (see the module docstring)."""
    return functools.partial(serve_node, tmp_path)
