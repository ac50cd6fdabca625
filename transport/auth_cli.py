"""``troupe auth``: password hashes for the users settings, and bearer tokens made offline.

- ``troupe auth hash`` reads a password (asked twice on a terminal, else the first line of
  stdin) and prints its ``scrypt$n$r$p$salt$hash``; with ``--user NAME --role ROLE`` it prints
  an ``AUTH_USERS`` entry ``NAME:ROLE:HASH`` instead, with ``--json`` an entry of the
  ``AUTH_USERS_FILE`` list.
- ``troupe auth token --user NAME --role ROLE`` prints a bearer token signed with
  ``JWT_SECRET`` (``--jwt-secret``) for ``CLUSTER_NAME`` (``--cluster``), valid ``JWT_TTL``
  (``--ttl``, default 1h): for a worker or a script that has no password to log in with.

Errors (an empty password, passwords that differ, a default or short secret, an unknown role)
are one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from .http.auth import ROLES, hash_password, issue_token
from .service_settings import DEFAULT_JWT_SECRET, MIN_SECRET_LENGTH, ConfigError, parse_seconds


class _Refused(Exception):
    pass


def _read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise _Refused("the two passwords differ")
    if not password:
        raise _Refused("the password is empty")
    return password


def _check_user(user: str | None, role: str | None) -> None:
    if (user is None) != (role is None):
        raise _Refused("give --user and --role together")
    if user is not None and (not user.strip() or ":" in user or "," in user):
        raise _Refused(f"--user {user!r}: a non-empty name without ':' or ','")
    if role is not None and role not in ROLES:
        raise _Refused(f"--role {role!r}: choose one of {', '.join(ROLES)}")


def cmd_hash(args: argparse.Namespace) -> int:
    """Entry point of ``troupe auth hash``."""
    try:
        _check_user(args.user, args.role)
        encoded = hash_password(_read_password(args.password_stdin))
    except _Refused as e:
        print(f"troupe auth hash: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        entry = {"username": args.user, "role": args.role, "password_hash": encoded}
        print(json.dumps({k: v for k, v in entry.items() if v is not None}))
    elif args.user is not None:
        print(f"{args.user}:{args.role}:{encoded}")
    else:
        print(encoded)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Entry point of ``troupe auth token``."""
    secret = args.jwt_secret if args.jwt_secret is not None else os.environ.get("JWT_SECRET", "")
    cluster = args.cluster or os.environ.get("CLUSTER_NAME") or "troupe"
    try:
        _check_user(args.user, args.role)
        if secret in ("", DEFAULT_JWT_SECRET) or len(secret) < MIN_SECRET_LENGTH:
            raise _Refused(
                f"--jwt-secret/JWT_SECRET: give the cluster's secret ({MIN_SECRET_LENGTH}+ characters, "
                "not the default placeholder)"
            )
        ttl = parse_seconds(args.ttl or os.environ.get("JWT_TTL"), "JWT_TTL", 3600.0)
    except (_Refused, ConfigError) as e:
        print(f"troupe auth token: error: {e}", file=sys.stderr)
        return 2
    token, _ = issue_token(secret, cluster, args.user, args.role, ttl)
    print(token)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``troupe auth hash`` and ``troupe auth token``."""
    p = subparsers.add_parser("auth", help="password hashes for AUTH_USERS, and bearer tokens")
    sub = p.add_subparsers(dest="auth_command", required=True, metavar="ACTION")
    h = sub.add_parser("hash", help="print the scrypt hash of a password (read from the terminal or stdin)")
    h.add_argument("--user", metavar="NAME", help="print an AUTH_USERS entry NAME:ROLE:HASH")
    h.add_argument("--role", choices=ROLES, help="the user's role (with --user)")
    h.add_argument("--json", action="store_true", help="print an AUTH_USERS_FILE entry (JSON)")
    h.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    h.set_defaults(func=cmd_hash)
    t = sub.add_parser("token", help="print a bearer token signed with JWT_SECRET")
    t.add_argument("--user", metavar="NAME", required=True, help="the token's subject")
    t.add_argument("--role", choices=ROLES, required=True, help="the token's role")
    t.add_argument("--ttl", metavar="DURATION", help="lifetime such as 30m or 2h (JWT_TTL, default 1h)")
    t.add_argument("--cluster", metavar="NAME", help="the cluster it is for (CLUSTER_NAME, default troupe)")
    t.add_argument("--jwt-secret", metavar="SECRET", help="the signing secret (prefer JWT_SECRET)")
    t.set_defaults(func=cmd_token)
