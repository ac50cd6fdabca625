"""The ``/metrics`` endpoint of a real node run in-process (``run_node``, real sockets): what it
answers, HTTPS with the node's certificate, a taken port, and the store sampler riding out a
Redis that is down and then comes up."""

from __future__ import annotations

import socket
import ssl
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme
from prometheus_client.parser import text_string_to_metric_families

import transport.metrics_http as metrics_http
from transport.cli import build_parser
from transport.events import EventLog
from transport.node_cli import resolve_settings, run_node
from transport.redis_server import RedisServer
from transport.server_process import free_port
from transport.testing import NodeProc, node_cmd, poll

Record = dict[str, Any]


def node_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {
        "NODE_ID": "m1",
        "NODE_LISTEN": "127.0.0.1:0",
        "SERVER_HOST": "127.0.0.1",
        "SERVER_PORT": "0",
        "METRICS_PORT": "0",
        "DATA_DIR": str(tmp),
        "STORE": "sqlite",
        "WORKER_COUNT": "2",
        "ELECTION_TIMEOUT": "300ms",
        "ELECTION_INTERVAL": "100ms",
    }
    env.update(extra)
    return env


@asynccontextmanager
async def running_node(env: dict[str, str]) -> AsyncIterator[tuple[EventLog, str]]:
    """A node run in this process; yields its event log and its metrics ``host:port``."""
    settings = resolve_settings(build_parser().parse_args(["node"]), env)
    events = EventLog(keep=100_000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_node, settings, events)
        with trio.fail_after(20):
            while not events.find("node.ready"):
                await trio.sleep(0.02)
        yield events, events.find("node.ready")[0]["metrics"]
        nursery.cancel_scope.cancel()


async def http(address: str, request: bytes, ssl_context: ssl.SSLContext | None = None) -> bytes:
    """Send ``request`` raw and read the answer until the server closes."""
    host, port = address.rsplit(":", 1)
    with trio.fail_after(10):
        if ssl_context is None:
            stream: trio.abc.Stream = await trio.open_tcp_stream(host, int(port))
        else:
            stream = await trio.open_ssl_over_tcp_stream(host, int(port), ssl_context=ssl_context)
        async with stream:
            await stream.send_all(request)
            data = b""
            while chunk := await stream.receive_some(65536):
                data += chunk
    return data


