"""docker/Dockerfile and its healthcheck (no Docker daemon here, and no hadolint: the file is
parsed for what matters, and the healthcheck script is run against real local HTTP servers).

The image must build in two stages from python:3.11-slim, copy only files that exist and that
its .dockerignore lets through, run ``troupe node`` as a non-root user, take its settings from
catalogued environment variables only, expose 8080 9090 7001 and check ``/health``.
"""

from __future__ import annotations

import fnmatch
import http.server
import os
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

from transport.service_settings import NAMES
from transport.testing import ROOT

DOCKER = ROOT / "docker"
HEALTHCHECK = DOCKER / "healthcheck.py"


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuation lines joined."""
    out: list[tuple[str, str]] = []
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last:]


def test_the_image_builds_in_two_slim_stages_and_runs_troupe_node_as_a_user() -> None:
    froms = [args for word, args in instructions() if word == "FROM"]
    assert froms == ["python:3.11-slim AS build", "python:3.11-slim"]
    stage = final_stage()
    words = [w for w, _ in stage]
    users = [args for word, args in stage if word == "USER"]
    assert users and users[-1] not in ("root", "0") and words.index("USER") < words.index("ENTRYPOINT")
    assert ("ENTRYPOINT", '["troupe", "node"]') in stage and "CMD" not in words
    (expose,) = [args for word, args in stage if word == "EXPOSE"]
    assert set(expose.split()) == {"8080", "9090", "7001"}
    (check,) = [args for word, args in stage if word == "HEALTHCHECK"]
    assert "/usr/local/bin/troupe-healthcheck" in check and "--interval=" in check
    assert any(
        w == "COPY" and a == "docker/healthcheck.py /usr/local/bin/troupe-healthcheck" for w, a in stage
    )
    # The console script the entrypoint runs exists
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["troupe"] == "transport.cli:main"


def test_the_image_is_configured_by_catalogued_variables_only() -> None:
    env_keys: set[str] = set()
    for word, args in final_stage():
        if word == "ENV":
            env_keys |= {item.split("=", 1)[0] for item in args.split()}
    assert env_keys - NAMES == {"PYTHONUNBUFFERED"}
    assert {"NODE_LISTEN", "SERVER_PORT", "METRICS_PORT", "DATA_DIR"} <= env_keys


def test_every_copied_file_exists_and_passes_the_dockerignore() -> None:
    patterns = [
        line.strip()
        for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def sent(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            bare = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, bare) or path.startswith(bare + "/"):
                keep = negated
        return keep

    sources = [
        src
        for word, args in instructions()
        if word == "COPY" and not args.startswith("--from")
        for src in args.split()[:-1]
    ]
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), src
        assert sent(src.rstrip("/")), f"{src} is excluded by Dockerfile.dockerignore"
    assert not sent(".venv") and not sent("data") and not sent("tests")


class _Health(http.server.BaseHTTPRequestHandler):
    status: ClassVar[dict[str, int]] = {}

    def do_GET(self) -> None:
        self.send_response(self.status.get(self.path, 404))
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def server(status: dict[str, int]) -> Iterator[int]:
    handler = type("Handler", (_Health,), {"status": status})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def probe(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("SERVER_PORT", "METRICS_PORT", "HTTP_ENABLED")}
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)], env={**clean, **env}, capture_output=True, text=True, timeout=30
    )


def test_the_healthcheck_passes_only_on_a_200_from_health() -> None:
    with server({"/health": 200}) as port:
        ok = probe(SERVER_PORT=str(port))
    assert ok.returncode == 0 and ok.stdout.startswith("healthy: http://127.0.0.1:"), ok
    with server({"/health": 503}) as port:
        sick = probe(SERVER_PORT=str(port))
    assert sick.returncode == 1 and "answered 503" in sick.stdout, sick
    with server({}) as port:
        pass
    down = probe(SERVER_PORT=str(port))
    assert down.returncode == 1 and down.stdout.startswith("unhealthy:") and down.stdout.count("\n") == 1
    # With the HTTP API off, the metrics endpoint is what tells the node is alive
    with server({"/metrics": 200}) as port:
        metrics = probe(HTTP_ENABLED="false", SERVER_PORT="1", METRICS_PORT=str(port))
    assert metrics.returncode == 0 and metrics.stdout.strip().endswith("/metrics"), metrics
