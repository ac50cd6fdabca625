"""JWT auth of the HTTP API on one real node: login, 401 for no, bad, forged, foreign or expired
tokens, 403 for a role without the permission, the pull API for workers, demo users only in
dev mode; and the users settings (hashes, files, entries) refused at start in one line."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from transport.http.auth import hash_password, issue_token, load_users, verify_password
from transport.service_settings import AuthSettings, ConfigError

StartNode = Callable[..., AbstractAsyncContextManager[Any]]
SECRET = "0123456789abcdef0123456789abcdef-test"
AUTH = {"AUTH_ENABLED": "true", "JWT_SECRET": SECRET}


async def _token(http: httpx.AsyncClient, username: str, password: str) -> str:
    r = await http.post("/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    token: str = body["access_token"]
    return token


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_login_and_roles(start_node: StartNode) -> None:
    async with start_node({**AUTH, "AUTH_DEV_MODE": "true"}) as node, node.client() as http:
        # Health needs no token; everything else does
        assert (await http.get("/health")).status_code == 200
        r = await http.get("/api/v1/stats")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert "missing bearer token" in r.json()["error"]

        # Wrong passwords and unknown users are the same 401
        for user, password in (("admin", "nope"), ("nobody", "admin123")):
            r = await http.post("/auth/login", json={"username": user, "password": password})
            assert r.status_code == 401 and r.json() == {"error": "wrong username or password"}

        admin, user, worker = (
            await _token(http, "admin", "admin123"),
            await _token(http, "user", "user123"),
            await _token(http, "worker", "worker123"),
        )
        claims = jwt.decode(admin, SECRET, algorithms=["HS256"], issuer="troupe")
        assert (
            claims["sub"] == "admin" and claims["role"] == "admin" and claims["exp"] - claims["iat"] == 3600
        )

        # A user submits, reads and cancels jobs, sees stats and the leader...
        r = await http.post(
            "/api/v1/jobs", json={"type": "noop", "delay_seconds": 600}, headers=_bearer(user)
        )
        assert r.status_code == 201, r.text
        jid = r.json()["id"]
        for path in ("/api/v1/stats", "/api/v1/leader", f"/api/v1/jobs/{jid}", "/api/v1/dlq"):
            assert (await http.get(path, headers=_bearer(user))).status_code == 200, path
        # ...but may not delete, purge, or see workers and nodes
        for method, path in (
            ("DELETE", f"/api/v1/jobs/{jid}"),
            ("POST", "/api/v1/dlq/purge"),
            ("GET", "/api/v1/workers"),
            ("GET", "/api/v1/nodes"),
            ("GET", "/workers"),
        ):
            r = await http.request(method, path, headers=_bearer(user))
            assert r.status_code == 403 and "role 'user'" in r.json()["error"], (method, path, r.text)

        # A worker reads jobs and uses the pull API, but submits nothing
        assert (await http.get(f"/api/v1/jobs/{jid}", headers=_bearer(worker))).status_code == 200
        r = await http.post("/api/v1/jobs", json={"type": "noop"}, headers=_bearer(worker))
        assert r.status_code == 403
        r = await http.post("/workers/register", json={"hostname": "box-1"}, headers=_bearer(worker))
        assert r.status_code == 200 and r.json()["status"] == "ONLINE"
        assert (await http.get("/workers", headers=_bearer(worker))).status_code == 200

        # The admin does everything
        assert (await http.delete(f"/api/v1/jobs/{jid}", headers=_bearer(admin))).status_code == 200
        assert (await http.get("/api/v1/nodes", headers=_bearer(admin))).status_code == 200
        assert (await http.get("/workers", headers=_bearer(admin))).status_code == 200


async def test_bad_tokens_are_401(start_node: StartNode) -> None:
    async with start_node({**AUTH, "JWT_TTL": "2m"}) as node, node.client() as http:
        good, ttl = issue_token(SECRET, "troupe", "ops", "admin", 120)
        assert ttl == 120
        assert (await http.get("/api/v1/stats", headers=_bearer(good))).status_code == 200
        # a node whose clock is a few seconds ahead of this one made it: still good
        skewed, _ = issue_token(SECRET, "troupe", "ops", "admin", 120, now=time.time() + 10)
        assert (await http.get("/api/v1/stats", headers=_bearer(skewed))).status_code == 200
        expired, _ = issue_token(SECRET, "troupe", "ops", "admin", 60, now=1_000_000)
        forged, _ = issue_token("another-secret-of-at-least-32-characters", "troupe", "ops", "admin", 60)
        foreign, _ = issue_token(SECRET, "other-cluster", "ops", "admin", 60)
        no_role = jwt.encode({"sub": "ops", "iat": 1, "exp": 2**40, "iss": "troupe"}, SECRET)
        none_alg = jwt.encode(
            {"sub": "ops", "role": "admin", "iat": 1, "exp": 2**40, "iss": "troupe"}, None, "none"
        )
        cases = {
            expired: "token expired",
            forged: "invalid token",
            foreign: "another cluster",
            no_role: "invalid token",
            none_alg: "invalid token",
            "garbage": "invalid token",
        }
        for token, why in cases.items():
            r = await http.get("/api/v1/stats", headers=_bearer(token))
            assert r.status_code == 401 and why in r.json()["error"], (token, r.text)
            assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        r = await http.get("/api/v1/stats", headers={"Authorization": "Basic YWRtaW46YWRtaW4xMjM="})
        assert r.status_code == 401 and "malformed" in r.json()["error"]
        # Without AUTH_DEV_MODE the demo users do not exist
        r = await http.post("/auth/login", json={"username": "admin", "password": "admin123"})
        assert r.status_code == 401


async def test_users_from_a_file_and_a_variable(start_node: StartNode, tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    users.write_text(
        json.dumps([{"username": "alice", "role": "admin", "password_hash": hash_password("s3cret!")}])
    )
    env = {**AUTH, "AUTH_USERS_FILE": str(users), "AUTH_USERS": f"bob:worker:{hash_password('pw-bob')}"}
    async with start_node(env) as node, node.client() as http:
        alice = await _token(http, "alice", "s3cret!")
        bob = await _token(http, "bob", "pw-bob")
        assert (await http.get("/api/v1/nodes", headers=_bearer(alice))).status_code == 200
        assert (await http.get("/api/v1/nodes", headers=_bearer(bob))).status_code == 403


async def test_auth_off_leaves_every_route_open(start_node: StartNode) -> None:
    env = {"AUTH_USERS": f"carol:user:{hash_password('pw')}"}
    async with start_node(env) as node, node.client() as http:
        assert (await http.get("/api/v1/nodes")).status_code == 200
        assert (await http.post("/api/v1/dlq/purge")).status_code == 200
        assert (await _token(http, "carol", "pw")).count(".") == 2  # login still works


def test_password_hashes() -> None:
    encoded = hash_password("correct horse")
    assert encoded.startswith("scrypt$16384$8$1$") and encoded.count("$") == 5
    assert encoded != hash_password("correct horse")  # a fresh salt each time
    assert verify_password("correct horse", encoded)
    assert not verify_password("correct hors", encoded)
    assert not verify_password("correct horse", "scrypt$16384$8$1$bad")
    assert not verify_password("x", "plain-text-password")


@pytest.mark.parametrize(
    ("users", "file", "expect"),
    [
        ("alice:admin", None, "AUTH_USERS entry 1: must be name:role:hash"),
        ("alice:root:scrypt$16384$8$1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", None, "role 'root' unknown"),
        ("alice:admin:md5$abc", None, "not a scrypt$n$r$p$salt$hash password hash"),
        ("alice:admin:scrypt$3$8$1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", None, "out of range"),
        ("", "[{]", "not valid JSON"),
        ("", '{"username": "alice"}', "must be a JSON list"),
        ("", '[{"username": "alice", "role": "admin", "password": "x"}]', "unknown field 'password'"),
        (
            "",
            '[{"username": "", "role": "admin", "password_hash": "x"}]',
            "username must be a non-empty string",
        ),
        (
            "alice:user:HASH",
            '[{"username": "alice", "role": "admin", "password_hash": "HASH"}]',
            "given twice",
        ),
    ],
)
def test_bad_users_settings_are_refused_in_one_line(
    tmp_path: Path, users: str, file: str | None, expect: str
) -> None:
    good = hash_password("pw", n=2**10)
    path = None
    if file is not None:
        path = tmp_path / "users.json"
        path.write_text(file.replace("HASH", good))
    with pytest.raises(ConfigError) as e:
        load_users(AuthSettings(users=users.replace("HASH", good), users_file=path))
    assert expect in str(e.value) and "\n" not in str(e.value)


def test_demo_users_only_in_dev_mode() -> None:
    assert load_users(AuthSettings()) == {}
    demo = load_users(AuthSettings(dev_mode=True))
    assert {u.username: u.role for u in demo.values()} == {
        "admin": "admin",
        "user": "user",
        "worker": "worker",
    }
    assert verify_password("worker123", demo["worker"].password_hash)
