"""The configuration catalogue: ``.env.example`` is current, its defaults are the real ones, and
every bad value is refused in one line naming the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from transport.cli import build_parser
from transport.config_cli import read_env_file
from transport.node_cli import resolve_settings
from transport.service_settings import NAMES, VARIABLES, ConfigError, env_example

ROOT = Path(__file__).resolve().parents[2]


def _resolve(env: dict[str, str]) -> object:
    return resolve_settings(build_parser().parse_args(["node"]), env)


def test_env_example_in_the_repo_is_the_generated_one() -> None:
    assert (ROOT / ".env.example").read_text() == env_example()


def test_env_example_defaults_are_the_defaults_troupe_node_uses() -> None:
    # Given the example file with only the required node id filled in
    env = read_env_file(ROOT / ".env.example")
    assert set(env) == NAMES
    env["NODE_ID"] = "n1"
    # Then it resolves to exactly what an empty environment gives
    assert _resolve(env) == _resolve({"NODE_ID": "n1"})


def test_every_variable_has_a_flag_of_troupe_node_or_is_env_only() -> None:
    help_text = build_parser().parse_args(["node"])
    flags = {v.flag for v in VARIABLES if v.flag}
    for flag in flags:
        assert hasattr(help_text, flag.lstrip("-").replace("-", "_")), flag


def test_reference_variables_are_all_there() -> None:
    reference = {
        "SERVER_PORT", "SERVER_HOST", "WORKER_COUNT", "NODE_ID", "MONGODB_URI", "MONGODB_DATABASE",
        "MONGODB_TIMEOUT", "REDIS_ADDR", "REDIS_PASSWORD", "REDIS_DB", "ELECTION_ALGORITHM",
        "ELECTION_TIMEOUT", "ELECTION_INTERVAL", "LOAD_BALANCER_STRATEGY", "RETRY_POLICY", "MAX_RETRIES",
        "RETRY_BASE_DELAY", "RETRY_MAX_DELAY", "RETRY_MULTIPLIER", "RETRY_JITTER_FACTOR", "AUTH_ENABLED",
        "JWT_SECRET", "TLS_ENABLED", "TLS_CERT_FILE", "TLS_KEY_FILE", "METRICS_ENABLED", "METRICS_PORT",
    }  # fmt: skip
    assert reference <= NAMES


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"SERVER_PORT": "70000"}, "SERVER_PORT"),
        ({"METRICS_PORT": "http"}, "METRICS_PORT"),
        ({"METRICS_PORT": "8080"}, "METRICS_PORT"),
        ({"HTTP_ENABLED": "maybe"}, "HTTP_ENABLED"),
        ({"HTTP_MAX_BODY": "12"}, "HTTP_MAX_BODY"),
        ({"AUTH_ENABLED": "true"}, "JWT_SECRET"),
        ({"AUTH_ENABLED": "true", "JWT_SECRET": "short"}, "JWT_SECRET"),
        ({"JWT_TTL": "soon"}, "JWT_TTL"),
        ({"TLS_ENABLED": "true"}, "TLS_CERT_FILE"),
        ({"TLS_CERT_FILE": "/nonexistent.pem"}, "TLS_CERT_FILE"),
        ({"MONGODB_URI": "http://db"}, "MONGODB_URI"),
        ({"MONGODB_TIMEOUT": "-1s"}, "MONGODB_TIMEOUT"),
        ({"MONGODB_DATABASE": "a b"}, "MONGODB_DATABASE"),
        ({"TRANSPORT": "carrier-pigeon"}, "TRANSPORT"),
        ({"WORKER_COUNT": "0"}, "WORKER_COUNT"),
        ({"LOAD_BALANCER_STRATEGY": "fastest"}, "LOAD_BALANCER_STRATEGY"),
        ({"RETRY_JITTER_FACTOR": "2"}, "RETRY_JITTER_FACTOR"),
    ],
)
def test_a_bad_value_is_refused_in_one_line_naming_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError) as err:
        _resolve({"NODE_ID": "n1", **env})
    text = str(err.value)
    assert names in text and "\n" not in text


def test_auth_with_a_long_secret_and_tls_files_resolve(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("y")
    env = {
        "NODE_ID": "n1", "AUTH_ENABLED": "yes", "JWT_SECRET": "s" * 40, "TLS_ENABLED": "1",
        "TLS_CERT_FILE": str(cert), "TLS_KEY_FILE": str(key), "SERVER_PORT": "0", "TRANSPORT": "WebSocket",
    }  # fmt: skip
    settings = _resolve(env)
    service = settings.service  # type: ignore[attr-defined]
    assert service.auth.enabled and service.tls.enabled and service.http.port == 0
    assert service.transport == "websocket"


def test_config_check_reports_a_misspelt_variable_in_an_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("NODE_ID=n1\nSERVR_PORT=8081\n")
    run = subprocess.run(
        [sys.executable, "-m", "transport.cli", "config", "check", "--env-file", str(env_file)],
        capture_output=True, text=True, cwd=ROOT, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert run.returncode == 2
    assert "SERVR_PORT" in run.stderr and run.stderr.count("\n") == 1


def test_troupe_node_refuses_the_default_secret_with_auth_on_in_one_line(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "transport.cli", "node", "--id", "n1", "--auth-enabled", "true"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.startswith("troupe node: error: --jwt-secret/JWT_SECRET")
    assert run.stderr.count("\n") == 1


def test_readme_documents_every_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = sorted(v.name for v in VARIABLES if f"`{v.name}`" not in readme)
    assert not missing
