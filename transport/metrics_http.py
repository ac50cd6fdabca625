"""The node's ``/metrics`` endpoint: a small trio HTTP/1.1 server, and the store sampler beside it.

How it works
------------
:func:`serve_metrics` binds ``METRICS_PORT`` on ``SERVER_HOST`` (port 0: any free port; the
real one goes to ``task_status`` and on into ``node.ready``), then serves each connection in
its own task: read the request head (at most :data:`MAX_HEAD` bytes within
:data:`REQUEST_TIMEOUT`), answer one response and close. ``GET``/``HEAD /metrics`` returns the
Prometheus text exposition of the node's registry; any other path is 404, any other method
405, a malformed or oversized head 400/431, each with a one-line body. With ``TLS_ENABLED``
the same certificate and key as the node's other listeners serve HTTPS (and with
``TLS_MUTUAL`` a client certificate signed by ``TLS_CA_FILE`` is required); a failed handshake
only closes that connection. No threads: one scrape renders the registry synchronously
(under a millisecond), which is cheaper than handing it to a thread. The endpoint ends by
itself once the node's runtime stops, so it never holds up a graceful stop.

Beside the server, :func:`sample_store` asks the job store for ``stats`` through the node's
gateway every :data:`SAMPLE_INTERVAL` seconds and hands the result to
:meth:`~transport.metrics.NodeMetrics.apply_stats` (a failure keeps the old values and is
counted). After :data:`FAILURES_BEFORE_WARNING` failures in a row it logs one
``metrics.sample_failed`` warning, and ``metrics.sample_recovered`` once a sample succeeds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from .node_services import ServiceStartError
from .tls import TlsError, TlsHandshakeError, server_context, wrap_server

if TYPE_CHECKING:
    import ssl

    from .metrics import NodeMetrics
    from .node_handle import NodeHandle

SAMPLE_INTERVAL = 2.0
"""Seconds between two store samples."""
REQUEST_TIMEOUT = 10.0
"""Seconds a client has to send its request head (TLS handshake included) and read the answer."""
MAX_HEAD = 8192
"""Largest request head, in bytes."""
FAILURES_BEFORE_WARNING = 3
LINGER = 1.0
"""Seconds a plain-HTTP connection waits for the client to close after the answer."""
MAX_DRAIN = 1 << 20
STOP_POLL = 0.1
"""Seconds between two looks at whether the runtime still runs."""
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def serve_metrics(
    handle: NodeHandle, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve ``GET /metrics`` for ``handle.extras["metrics"]`` and sample the store, until the
    node's runtime stops (or this is cancelled).

    Raises:
        OSError: the port cannot be bound (in use, or a bad host).
        ServiceStartError: TLS is on and the certificate or key does not load.
    """
    metrics: NodeMetrics = handle.extras["metrics"]
    metrics.attach(handle)
    settings = handle.settings.service
    try:
        ssl_context = server_context(settings.tls)
    except TlsError as e:
        raise ServiceStartError(f"metrics endpoint: {e}") from None
    listeners = await trio.open_tcp_listeners(settings.metrics.port, host=settings.metrics.host)
    sockname = listeners[0].socket.getsockname()
    host, port = str(sockname[0]), int(sockname[1])

    async def handler(stream: trio.SocketStream) -> None:
        await _serve_one(stream, metrics, ssl_context)

    async with trio.open_nursery() as nursery:
        if handle.settings.job_engine:
            nursery.start_soon(sample_store, handle, metrics)
        nursery.start_soon(trio.serve_listeners, handler, listeners)
        task_status.started((host, port))
        while handle.runtime.running:  # the node is stopping: so does its endpoint
            await trio.sleep(STOP_POLL)
        nursery.cancel_scope.cancel()


