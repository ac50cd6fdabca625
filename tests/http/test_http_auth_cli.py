"""``troupe auth hash`` and ``troupe auth token``: what they print works with the node's auth,
and bad input is one line with exit code 2."""

from __future__ import annotations

import io
import json

import jwt
import pytest

from transport.cli import main
from transport.http.auth import load_users, verify_password
from transport.service_settings import AuthSettings

SECRET = "s" * 40


def _run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: str, *argv: str
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_hash_prints_what_the_users_settings_take(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(monkeypatch, capsys, "hunter2\n", "auth", "hash")
    assert (
        code == 0 and verify_password("hunter2", out.strip()) and not verify_password("hunter", out.strip())
    )
    code, out, _ = _run(monkeypatch, capsys, "pw\n", "auth", "hash", "--user", "ann", "--role", "user")
    assert code == 0
    users = load_users(AuthSettings(users=out.strip()))
    assert users["ann"].role == "user" and verify_password("pw", users["ann"].password_hash)
    code, out, _ = _run(
        monkeypatch, capsys, "pw\n", "auth", "hash", "--user", "ann", "--role", "admin", "--json"
    )
    entry = json.loads(out)
    assert code == 0 and entry["username"] == "ann" and entry["role"] == "admin"


def test_token_is_signed_for_the_cluster(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JWT_SECRET", SECRET)
    monkeypatch.setenv("CLUSTER_NAME", "prod")
    code, out, _ = _run(
        monkeypatch, capsys, "", "auth", "token", "--user", "w1", "--role", "worker", "--ttl", "5m"
    )
    claims = jwt.decode(out.strip(), SECRET, algorithms=["HS256"], issuer="prod")
    assert code == 0 and claims["sub"] == "w1" and claims["role"] == "worker"
    assert claims["exp"] - claims["iat"] == 300


@pytest.mark.parametrize(
    ("stdin", "argv", "env_secret", "expect"),
    [
        ("\n", ["auth", "hash"], None, "the password is empty"),
        ("pw\n", ["auth", "hash", "--user", "a:b", "--role", "user"], None, "without ':'"),
        ("pw\n", ["auth", "hash", "--user", "ann"], None, "--user and --role together"),
        ("", ["auth", "token", "--user", "w", "--role", "worker"], None, "JWT_SECRET"),
        ("", ["auth", "token", "--user", "w", "--role", "worker"], "short", "32+ characters"),
        ("", ["auth", "token", "--user", "w", "--role", "worker", "--ttl", "soon"], SECRET, "JWT_TTL"),
    ],
)
def test_bad_input_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stdin: str,
    argv: list[str],
    env_secret: str | None,
    expect: str,
) -> None:
    monkeypatch.delenv("JWT_SECRET", raising=False)
    if env_secret is not None:
        monkeypatch.setenv("JWT_SECRET", env_secret)
    code, out, err = _run(monkeypatch, capsys, stdin, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and expect in err, err
