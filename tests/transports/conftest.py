"""Shared fixtures of the transport-family tests: certificates made by trustme (a cluster CA, a
node certificate for 127.0.0.1, an intruder from another CA, a certificate naming only
``localhost``) written to files, and one redis-server on a free port for the whole session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from troupe_testkit.redis_server import RedisServer

from transport.service_settings import TlsSettings


@dataclass(frozen=True)
class Pki:
    """PEM files of the test certificates."""

    ca: Path
    cert: Path
    key: Path
    other_ca: Path
    intruder_cert: Path
    intruder_key: Path
    localhost_cert: Path
    localhost_key: Path

    def tls(self, mutual: bool = False) -> TlsSettings:
        """The node settings of a member of the cluster (TLS on)."""
        return TlsSettings(True, self.cert, self.key, self.ca, mutual)

    def intruder(self, mutual: bool = True) -> TlsSettings:
        """Settings of a node whose certificate comes from another CA (that CA trusts ours)."""
        return TlsSettings(True, self.intruder_cert, self.intruder_key, self.ca, mutual)


def _leaf(ca: trustme.CA, directory: Path, name: str, *identities: str) -> tuple[Path, Path]:
    leaf = ca.issue_cert(*identities)
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    leaf.private_key_pem.write_to_path(str(key))
    for i, blob in enumerate(leaf.cert_chain_pems):
        blob.write_to_path(str(cert), append=i > 0)
    return cert, key


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, other = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    other.cert_pem.write_to_path(str(directory / "other-ca.pem"))
    cert, key = _leaf(ca, directory, "node", "127.0.0.1", "localhost")
    intruder_cert, intruder_key = _leaf(other, directory, "intruder", "127.0.0.1", "localhost")
    localhost_cert, localhost_key = _leaf(ca, directory, "localhost-only", "localhost")
    return Pki(
        directory / "ca.pem",
        cert,
        key,
        directory / "other-ca.pem",
        intruder_cert,
        intruder_key,
        localhost_cert,
        localhost_key,
    )


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer(fsync="no") as server:
        yield server
