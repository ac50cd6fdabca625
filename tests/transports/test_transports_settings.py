"""Choosing and configuring a node's transport from its settings (``TRANSPORT``, ``TLS_*``,
``REDIS_*``), and the TLS options job clients read from the same variables."""

from __future__ import annotations

import argparse
import ssl
from pathlib import Path
from typing import Any

import pytest

from transport.events import EventLog
from transport.jobs_client import JobClient, JobError, tls_options
from transport.node_cli import NodeSettings, register, resolve_settings
from transport.node_services import ServiceStartError
from transport.redis_transport import RedisTransport
from transport.service_settings import ServiceSettings, TlsSettings
from transport.tcp import TcpTransport
from transport.transports import NodeLinks, make_node_transport
from transport.ws import WsTransport, ws_url


def settings(argv: list[str], env: dict[str, str]) -> NodeSettings:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="cmd"))
    base = {"NODE_ID": "n1", "NODE_PEERS": "n2=127.0.0.1:7002", "NODE_LISTEN": "127.0.0.1:7001"}
    return resolve_settings(parser.parse_args(["node", *argv]), {**base, **env})


def test_the_transport_is_chosen_by_TRANSPORT(monkeypatch: pytest.MonkeyPatch) -> None:
    tcp = make_node_transport(settings([], {}), EventLog())
    assert type(tcp) is TcpTransport and tcp.peers == {"n2": ("127.0.0.1", 7002)} and tcp.ssl_server is None
    ws = make_node_transport(settings(["--transport", "websocket"], {}), EventLog())
    assert isinstance(ws, WsTransport) and ws.accept_joins and ws.listen == ("127.0.0.1", 7001)
    # TRANSPORT=redis with a store that is not Redis: the REDIS_* variables still say where
    monkeypatch.setenv("REDIS_ADDR", "10.1.2.3:6390")
    links = make_node_transport(
        settings([], {"TRANSPORT": "redis", "REDIS_ADDR": "10.1.2.3:6390"}), EventLog()
    )
    assert isinstance(links, NodeLinks) and isinstance(links.peers, RedisTransport)
    assert links.peers.address == "10.1.2.3:6390" and links.peers.peers == {"n2"}
    assert links.peers.inbox == "troupe:troupe:inbox:n1"
    assert links.clients.clients_only and links.clients.listen == ("127.0.0.1", 7001)
    # and with STORE=redis, the store's Redis settings (flags included)
    shared = settings(["--store", "redis", "--redis-port", "6400"], {"TRANSPORT": "redis"})
    links = make_node_transport(shared, EventLog())
    assert isinstance(links, NodeLinks) and links.peers.address == "127.0.0.1:6400"


def test_tls_settings_give_every_link_tls(pki: Any) -> None:
    env = {
        "TLS_ENABLED": "true",
        "TLS_CERT_FILE": str(pki.cert),
        "TLS_KEY_FILE": str(pki.key),
        "TLS_CA_FILE": str(pki.ca),
    }
    for kind in ("tcp", "websocket"):
        t = make_node_transport(settings([], {**env, "TRANSPORT": kind}), EventLog())
        assert isinstance(t, TcpTransport) and t.ssl_server is not None and t.ssl_client is not None
        assert t.ssl_server.verify_mode == ssl.CERT_NONE  # no client certificates asked for
        assert t.ssl_client.verify_mode == ssl.CERT_REQUIRED and t.ssl_client.check_hostname
    mutual = make_node_transport(settings([], {**env, "TLS_MUTUAL": "true"}), EventLog())
    assert isinstance(mutual, TcpTransport) and mutual.ssl_server is not None
    assert mutual.ssl_server.verify_mode == ssl.CERT_REQUIRED
    links = make_node_transport(settings([], {**env, "TRANSPORT": "redis"}), EventLog())
    assert isinstance(links, NodeLinks) and links.clients.ssl_server is not None  # clients over TLS
    assert ws_url(("127.0.0.1", 7001), True) == "wss://127.0.0.1:7001/"
    assert ws_url(("::1", 7001), False) == "ws://[::1]:7001/"


def test_tls_files_that_do_not_load_stop_the_node_in_one_line(pki: Any, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    cases = [
        (TlsSettings(True, garbage, pki.key, pki.ca), "TLS_CERT_FILE"),
        (TlsSettings(True, pki.cert, pki.intruder_key, pki.ca), "TLS_KEY_FILE"),  # key of another cert
        (TlsSettings(True, pki.cert, pki.key, garbage, True), "TLS_CA_FILE"),
    ]
    for tls, variable in cases:
        s = NodeSettings("n1", ("127.0.0.1", 0), service=ServiceSettings(tls=tls))
        with pytest.raises(ServiceStartError) as e:
            make_node_transport(s, EventLog())
        assert variable in str(e.value) and "\n" not in str(e.value), e.value


def test_job_clients_read_the_tls_variables(pki: Any) -> None:
    assert tls_options({}) == {} and tls_options({"TLS_ENABLED": "false", "TLS_CA_FILE": "x"}) == {}
    env = {"TLS_ENABLED": "1", "TLS_CA_FILE": str(pki.ca), "TLS_CERT_FILE": str(pki.cert), "TLS_KEY_FILE": ""}
    assert tls_options(env) == {"tls": True, "ca_file": str(pki.ca), "cert_file": str(pki.cert)}
    with pytest.raises(JobError, match="TLS_ENABLED='maybe': must be true or false"):
        tls_options({"TLS_ENABLED": "maybe"})
    client = JobClient("127.0.0.1:7001", **tls_options({"TLS_ENABLED": "1", "TLS_CA_FILE": str(pki.ca)}))
    assert client.transport.ssl_client is not None and client.transport.listen is None
    with pytest.raises(JobError, match=r"TLS_CA_FILE=.*cannot load the CA"):
        JobClient("127.0.0.1:7001", ca_file=pki.key)
    with pytest.raises(JobError, match="TLS_CERT_FILE and TLS_KEY_FILE go together"):
        JobClient("127.0.0.1:7001", tls=True, cert_file=pki.cert)
