"""The node's service settings: HTTP API, auth, TLS, metrics, MongoDB records and the transport.

:func:`resolve_service` reads them from flags and environment variables (a flag wins), checks
every value and raises :class:`ConfigError` with one line naming the flag, the variable and what
is allowed. The variables, their defaults and their help are listed once, in :data:`VARIABLES`
(with those of :mod:`transport.node_cli`), from which ``.env.example`` is written
(``troupe config env-example``) and against which the Docker compose files are checked.

Defaults follow the reference configuration (``SERVER_PORT=8080``, ``METRICS_PORT=9090``,
``AUTH_ENABLED=false``, ``JWT_SECRET=your-secret-key``, ``MONGODB_DATABASE=jobprocessor``,
``MONGODB_TIMEOUT=30s``, ...). A port of ``0`` binds an ephemeral port; the node prints the
real one in its ``node.ready`` event (``http``, ``metrics``).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_JWT_SECRET = "your-secret-key"
"""The reference's placeholder secret: refused at start when ``AUTH_ENABLED`` is on."""
MIN_SECRET_LENGTH = 32
"""Shortest ``JWT_SECRET`` accepted with auth on (HS256 wants at least 256 bits)."""
TRANSPORTS = ("tcp", "websocket", "redis")
"""Values of ``TRANSPORT``: how nodes reach each other (``tcp`` is the default)."""


class ConfigError(ValueError):
    """A flag or environment variable has a value that is not allowed (one-line message)."""


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """The HTTP API every node serves."""

    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = 8080
    max_body: int = 1024 * 1024
    """Largest request body in bytes; a bigger one gets 413."""


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """JWT authentication of the HTTP API."""

    enabled: bool = False
    jwt_secret: str = DEFAULT_JWT_SECRET
    token_ttl: float = 3600.0
    users_file: Path | None = None
    """A JSON file ``[{"username", "role", "password_hash"}]`` (hashes from ``troupe auth hash``)."""
    users: str = ""
    """``AUTH_USERS``: ``name:role:hash`` entries separated by commas."""
    dev_mode: bool = False
    """``AUTH_DEV_MODE``: also create the reference's demo users (admin/admin123, ...)."""


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """TLS for the HTTP API and for links between nodes."""

    enabled: bool = False
    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None
    """Trusted CA for node links (and for clients' certificates when ``mutual``)."""
    mutual: bool = False
    """Node links (and HTTP clients) must show a certificate signed by ``ca_file``."""


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """The Prometheus endpoint (``/metrics``)."""

    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = 9090