def get(path: str = "/metrics", method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: test\r\nAccept: */*\r\n\r\n".encode()


def samples(answer: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK"), head
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def one(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return found.get((name, frozenset({"node": "m1", **labels}.items())))


async def wait_until(pred: Callable[[], Any], timeout: float = 15.0) -> None:
    with trio.fail_after(timeout):
        while not await pred():
            await trio.sleep(0.1)


async def test_the_endpoint_serves_get_and_head_of_metrics_and_refuses_the_rest(tmp_path: Path) -> None:
    async with running_node(node_env(tmp_path)) as (events, address):
        # Given a node that leads and whose sampler has read the store once
        async def sampled() -> bool:
            found = samples(await http(address, get()))
            return (
                one(found, "queue_depth_gauge", state="pending") == 0 and one(found, "troupe_is_leader") == 1
            )

        await wait_until(sampled)
        answer = await http(address, get())
        head, _, body = answer.partition(b"\r\n\r\n")
        found = samples(answer)
        # Expect the exposition format, with uptime, worker slots and the leader change
        assert b"Content-Type: text/plain; version=0.0.4; charset=utf-8" in head
        assert f"Content-Length: {len(body)}".encode() in head
        assert (one(found, "node_uptime_seconds") or 0) > 0
        assert one(found, "worker_active_gauge", state="idle") == 2
        assert one(found, "election_leader_changes_total") == 1
        assert one(found, "troupe_is_leader") == 1
        # HEAD has the head only; other paths, methods and malformed heads get one-line errors
        head_only = await http(address, get(method="HEAD"))
        assert head_only.startswith(b"HTTP/1.1 200 OK") and head_only.endswith(b"\r\n\r\n")
        answers = {
            "404": await http(address, get("/nothing")),
            "405": await http(address, get(method="POST")),
            "400": await http(address, b"hello there\r\n\r\n"),
            "431": await http(address, b"GET /metrics HTTP/1.1\r\nX: " + b"y" * 20_000 + b"\r\n\r\n"),
        }
        for code, answer in answers.items():
            status, _, rest = answer.partition(b"\r\n")
            assert status.startswith(f"HTTP/1.1 {code} ".encode()), answer[:200]
            assert rest.split(b"\r\n\r\n", 1)[1].count(b"\n") == 1
        # Expect the node still serving, with no warning logged
        assert one(samples(await http(address, get())), "node_uptime_seconds")
        assert not [r for r in events.records if r.get("level") in ("warning", "error")]


async def test_with_tls_the_endpoint_serves_https_with_the_node_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "node.pem", tmp_path / "node.key", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    env = node_env(tmp_path, TLS_ENABLED="true", TLS_CERT_FILE=str(cert_file), TLS_KEY_FILE=str(key_file))
    async with running_node(env) as (_, address):
        client = ssl.create_default_context(cafile=str(ca_file))
        found = samples(await http(address, get(), client))
        assert (one(found, "node_uptime_seconds") or 0) > 0
        # A plain-HTTP client gets no HTTP answer, and the endpoint keeps serving HTTPS
        plain = await http(address, get())
        assert not plain.startswith(b"HTTP/")
        other_ca = ssl.create_default_context()
        trustme.CA().configure_trust(other_ca)
        with pytest.raises(trio.BrokenResourceError) as refused:
            await http(address, get(), other_ca)
        assert isinstance(refused.value.__cause__, ssl.SSLCertVerificationError)
        assert one(samples(await http(address, get(), client)), "node_uptime_seconds")


async def test_a_taken_metrics_port_stops_the_node_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = resolve_settings(
            build_parser().parse_args(["node"]), node_env(tmp_path, METRICS_PORT=str(port))
        )
        events = EventLog(keep=1000)
        with trio.fail_after(20):
            code = await run_node(settings, events)
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("troupe node: error: metrics cannot listen (")
    assert err[0].endswith("choose a free port with METRICS_PORT")
    assert not events.find("node.ready")


async def test_samples_fail_while_redis_is_down_and_resume_when_it_is_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics_http, "SAMPLE_INTERVAL", 0.2)
    port = free_port()
    env = node_env(tmp_path, STORE="redis", REDIS_ADDR=f"127.0.0.1:{port}")
    redis = RedisServer(tmp_path / "redis", port=port)
    try:
        async with running_node(env) as (events, address):
            # Given a node whose Redis store is not running: samples fail, the node serves
            with trio.fail_after(20):
                while not events.find("metrics.sample_failed"):
                    await trio.sleep(0.1)
            failed = events.find("metrics.sample_failed")[0]
            assert failed["level"] == "warning" and failed["failures"] == metrics_http.FAILURES_BEFORE_WARNING
            found = samples(await http(address, get()))
            assert (one(found, "troupe_metrics_sample_errors_total") or 0) >= 3
            assert (one(found, "troupe_store_unavailable_total") or 0) >= 1
            assert one(found, "queue_depth_gauge", state="pending") is None
            # When Redis comes up, samples resume
            await trio.to_thread.run_sync(redis.start)
            with trio.fail_after(20):
                while not events.find("metrics.sample_recovered"):
                    await trio.sleep(0.1)
            found = samples(await http(address, get()))
            assert one(found, "queue_depth_gauge", state="pending") == 0
            assert one(found, "queue_depth_gauge", state="dead") == 0
    finally:
        redis.close()


@pytest.mark.slow
def test_a_node_serving_metrics_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    argv = node_cmd("--id", "m1", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path), "--log-json")
    node = NodeProc("m1", argv, tmp_path, env={"SERVER_HOST": "127.0.0.1", "HTTP_ENABLED": "false"})
    node.start()
    try:
        assert poll(lambda: bool(node.find("node.ready")), 30), node.lines[-20:]
        address = node.find("node.ready")[0]["metrics"]
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as answer:
            assert answer.status == 200 and b'node_uptime_seconds{node="m1"}' in answer.read()
        # When SIGTERM arrives, expect a graceful stop: the endpoint does not hold the node up
        assert node.terminate() == 0, node.lines[-20:]
        assert node.find("node.stopped")
    finally:
        node.kill()
