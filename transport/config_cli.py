"""``troupe config``: the node's configuration variables, as a file and as a check.

- ``troupe config env-example`` prints ``.env.example`` (every variable with its default and
  help, from :data:`transport.service_settings.VARIABLES`);
- ``troupe config check [--env-file FILE]`` reads the environment (and a ``.env`` file, whose
  ``NAME=value`` lines are added under the real environment) exactly as ``troupe node`` would,
  and prints the resolved settings, or the one-line error naming the variable (exit 2).
  Unknown ``NAME=`` lines in the file are reported too: a misspelt variable is otherwise
  silently ignored.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from .service_settings import NAMES, ConfigError, env_example


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of a ``.env`` file (comments and blank lines skipped; quotes removed).

    Raises:
        ConfigError: the file cannot be read, or a line is not ``NAME=value``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"--env-file={str(path)!r}: cannot read it ({e.strerror})") from None
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name.isidentifier():
            raise ConfigError(f"{path}:{number}: expected NAME=value, got {raw.strip()!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[name] = value
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _secret(settings: dict[str, Any]) -> dict[str, Any]:
    service = settings.get("service", {})
    auth = service.get("auth", {})
    if auth.get("jwt_secret"):
        auth["jwt_secret"] = "***"
    redis = settings.get("redis", {})
    if redis.get("password"):
        redis["password"] = "***"
    return settings


def cmd_env_example(args: argparse.Namespace) -> int:
    sys.stdout.write(env_example())
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .cli import build_parser
    from .node_cli import resolve_settings

    env = dict(os.environ)
    try:
        if args.env_file:
            from_file = read_env_file(Path(args.env_file))
            unknown = sorted(set(from_file) - NAMES)
            if unknown:
                raise ConfigError(
                    f"{args.env_file}: unknown variable {unknown[0]} (see troupe config env-example)"
                )
            env = {**from_file, **env}
        node_args = build_parser().parse_args(["node"])
        settings = resolve_settings(node_args, env)
        if settings.job_engine and settings.service.http.enabled:
            from .http.auth import check_auth_settings

            check_auth_settings(settings.service.auth)
    except ConfigError as e:
        print(f"troupe config check: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(_secret(_plain(settings)), indent=2, default=str))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``troupe config env-example`` and ``troupe config check``."""
    p = subparsers.add_parser("config", help="configuration variables: .env.example and a check")
    sub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    ex = sub.add_parser("env-example", help="print .env.example (every variable, default and help)")
    ex.set_defaults(func=cmd_env_example)
    check = sub.add_parser("check", help="resolve the environment as troupe node would; print or refuse it")
    check.add_argument("--env-file", metavar="FILE", help="a .env file (the real environment wins)")
    check.set_defaults(func=cmd_check)
