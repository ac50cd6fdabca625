"""Serving a node's HTTP API: hypercorn's trio worker inside the node's own trio run.

How it works: :func:`serve_http` (started by :func:`transport.node_services.start_services`
with ``nursery.start``) loads the users (:class:`~transport.http.auth.Authenticator`), starts
the node's :class:`~transport.http.cluster_view.ClusterView`, builds the FastAPI app
(:func:`transport.http.app.create_app`) and serves it with ``hypercorn.trio.serve`` on
``SERVER_HOST:SERVER_PORT`` (port 0: any free port), over HTTPS when ``TLS_ENABLED`` is on
(requiring client certificates signed by ``TLS_CA_FILE`` when ``TLS_MUTUAL`` is on). It
reports the address it really bound through ``task_status`` and serves until the node's
runtime stops (then it finishes the requests in flight, for up to a second, and returns) or
until cancelled. The users' hashes and the import of FastAPI and the routes (a few hundred
milliseconds of CPU) run in worker threads, so the node's actors keep answering heartbeats
while the API starts.

A port in use raises :class:`OSError` (the node exits with one line naming ``SERVER_PORT``); a
users file or TLS file that cannot be used raises
:class:`~transport.node_services.ServiceStartError` with one line.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import trio
from hypercorn.config import Config

from ..node_handle import NodeHandle
from ..node_services import ServiceStartError
from ..service_settings import ConfigError, ServiceSettings
from ..tls import TlsError, server_context
from .auth import Authenticator
from .cluster_view import ClusterView

if TYPE_CHECKING:
    from fastapi import FastAPI

    from .state import Api


def _load_app_factory() -> tuple[Callable[[Api], FastAPI], Callable[..., Any], type[Api]]:
    """Import FastAPI, the routes and hypercorn's trio server (a few hundred milliseconds of
    CPU): called in a worker thread, so the node's actors keep answering meanwhile."""
    import hypercorn.trio

    from .app import create_app
    from .state import Api

    return create_app, hypercorn.trio.serve, Api


def hypercorn_config(service: ServiceSettings) -> Config:
    """Hypercorn's settings for the API: bind address, TLS, quiet logs.

    Raises:
        ServiceStartError: a TLS file cannot be used (one line naming the variable).
    """
    config = Config()
    host = service.http.host
    config.bind = [f"[{host}]:{service.http.port}" if ":" in host else f"{host}:{service.http.port}"]
    config.loglevel = "WARNING"
    config.accesslog = None
    config.graceful_timeout = 1.0
    tls = service.tls
    if tls.enabled:
        try:
            server_context(tls)  # every file loads, or one line says which does not
        except TlsError as e:
            raise ServiceStartError(f"HTTP API: {e}") from None
        config.certfile = str(tls.cert_file)
        config.keyfile = str(tls.key_file)
        if tls.mutual:
            config.ca_certs = str(tls.ca_file)
            config.verify_mode = ssl.CERT_REQUIRED
    return config


def _address(bind: str) -> tuple[str, int]:
    parts = urlsplit(bind)
    return parts.hostname or "", parts.port or 0


async def serve_http(
    handle: NodeHandle, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the node's HTTP API until its runtime stops or this is cancelled (module docstring).

    Raises:
        OSError: the address cannot be bound (a port in use).
        ServiceStartError: the users or the TLS files cannot be used.
    """
    service = handle.settings.service
    config = hypercorn_config(service)
    try:
        auth = await trio.to_thread.run_sync(Authenticator, service.auth, handle.settings.cluster)
    except ConfigError as e:
        raise ServiceStartError(f"HTTP API: {e}") from None
    create_app, serve_asgi, api_class = await trio.to_thread.run_sync(_load_app_factory)
    started = False
    try:
        async with trio.open_nursery() as nursery:
            view = ClusterView(handle.runtime)
            stopped = trio.Event()
            await nursery.start(_follow, view, stopped)
            app = create_app(api_class(handle, auth, view))
            serve = functools.partial(serve_asgi, app, config, mode="asgi", shutdown_trigger=stopped.wait)
            binds = await nursery.start(serve)
            task_status.started(_address(binds[0]))
            started = True
    except BaseExceptionGroup as group:
        # Before it serves, the caller wants the one error as itself (OSError: port in use).
        matched, _ = group.split((OSError, ServiceStartError))
        if started or matched is None:
            raise
        raise _first(matched) from None


async def _follow(
    view: ClusterView, stopped: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the cluster view; when it ends (the runtime stopped), tell the server to shut down."""
    try:
        await view.run(task_status=task_status)
    finally:
        stopped.set()


def _first(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
