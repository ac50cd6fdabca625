"""Authentication of the HTTP API: users, password hashes, JWT bearer tokens and roles.

How it works
------------
- **Passwords** are stored only as ``scrypt$n$r$p$salt$hash`` (stdlib :func:`hashlib.scrypt`,
  a random 16-byte salt, base64 without padding); :func:`verify_password` recomputes and
  compares in constant time. ``troupe auth hash`` prints one (:mod:`transport.auth_cli`).
- **Users** come from ``AUTH_USERS_FILE`` (a JSON list of ``{"username", "role",
  "password_hash"}``) and ``AUTH_USERS`` (``name:role:hash`` entries separated by commas);
  the reference's demo users (admin/admin123, user/user123, worker/worker123) exist only with
  ``AUTH_DEV_MODE=true``. :func:`load_users` refuses a bad file or entry with one
  :class:`~transport.service_settings.ConfigError` line, so a node can refuse to start on it
  (:func:`check_auth_settings`).
- **Tokens**: ``POST /auth/login`` checks a password (unknown users cost the same hash, so
  timing does not reveal who exists) and issues an HS256 JWT signed with ``JWT_SECRET``:
  ``sub`` (the user), ``role``, ``iat``, ``exp`` (``JWT_TTL`` later) and ``iss`` (the cluster
  name, so a token of another cluster is refused). ``troupe auth token`` mints one offline.
- **Roles** grant permissions (:data:`PERMISSIONS`): ``admin`` everything; ``user`` jobs
  (submit, read, cancel), the dead-letter queue except purge, stats, leader and algorithms;
  ``worker`` the pull API and reading jobs. Routes check them through
  :mod:`transport.http.guard`: no or a bad or expired token is 401 with
  ``WWW-Authenticate: Bearer``, a role without the permission 403. With ``AUTH_ENABLED`` off
  every route is open (the caller counts as an admin); login still works if users exist.

Nothing here imports FastAPI, so ``troupe auth`` (:mod:`transport.auth_cli`) stays light.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import warnings
from dataclasses import dataclass
from typing import Any, Final

import jwt
from jwt.warnings import InsecureKeyLengthWarning

from ..service_settings import AuthSettings, ConfigError
from .api_error import ApiError

ROLES: Final = ("admin", "user", "worker")

PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    "jobs:read": frozenset({"admin", "user", "worker"}),
    "jobs:write": frozenset({"admin", "user"}),
    "jobs:delete": frozenset({"admin"}),
    "dlq:read": frozenset({"admin", "user"}),
    "dlq:requeue": frozenset({"admin", "user"}),
    "dlq:purge": frozenset({"admin"}),
    "stats": frozenset({"admin", "user"}),
    "cluster:read": frozenset({"admin", "user"}),
    "cluster:admin": frozenset({"admin"}),
    "pull": frozenset({"admin", "worker"}),
}
"""Permission -> the roles that hold it."""

DEMO_USERS: Final = (
    ("admin", "admin", "admin123"),
    ("user", "user", "user123"),
    ("worker", "worker", "worker123"),
)
"""``(username, role, password)`` created only with ``AUTH_DEV_MODE=true``."""

SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
_MAX_SCRYPT_MEMORY = 256 * 1024 * 1024
ALGORITHM: Final = "HS256"
CLOCK_LEEWAY: Final = 30.0
"""Seconds of clock difference forgiven on ``iat`` and ``exp``: a token issued by one node is
used on any other."""


# --- password hashes -------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=_MAX_SCRYPT_MEMORY + 1024 * 1024,
        dklen=32,
    )


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``scrypt$n$r$p$salt$hash`` of ``password`` with a fresh random salt."""
    salt = os.urandom(16)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(_scrypt(password, salt, n, r, p))}"


def _parse_hash(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    """``(n, r, p, salt, digest)`` of an encoded hash.

    Raises:
        ValueError: not ``scrypt$n$r$p$salt$hash`` with sane parameters (one line).
    """
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("not a scrypt$n$r$p$salt$hash password hash (make one with: troupe auth hash)")
    if not all(x.isdigit() for x in parts[1:4]):
        raise ValueError("scrypt parameters n, r and p must be whole numbers")
    n, r, p = (int(x) for x in parts[1:4])
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or 128 * n * r > _MAX_SCRYPT_MEMORY:
        raise ValueError(
            f"scrypt parameters n={n} r={r} p={p} out of range (n a power of 2, 128*n*r <= 256 MiB)"
        )
    try:
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        raise ValueError("salt and hash must be base64") from None
    if len(salt) < 8 or len(digest) < 16:
        raise ValueError("salt or hash too short")
    return n, r, p, salt, digest


def hash_problem(encoded: str) -> str | None:
    """What is wrong with an encoded password hash, or None if it is usable."""
    try:
        _parse_hash(encoded)
    except ValueError as e:
        return str(e)
    return None


def verify_password(password: str, encoded: str) -> bool:
    """True if ``password`` matches ``encoded`` (constant-time compare; False if malformed)."""
    try:
        n, r, p, salt, digest = _parse_hash(encoded)
    except ValueError:
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p)[: len(digest)], digest)


# --- users -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class User:
    """Someone who can log in: a name, a role and a password hash."""

    username: str
    role: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class Principal:
    """Whoever made a request: the token's subject and role."""

    username: str
    role: str