@dataclass(frozen=True, slots=True)
class MongoSettings:
    """MongoDB records (jobs with attempts, nodes, elections, metrics snapshots); off unless
    ``uri`` is set."""

    uri: str | None = None
    database: str = "jobprocessor"
    timeout: float = 30.0
    snapshot_interval: float = 30.0

    @property
    def enabled(self) -> bool:
        return bool(self.uri)


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Everything around the actors: see the module docstring."""

    http: HttpSettings = field(default_factory=HttpSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    mongo: MongoSettings = field(default_factory=MongoSettings)
    transport: str = "tcp"


@dataclass(frozen=True, slots=True)
class Var:
    """One configuration variable: its name, its flag, its default as written in
    ``.env.example`` ("" when unset) and one line of help."""

    name: str
    flag: str
    default: str
    help: str
    section: str


def _v(section: str, name: str, flag: str, default: str, help: str) -> Var:
    return Var(name, flag, default, help, section)


_STRATEGIES = "round_robin, least_loaded, random, priority, lru, power_of_two"
_SECRET_HELP = f"HS256 secret; with auth on, {MIN_SECRET_LENGTH}+ characters and not the default"

VARIABLES: tuple[Var, ...] = (
    # Server and node
    _v("Server", "SERVER_PORT", "--http-port", "8080", "HTTP API port (0: any free port)"),
    _v("Server", "SERVER_HOST", "--http-host", "0.0.0.0", "HTTP API and metrics bind address"),
    _v("Server", "HTTP_ENABLED", "--http-enabled", "true", "serve the HTTP API"),
    _v("Server", "HTTP_MAX_BODY", "--http-max-body", "1048576", "largest request body in bytes (413 above)"),
    _v("Server", "WORKER_COUNT", "--workers", "10", "jobs this node runs at once"),
    _v(
        "Server",
        "FAST_LANE_SLOTS",
        "--fast-lane-slots",
        "2",
        "more jobs this node runs at once that start at submit (fast lane; 0: off)",
    ),
    _v(
        "Server",
        "DIRECT_LANE_SLOTS",
        "--direct-lane-slots",
        "2",
        "with STORE=redis: more jobs this node runs at once that producers submit straight to Redis (0: off)",
    ),
    _v("Server", "NODE_ID", "--id", "", "unique id of this node (required), such as node-1"),
    _v("Server", "NODE_LISTEN", "--listen", "127.0.0.1:7001", "address for node links and clients"),
    _v("Server", "NODE_PEERS", "--peer", "", "the other nodes: id=host:port,id=host:port"),
    _v("Server", "CLUSTER_NAME", "--cluster", "troupe", "peers of another cluster are refused"),
    _v("Server", "DATA_DIR", "--data-dir", "data", "durable state directory"),
    _v("Server", "TRANSPORT", "--transport", "tcp", "node links: tcp, websocket or redis"),
    _v("Server", "NODE_JOIN", "--join", "false", "join a running cluster through NODE_PEERS"),
    _v("Server", "NODE_LEAVE_ON_STOP", "--leave-on-stop", "false", "leave the membership on SIGTERM"),
    _v("Server", "HEARTBEAT_INTERVAL", "--interval", "5", "failure detector ping period (seconds)"),
    _v("Server", "HEARTBEAT_SUSPECT_AFTER", "--suspect-after", "10", "silence before suspicion (seconds)"),
    _v("Server", "HEARTBEAT_DEAD_AFTER", "--dead-after", "15", "silence before declaring dead (seconds)"),
    # Databases
    _v("Database", "MONGODB_URI", "--mongodb-uri", "", "MongoDB for records; unset: no records"),
    _v("Database", "MONGODB_DATABASE", "--mongodb-database", "jobprocessor", "MongoDB database name"),
    _v("Database", "MONGODB_TIMEOUT", "--mongodb-timeout", "30s", "MongoDB connection timeout"),
    _v("Database", "MONGODB_SNAPSHOT_INTERVAL", "--mongodb-snapshot-interval", "30s", "metrics snapshots"),
    _v("Database", "STORE", "--store", "sqlite", "job store: sqlite, raft, redis or memory"),
    _v("Database", "STORE_NODE", "--store-node", "", "node hosting a sqlite/memory store"),
    _v("Database", "REDIS_ADDR", "", "localhost:6379", "Redis host:port (store and redis transport)"),
    _v("Database", "REDIS_HOST", "--redis-host", "", "Redis host (overrides REDIS_ADDR)"),
    _v("Database", "REDIS_PORT", "--redis-port", "", "Redis port (overrides REDIS_ADDR)"),
    _v("Database", "REDIS_PASSWORD", "--redis-password", "", "Redis password, if any"),
    _v("Database", "REDIS_DB", "--redis-db", "0", "Redis database number"),
    # Election
    _v("Election", "ELECTION_ALGORITHM", "--election", "raft", "bully, raft, gossip or none"),
    _v("Election", "ELECTION_TIMEOUT", "--election-timeout", "", "election timeout; default per algorithm"),
    _v("Election", "ELECTION_INTERVAL", "--election-interval", "", "heartbeat period; default per algorithm"),
    # Jobs
    _v(
        "Jobs",
        "LOAD_BALANCER_STRATEGY",
        "--balancer",
        "round_robin",
        "round_robin, least_loaded, random, priority, lru, power_of_two",
    ),
    _v("Jobs", "WORKER_HEARTBEAT_INTERVAL", "--worker-heartbeat", "5s", "worker status period"),
    _v("Jobs", "WORKER_OFFLINE_AFTER", "--worker-offline-after", "15s", "a silent worker is offline after"),
    _v("Jobs", "JOB_MODULES", "--jobs-module", "", "modules or .py files registering processors"),
    _v("Jobs", "RETRY_POLICY", "--retry-policy", "exponential", "fixed or exponential"),
    _v("Jobs", "MAX_RETRIES", "--max-retries", "3", "retries after the first attempt"),
    _v("Jobs", "RETRY_BASE_DELAY", "--retry-base-delay", "1s", "first retry delay"),
    _v("Jobs", "RETRY_MAX_DELAY", "--retry-max-delay", "60s", "largest retry delay"),
    _v("Jobs", "RETRY_MULTIPLIER", "--retry-multiplier", "2.0", "exponential backoff multiplier"),
    _v("Jobs", "RETRY_JITTER_FACTOR", "--retry-jitter", "0.1", "jitter, 0.0 to 1.0"),
    # Security
    _v("Security", "AUTH_ENABLED", "--auth-enabled", "false", "require JWT bearer tokens"),
    _v(
        "Security",
        "JWT_SECRET",
        "--jwt-secret",
        DEFAULT_JWT_SECRET,
        f"HS256 secret; with auth on, at least {MIN_SECRET_LENGTH} characters and not the default",
    ),
    _v("Security", "JWT_TTL", "--jwt-ttl", "1h", "lifetime of issued tokens"),
    _v("Security", "AUTH_USERS_FILE", "--auth-users-file", "", "JSON file of users (troupe auth hash)"),
    _v("Security", "AUTH_USERS", "--auth-users", "", "users as name:role:hash,name:role:hash"),
    _v("Security", "AUTH_DEV_MODE", "--auth-dev-mode", "false", "create demo users (development only)"),
    _v("Security", "TLS_ENABLED", "--tls-enabled", "false", "TLS for the HTTP API and node links"),
    _v("Security", "TLS_CERT_FILE", "--tls-cert-file", "", "certificate chain (PEM)"),
    _v("Security", "TLS_KEY_FILE", "--tls-key-file", "", "private key (PEM)"),
    _v("Security", "TLS_CA_FILE", "--tls-ca-file", "", "CA that signs peers' certificates (PEM)"),
    _v("Security", "TLS_MUTUAL", "--tls-mutual", "false", "require client certificates"),
    # Monitoring
    _v("Monitoring", "METRICS_ENABLED", "--metrics-enabled", "true", "serve Prometheus /metrics"),
    _v("Monitoring", "METRICS_PORT", "--metrics-port", "9090", "metrics port (0: any free port)"),
    _v("Monitoring", "LOG_JSON", "--log-json", "false", "one JSON object per event line"),
    _v("Monitoring", "LOG_VERBOSE", "--log-verbose", "false", "also per-command and per-job events"),
)
"""Every variable ``troupe node`` reads (see :func:`env_example`)."""

NAMES = frozenset(v.name for v in VARIABLES)


def env_example() -> str:
    """The text of ``.env.example``: every variable with its default and help, by section."""
    out = [
        "# Troupe node configuration: copy to .env and edit. Every variable has a flag of",
        "# `troupe node` (shown in brackets); a flag wins over the variable.",
    ]
    section = ""
    for v in VARIABLES:
        if v.section != section:
            section = v.section
            out += ["", f"# --- {section} ---"]
        flag = f" [{v.flag}]" if v.flag else ""
        out.append(f"# {v.help}{flag}")
        out.append(f"{v.name}={v.default}")
    return "\n".join(out) + "\n"


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _get(args: argparse.Namespace, attr: str, env: Mapping[str, str], var: str) -> str | None:
    value = getattr(args, attr, None)
    if value is not None:
        return str(value)
    return env.get(var)


def _what(var: str) -> str:
    flag = next((v.flag for v in VARIABLES if v.name == var), "")
    return f"{flag}/{var}" if flag else var


def parse_bool(value: str | None, var: str, default: bool) -> bool:
    """``true/false/1/0/yes/no/on/off`` (any case) -> bool; unset -> ``default``."""
    if value is None:
        return default
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{_what(var)}={value!r}: must be true or false")


def parse_port(value: str | None, var: str, default: int) -> int:
    """A TCP port 0 to 65535 (0: ephemeral); unset -> ``default``."""
    if value is None or value.strip() == "":
        return default
    text = value.strip()
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ConfigError(f"{_what(var)}={value!r}: must be a port number from 0 to 65535")
    return int(text)


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h|)\s*$")


def duration(value: str) -> float | None:
    """``"30s"``, ``"500ms"``, ``"2m"``, ``"1h"`` or plain seconds -> seconds; None unless > 0."""
    m = _DURATION.match(value)
    if m is None or float(m.group(1)) <= 0:
        return None
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_seconds(value: str | None, var: str, default: float) -> float:
    """A duration (see :func:`duration`) for ``var``; unset -> ``default``."""
    if value is None or value.strip() == "":
        return default
    seconds = duration(value)
    if seconds is None:
        raise ConfigError(f"{_what(var)}={value!r}: must be a duration > 0 such as 500ms, 30s, 2m or 1h")
    return seconds


def _path(value: str | None, var: str, *, must_exist: bool = True) -> Path | None:
    if value is None or value.strip() == "":
        return None
    path = Path(value.strip())
    if must_exist and not path.is_file():
        raise ConfigError(f"{_what(var)}={value!r}: no such file")
    return path


def resolve_service(args: argparse.Namespace, env: Mapping[str, str]) -> ServiceSettings:
    """Merge flags and environment variables (flags win) into validated service settings.

    Raises:
        ConfigError: a value is not allowed; the message names the flag and the variable.
    """
    host = (_get(args, "http_host", env, "SERVER_HOST") or "0.0.0.0").strip()
    max_body_text = _get(args, "http_max_body", env, "HTTP_MAX_BODY")
    max_body = 1024 * 1024
    if max_body_text is not None and max_body_text.strip():
        if not max_body_text.strip().isdigit() or int(max_body_text) < 1024:
            raise ConfigError(f"{_what('HTTP_MAX_BODY')}={max_body_text!r}: must be a byte count >= 1024")
        max_body = int(max_body_text)
    http = HttpSettings(
        enabled=parse_bool(_get(args, "http_enabled", env, "HTTP_ENABLED"), "HTTP_ENABLED", True),
        host=host,
        port=parse_port(_get(args, "http_port", env, "SERVER_PORT"), "SERVER_PORT", 8080),
        max_body=max_body,
    )
    auth = _auth(args, env)
    tls = _tls(args, env)
    metrics = MetricsSettings(
        enabled=parse_bool(_get(args, "metrics_enabled", env, "METRICS_ENABLED"), "METRICS_ENABLED", True),
        host=host,
        port=parse_port(_get(args, "metrics_port", env, "METRICS_PORT"), "METRICS_PORT", 9090),
    )
    if metrics.enabled and http.enabled and metrics.port == http.port and http.port != 0:
        raise ConfigError(
            f"{_what('METRICS_PORT')}={metrics.port}: the same port as {_what('SERVER_PORT')}; "
            "give metrics a port of their own"
        )
    uri = (_get(args, "mongodb_uri", env, "MONGODB_URI") or "").strip() or None
    if uri is not None and not uri.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigError(f"{_what('MONGODB_URI')}={uri!r}: must start with mongodb:// or mongodb+srv://")
    database = (_get(args, "mongodb_database", env, "MONGODB_DATABASE") or "jobprocessor").strip()
    if not re.match(r"^[A-Za-z0-9_-]{1,63}$", database):
        raise ConfigError(f"{_what('MONGODB_DATABASE')}={database!r}: 1-63 letters, digits, '_' or '-'")
    mongo = MongoSettings(
        uri=uri,
        database=database,
        timeout=parse_seconds(_get(args, "mongodb_timeout", env, "MONGODB_TIMEOUT"), "MONGODB_TIMEOUT", 30.0),
        snapshot_interval=parse_seconds(
            _get(args, "mongodb_snapshot_interval", env, "MONGODB_SNAPSHOT_INTERVAL"),
            "MONGODB_SNAPSHOT_INTERVAL",
            30.0,
        ),
    )
    transport_text = _get(args, "transport", env, "TRANSPORT")
    transport = (transport_text or "tcp").strip().lower()
    if transport not in TRANSPORTS:
        raise ConfigError(f"{_what('TRANSPORT')}={transport_text!r}: choose one of {', '.join(TRANSPORTS)}")
    return ServiceSettings(http, auth, tls, metrics, mongo, transport)


def _auth(args: argparse.Namespace, env: Mapping[str, str]) -> AuthSettings:
    enabled = parse_bool(_get(args, "auth_enabled", env, "AUTH_ENABLED"), "AUTH_ENABLED", False)
    secret = _get(args, "jwt_secret", env, "JWT_SECRET")
    secret = DEFAULT_JWT_SECRET if secret is None or secret == "" else secret
    if enabled and secret == DEFAULT_JWT_SECRET:
        raise ConfigError(
            f"{_what('JWT_SECRET')} is the default placeholder: with AUTH_ENABLED on, set a secret of "
            f"at least {MIN_SECRET_LENGTH} characters (for example: openssl rand -hex 32)"
        )
    if enabled and len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{_what('JWT_SECRET')} has {len(secret)} characters: with AUTH_ENABLED on it needs at least "
            f"{MIN_SECRET_LENGTH} (for example: openssl rand -hex 32)"
        )
    return AuthSettings(
        enabled=enabled,
        jwt_secret=secret,
        token_ttl=parse_seconds(_get(args, "jwt_ttl", env, "JWT_TTL"), "JWT_TTL", 3600.0),
        users_file=_path(_get(args, "auth_users_file", env, "AUTH_USERS_FILE"), "AUTH_USERS_FILE"),
        users=(_get(args, "auth_users", env, "AUTH_USERS") or "").strip(),
        dev_mode=parse_bool(_get(args, "auth_dev_mode", env, "AUTH_DEV_MODE"), "AUTH_DEV_MODE", False),
    )


def _tls(args: argparse.Namespace, env: Mapping[str, str]) -> TlsSettings:
    enabled = parse_bool(_get(args, "tls_enabled", env, "TLS_ENABLED"), "TLS_ENABLED", False)
    cert = _path(_get(args, "tls_cert_file", env, "TLS_CERT_FILE"), "TLS_CERT_FILE")
    key = _path(_get(args, "tls_key_file", env, "TLS_KEY_FILE"), "TLS_KEY_FILE")
    ca = _path(_get(args, "tls_ca_file", env, "TLS_CA_FILE"), "TLS_CA_FILE")
    mutual = parse_bool(_get(args, "tls_mutual", env, "TLS_MUTUAL"), "TLS_MUTUAL", False)
    if enabled and (cert is None or key is None):
        missing = "TLS_CERT_FILE" if cert is None else "TLS_KEY_FILE"
        raise ConfigError(f"{_what(missing)} is required with TLS_ENABLED on: the path of a PEM file")
    if enabled and mutual and ca is None:
        raise ConfigError(f"{_what('TLS_CA_FILE')} is required with TLS_MUTUAL on: the CA's PEM file")
    return TlsSettings(enabled, cert, key, ca, mutual)


def add_service_flags(p: argparse.ArgumentParser) -> None:
    """The flags of the service settings (strings, checked by :func:`resolve_service`)."""
    g = p.add_argument_group("service (HTTP API, auth, TLS, metrics, MongoDB, transport)")
    for v in VARIABLES:
        if v.section in ("Server", "Security", "Monitoring", "Database") and v.flag.startswith(
            ("--http", "--auth", "--jwt", "--tls", "--metrics", "--mongodb", "--transport")
        ):
            g.add_argument(
                v.flag, metavar="VALUE", help=f"{v.help} ({v.name}, default {v.default or 'unset'})"
            )