async def sample_store(handle: NodeHandle, metrics: NodeMetrics, interval: float | None = None) -> None:
    """Every ``interval`` seconds (default :data:`SAMPLE_INTERVAL`), set the queue depths from
    the store's ``stats`` (see the module docstring)."""
    interval = SAMPLE_INTERVAL if interval is None else interval
    failures = 0
    while True:
        result = await handle.bridge.request({"op": "stats"}, timeout=max(interval, 1.0))
        if metrics.apply_stats(result):
            if failures >= FAILURES_BEFORE_WARNING:
                handle.events.emit(
                    handle.node_id, "metrics", "metrics.sample_recovered", {"failures": failures}
                )
            failures = 0
        else:
            failures += 1
            if failures == FAILURES_BEFORE_WARNING:
                error = result.get("error", "not a stats result") if isinstance(result, dict) else "no result"
                handle.events.emit(
                    handle.node_id,
                    "metrics",
                    "metrics.sample_failed",
                    {"level": "warning", "error": str(error), "failures": failures, "keeping": "old values"},
                )
        await trio.sleep(interval)


async def _serve_one(
    stream: trio.SocketStream, metrics: NodeMetrics, ssl_context: ssl.SSLContext | None
) -> None:
    conn: trio.abc.Stream = stream
    try:
        with trio.move_on_after(REQUEST_TIMEOUT):
            if ssl_context is not None:
                conn = await wrap_server(stream, ssl_context, "metrics client", REQUEST_TIMEOUT)
            head = await _read_head(conn)
            status, body, ctype, head_only = _answer(head, metrics)
            lines = [
                f"HTTP/1.1 {status}",
                f"Content-Type: {ctype}",
                f"Content-Length: {len(body)}",
                "Connection: close",
                "",
                "",
            ]
            await conn.send_all("\r\n".join(lines).encode("latin-1") + (b"" if head_only else body))
        if isinstance(conn, trio.SocketStream):
            await _linger(conn)
    except (TlsHandshakeError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass  # the client went away or does not speak TLS: nothing to answer
    finally:
        with trio.move_on_after(1.0) as closing:
            await conn.aclose()  # TLS: sends close_notify, so the client sees a clean end
        if closing.cancelled_caught:
            await trio.aclose_forcefully(conn)


async def _linger(stream: trio.SocketStream) -> None:
    """Half-close, then read what the client still sends until it closes (for at most
    :data:`LINGER` seconds): closing with unread input makes the kernel reset the connection,
    which can destroy the answer before the client reads it (a refused oversized head)."""
    await stream.send_eof()
    with trio.move_on_after(LINGER):
        drained = 0
        while drained < MAX_DRAIN and (chunk := await stream.receive_some(65536)):
            drained += len(chunk)


async def _read_head(stream: trio.abc.Stream) -> bytes | None:
    """The request head up to its blank line; None if the client closed early or it is too big."""
    data = b""
    while b"\r\n\r\n" not in data and b"\n\n" not in data:
        if len(data) > MAX_HEAD:
            return None
        chunk = await stream.receive_some(4096)
        if not chunk:
            return data or None
        data += chunk
    return data


def _answer(head: bytes | None, metrics: NodeMetrics) -> tuple[str, bytes, str, bool]:
    """``(status line, body, content type, HEAD request)`` for a request head."""
    text_type = "text/plain; charset=utf-8"
    if head is None:
        return (
            "431 Request Header Fields Too Large",
            b"request head too large or incomplete\n",
            text_type,
            False,
        )
    parts = head.split(b"\r\n" if b"\r\n" in head else b"\n", 1)[0].decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return "400 Bad Request", b"malformed request line\n", text_type, False
    method, target = parts[0], parts[1]
    path = target.split("?", 1)[0]
    if path != "/metrics":
        return "404 Not Found", b"not found: metrics are at /metrics\n", text_type, method == "HEAD"
    if method not in ("GET", "HEAD"):
        return "405 Method Not Allowed", b"use GET /metrics\n", text_type, False
    try:
        body = metrics.render()
    except Exception as e:  # a collector's bug must not take the node down: say it, once per scrape
        why = " ".join(f"{type(e).__name__}: {e}".split())
        return "500 Internal Server Error", f"metrics not rendered: {why}\n".encode(), text_type, False
    return "200 OK", body, CONTENT_TYPE, method == "HEAD"