def _user(username: Any, role: Any, password_hash: Any, where: str) -> User:
    if not isinstance(username, str) or not username.strip() or ":" in username or "," in username:
        raise ConfigError(f"{where}: username must be a non-empty string without ':' or ','")
    if role not in ROLES:
        raise ConfigError(f"{where}: role {role!r} unknown; use one of {', '.join(ROLES)}")
    if not isinstance(password_hash, str):
        raise ConfigError(f"{where}: password_hash must be a string (make one with: troupe auth hash)")
    problem = hash_problem(password_hash)
    if problem:
        raise ConfigError(f"{where}: {problem}")
    return User(username.strip(), role, password_hash)


def _from_file(path: Any) -> list[User]:
    where = f"AUTH_USERS_FILE={str(path)!r}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{where}: cannot read it ({e.strerror or e})") from None
    except ValueError as e:
        raise ConfigError(f"{where}: not valid JSON ({' '.join(str(e).split())})") from None
    if not isinstance(data, list):
        raise ConfigError(f'{where}: must be a JSON list of {{"username", "role", "password_hash"}}')
    users = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: entry {i + 1} must be an object")
        unknown = set(entry) - {"username", "role", "password_hash"}
        if unknown:
            raise ConfigError(f"{where}: entry {i + 1} has unknown field {sorted(unknown)[0]!r}")
        users.append(
            _user(
                entry.get("username"), entry.get("role"), entry.get("password_hash"), f"{where} entry {i + 1}"
            )
        )
    return users


def _from_variable(text: str) -> list[User]:
    users = []
    for i, item in enumerate(p for p in text.split(",") if p.strip()):
        parts = item.strip().split(":", 2)
        where = f"AUTH_USERS entry {i + 1}"
        if len(parts) != 3:
            raise ConfigError(f"{where}: must be name:role:hash (hash from: troupe auth hash)")
        users.append(_user(parts[0], parts[1], parts[2], where))
    return users


def load_users(auth: AuthSettings) -> dict[str, User]:
    """Every user who can log in, by name (see the module docstring).

    Raises:
        ConfigError: an unreadable or malformed users file or entry, an unknown role, a bad
            hash, or a user given twice (one line naming the file or entry).
    """
    users: dict[str, User] = {}
    listed = _from_file(auth.users_file) if auth.users_file is not None else []
    listed += _from_variable(auth.users)
    for user in listed:
        if user.username in users:
            raise ConfigError(f"AUTH_USERS_FILE/AUTH_USERS: user {user.username!r} is given twice")
        users[user.username] = user
    if auth.dev_mode:
        for name, role, password in DEMO_USERS:
            users.setdefault(name, User(name, role, hash_password(password)))
    return users


def check_auth_settings(auth: AuthSettings) -> None:
    """Refuse bad users settings at start (raises :class:`ConfigError`; see :func:`load_users`)."""
    load_users(auth)


# --- tokens ----------------------------------------------------------------------------------


class Authenticator:
    """Logs users in and checks bearer tokens for one node (see the module docstring)."""

    def __init__(self, settings: AuthSettings, issuer: str, users: dict[str, User] | None = None) -> None:
        self.settings = settings
        self.enabled = settings.enabled
        self.issuer = issuer
        self.users = load_users(settings) if users is None else users
        self._dummy_hash = hash_password("not a password", n=SCRYPT_N)

    def login(self, username: str, password: str) -> User | None:
        """The user if ``password`` is theirs, else None (same cost for unknown users)."""
        user = self.users.get(username)
        ok = verify_password(password, user.password_hash if user else self._dummy_hash)
        return user if ok and user is not None else None

    def issue(self, username: str, role: str, now: float | None = None) -> tuple[str, int]:
        """A signed token for ``username`` with ``role`` and its lifetime in seconds."""
        return issue_token(
            self.settings.jwt_secret, self.issuer, username, role, self.settings.token_ttl, now
        )

    def verify(self, token: str) -> Principal:
        """The principal a bearer token stands for.

        Raises:
            ApiError: 401 for a malformed, forged, expired or foreign token.
        """
        try:
            claims = jwt.decode(
                token,
                self.settings.jwt_secret,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                leeway=CLOCK_LEEWAY,
                options={"require": ["exp", "iat", "sub", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("token expired; log in again", "invalid_token") from None
        except jwt.InvalidIssuerError:
            raise unauthorized("token issued for another cluster", "invalid_token") from None
        except (jwt.InvalidTokenError, ValueError, TypeError) as e:
            raise unauthorized(f"invalid token ({type(e).__name__})", "invalid_token") from None
        role, sub = claims.get("role"), claims.get("sub")
        if role not in ROLES or not isinstance(sub, str):
            raise unauthorized("invalid token (bad role or subject)", "invalid_token")
        return Principal(sub, role)


def issue_token(
    secret: str, issuer: str, username: str, role: str, ttl: float, now: float | None = None
) -> tuple[str, int]:
    """An HS256 token (``sub``, ``role``, ``iat``, ``exp``, ``iss``) and its lifetime in seconds."""
    at = int(time.time() if now is None else now)
    lifetime = max(1, int(ttl))
    claims = {"sub": username, "role": role, "iat": at, "exp": at + lifetime, "iss": issuer}
    with warnings.catch_warnings():
        # With auth off the secret may be the short placeholder: tokens are then never checked.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, secret, algorithm=ALGORITHM), lifetime


def unauthorized(message: str, error: str | None = None) -> ApiError:
    """A 401 answer with the ``WWW-Authenticate: Bearer`` challenge (RFC 6750)."""
    challenge = f'Bearer error="{error}"' if error else "Bearer"
    return ApiError(401, message, {"WWW-Authenticate": challenge})
