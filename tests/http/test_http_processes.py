"""The HTTP API of real ``troupe node`` processes: the reference's curl flow against a single
node (SQLite store), and start-up refusals in one line (a default JWT secret, a bad users
file, an HTTP port in use). Every process is killed in a ``finally``."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from transport.cluster import free_ports
from transport.testing import NodeProc, child_env, node_cmd, poll


def _argv(tmp: Path, port: int, *extra: str) -> list[str]:
    return node_cmd(
        "--id", "n1", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp), "--log-json",
        "--store", "sqlite", "--election-timeout", "300ms", "--election-interval", "100ms",
        "--jobs-module", "transport.demo_jobs", *extra,
    )  # fmt: skip


def http_url(node: NodeProc, timeout: float = 30) -> str:
    """``http://127.0.0.1:<port>`` of a node once it printed ``node.ready``."""
    assert poll(lambda: bool(node.find("node.ready")), timeout), "\n".join(node.lines[-20:])
    port = node.find("node.ready")[0]["http"].rpartition(":")[2]
    return f"http://127.0.0.1:{port}"


def healthy(base: str) -> bool:
    """True once the node at ``base`` answers ``/health`` with ``ok``."""
    try:
        return bool(httpx.get(f"{base}/health", timeout=10).json()["status"] == "ok")
    except httpx.HTTPError:
        return False


@pytest.fixture
def single(tmp_path: Path) -> Iterator[NodeProc]:
    node = NodeProc("n1", _argv(tmp_path, free_ports(1)[0]), tmp_path)
    try:
        node.start()
        yield node
    finally:
        node.kill()


def _curl(*args: str) -> tuple[int, Any]:
    out = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=30, check=True
    )
    body, _, code = out.stdout.rpartition("\n")
    return int(code), json.loads(body)


@pytest.mark.slow
def test_the_reference_curl_flow(single: NodeProc) -> None:
    base = http_url(single)
    assert poll(lambda: healthy(base), 30), "\n".join(single.lines[-20:])
    # Create a job (the reference's README, byte for byte apart from the host)
    code, job = _curl(
        "-X", "POST", f"{base}/api/v1/jobs",
        "-H", "Content-Type: application/json",
        "-d", """{
    "type": "email",
    "priority": 5,
    "payload": {
      "recipient": "user@example.com",
      "subject": "Test Job"
    },
    "max_retries": 3
  }""",
    )  # fmt: skip
    assert code == 201, job
    assert job["type"] == "email" and job["priority"] == 5 and job["max_retries"] == 3
    assert job["payload"] == {"recipient": "user@example.com", "subject": "Test Job"}
    assert job["status"] in ("PENDING", "RUNNING", "RETRYING") and len(job["id"]) == 32
    # Check system status
    code, stats = _curl(f"{base}/api/v1/stats")
    assert code == 200 and stats["total"] == 1 and stats["node_id"] == "n1" and stats["leader"] == "n1"
    # View health status
    code, health = _curl(f"{base}/health")
    assert code == 200 and health["status"] == "ok" and health["store_reachable"] is True
    # The job is there through GET too, and the OpenAPI document lists the reference's routes
    code, again = _curl(f"{base}/api/v1/jobs/{job['id']}")
    assert code == 200 and again["id"] == job["id"]
    # and the email is sent: the job succeeds on its first attempt
    assert poll(lambda: _curl(f"{base}/api/v1/jobs/{job['id']}")[1]["status"] == "SUCCESS", 15)
    paths = httpx.get(f"{base}/openapi.json").json()["paths"]
    for path in ("/api/v1/jobs", "/api/v1/jobs/{job_id}", "/api/v1/stats", "/health", "/auth/login"):
        assert path in paths, path
    # SIGTERM stops the node, HTTP server included, at once and cleanly
    assert single.terminate() == 0 and single.find("node.stopped")


def _refused(tmp: Path, env: dict[str, str], *extra: str) -> tuple[int, str]:
    proc = subprocess.run(
        _argv(tmp, free_ports(1)[0], *extra), env=child_env(**env), cwd=tmp, capture_output=True, timeout=60
    )
    return proc.returncode, proc.stderr.decode()


@pytest.mark.slow
def test_a_default_or_short_secret_is_refused_at_start(tmp_path: Path) -> None:
    code, err = _refused(tmp_path, {"AUTH_ENABLED": "true"})
    assert code == 2 and err.count("\n") == 1 and "JWT_SECRET" in err and "default" in err, err
    code, err = _refused(tmp_path, {"AUTH_ENABLED": "true", "JWT_SECRET": "short"})
    assert code == 2 and err.count("\n") == 1 and "at least 32" in err, err


@pytest.mark.slow
def test_a_bad_users_file_is_refused_at_start(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    users.write_text('[{"username": "alice", "role": "root", "password_hash": "x"}]')
    env = {"AUTH_ENABLED": "true", "JWT_SECRET": "x" * 40, "AUTH_USERS_FILE": str(users)}
    code, err = _refused(tmp_path, env)
    assert code == 2 and err.count("\n") == 1, err
    assert "AUTH_USERS_FILE" in err and "role 'root' unknown" in err, err


@pytest.mark.slow
def test_an_http_port_in_use_is_refused_at_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = _refused(tmp_path, {"SERVER_PORT": str(port), "SERVER_HOST": "127.0.0.1"})
    assert code == 1 and err.count("\n") == 1 and "SERVER_PORT" in err, err
