"""HTTPS on real ``troupe node`` processes, with certificates made by ``trustme`` in the test:
the API answers a client that trusts the CA and refuses one that does not; with
``TLS_MUTUAL`` it also wants a client certificate signed by that CA. Every process is killed in
a ``finally``."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from transport.cluster import free_ports
from transport.testing import NodeProc, node_cmd, poll


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca = trustme.CA()
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "server", "server_key", "client")}
    ca.cert_pem.write_to_path(str(files["ca"]))
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(files["server"]))
    for extra in server.cert_chain_pems[1:]:
        extra.write_to_path(str(files["server"]), append=True)
    server.private_key_pem.write_to_path(str(files["server_key"]))
    ca.issue_cert("client@example.com").private_key_and_cert_chain_pem.write_to_path(str(files["client"]))
    return files


@pytest.fixture
def nodes(tmp_path: Path, pki: dict[str, Path]) -> Iterator[dict[str, NodeProc]]:
    procs = {}
    for nid, mutual in (("plain", "false"), ("mutual", "true")):
        env = {
            "TLS_ENABLED": "true",
            "TLS_CERT_FILE": str(pki["server"]),
            "TLS_KEY_FILE": str(pki["server_key"]),
            "TLS_CA_FILE": str(pki["ca"]),
            "TLS_MUTUAL": mutual,
            "SERVER_HOST": "127.0.0.1",
        }
        argv = node_cmd(
            "--id", nid, "--listen", f"127.0.0.1:{free_ports(1)[0]}", "--data-dir", str(tmp_path / nid),
            "--election-timeout", "300ms", "--election-interval", "100ms", "--log-json",
        )  # fmt: skip
        procs[nid] = NodeProc(nid, argv, tmp_path, env)
    try:
        for p in procs.values():
            p.start()
        yield procs
    finally:
        for p in procs.values():
            p.kill()


def _url(node: NodeProc) -> str:
    assert poll(lambda: bool(node.find("node.ready")), 30), "\n".join(node.lines[-20:])
    return f"https://{node.find('node.ready')[0]['http']}"


def _context(ca: Path | None, client: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
    if client is not None:
        ctx.load_cert_chain(str(client))
    return ctx


@pytest.mark.slow
def test_https_with_the_ca_and_mutual_tls(nodes: dict[str, NodeProc], pki: dict[str, Path]) -> None:
    plain, mutual = _url(nodes["plain"]), _url(nodes["mutual"])

    # A client that trusts the CA gets answers over HTTPS
    def healthy() -> bool:
        try:
            return httpx.get(f"{plain}/health", verify=_context(pki["ca"])).json()["status"] == "ok"
        except httpx.HTTPError:
            return False

    assert poll(healthy, 30), "\n".join(nodes["plain"].lines[-20:])
    r = httpx.post(f"{plain}/api/v1/jobs", json={"type": "noop"}, verify=_context(pki["ca"]))
    assert r.status_code == 201, (r.text, nodes["plain"].lines[-20:])

    # One that does not trust it is refused, and plain HTTP gets no API answer
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{plain}/health", verify=_context(None))
    with pytest.raises(httpx.HTTPError):
        httpx.get(plain.replace("https://", "http://") + "/health")

    # With TLS_MUTUAL the client must also show a certificate signed by the CA
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{mutual}/health", verify=_context(pki["ca"]))
    r = httpx.get(f"{mutual}/health", verify=_context(pki["ca"], pki["client"]))
    assert r.status_code == 200 and r.json()["node_id"] == "mutual", (r.text, nodes["mutual"].lines[-20:])
