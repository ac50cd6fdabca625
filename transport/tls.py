"""TLS for links between nodes and for job clients: ``ssl`` contexts and the handshake over trio.

How it works
------------
One certificate per node (``TLS_CERT_FILE`` and ``TLS_KEY_FILE``) serves both ways:

- the **listener** (:func:`server_context`) shows it to whoever dials in; with ``TLS_MUTUAL``
  it also requires the dialler's certificate, signed by ``TLS_CA_FILE``;
- the **dialler** (:func:`client_context`) verifies the listener's certificate against
  ``TLS_CA_FILE`` (the system store if unset), **hostname included**: the host of the peer's
  address (``NODE_PEERS``, ``ws://host:port/``) must be in the certificate's names (an IP
  address as an IP SAN), and it shows its own certificate when it has one, so mutual TLS
  works with the same files.

:func:`wrap_client` and :func:`wrap_server` run the handshake on a trio stream within a timeout
and turn every failure (a certificate from another CA, a wrong host name, a peer that does not
speak TLS, a timeout) into :class:`TlsHandshakeError` with one line, so the transports log it
and retry; nothing here can stop a node. A file that does not load raises :class:`TlsError`
(one line naming the variable) when the node starts.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import trio

from .service_settings import TlsSettings, parse_bool

MIN_VERSION = ssl.TLSVersion.TLSv1_2


class TlsError(ValueError):
    """A certificate, key or CA file that cannot be used (one line naming the variable)."""


class TlsHandshakeError(Exception):
    """The TLS handshake with a peer failed or timed out (one line saying why)."""


def _load_chain(ctx: ssl.SSLContext, cert: Path, key: Path) -> None:
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as e:
        raise TlsError(
            f"TLS_CERT_FILE={str(cert)!r} / TLS_KEY_FILE={str(key)!r}: cannot load the certificate "
            f"and its key ({reason(e)}); give a PEM certificate chain and its matching private key"
        ) from None


def _load_ca(ctx: ssl.SSLContext, ca: Path) -> None:
    try:
        ctx.load_verify_locations(cafile=str(ca))
    except (OSError, ssl.SSLError) as e:
        raise TlsError(
            f"TLS_CA_FILE={str(ca)!r}: cannot load the CA ({reason(e)}); give a PEM file"
        ) from None


def server_context(tls: TlsSettings) -> ssl.SSLContext | None:
    """The listener's context (None if TLS is off); requires a client certificate signed by
    ``ca_file`` when ``mutual``.

    Raises:
        TlsError: a file does not load, or the certificate or key is missing.
    """
    if not tls.enabled:
        return None
    if tls.cert_file is None or tls.key_file is None:
        raise TlsError("TLS_CERT_FILE and TLS_KEY_FILE are required with TLS_ENABLED on")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = MIN_VERSION
    _load_chain(ctx, tls.cert_file, tls.key_file)
    if tls.mutual:
        if tls.ca_file is None:
            raise TlsError("TLS_CA_FILE is required with TLS_MUTUAL on")
        _load_ca(ctx, tls.ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(tls: TlsSettings) -> ssl.SSLContext | None:
    """The dialler's context (None if TLS is off): verifies the listener's certificate and host
    name against ``ca_file`` (the system store if None); shows this node's certificate.

    Raises:
        TlsError: a file does not load.
    """
    if not tls.enabled:
        return None
    return make_client_context(tls.ca_file, tls.cert_file, tls.key_file)


def make_client_context(
    ca_file: str | Path | None = None, cert_file: str | Path | None = None, key_file: str | Path | None = None
) -> ssl.SSLContext:
    """A dialler's context: trust ``ca_file`` (the system store if None), check host names, and
    show ``cert_file``/``key_file`` if given (needed by listeners with mutual TLS).

    Raises:
        TlsError: a file does not load, or only one of ``cert_file`` and ``key_file`` is given.
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = MIN_VERSION
    if ca_file is not None:
        _load_ca(ctx, Path(ca_file))
    if (cert_file is None) != (key_file is None):
        raise TlsError("TLS_CERT_FILE and TLS_KEY_FILE go together: give both or neither")
    if cert_file is not None and key_file is not None:
        _load_chain(ctx, Path(cert_file), Path(key_file))
    return ctx


def client_options_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments of :class:`~transport.jobs_client.JobClient` from the node's variables:
    ``TLS_ENABLED``, ``TLS_CA_FILE``, ``TLS_CERT_FILE``, ``TLS_KEY_FILE`` (``{}`` if TLS is off).

    Raises:
        TlsError: ``TLS_ENABLED`` is not true or false.
    """
    try:
        enabled = parse_bool(env.get("TLS_ENABLED"), "TLS_ENABLED", False)
    except ValueError as e:
        raise TlsError(str(e)) from None
    if not enabled:
        return {}
    out: dict[str, Any] = {"tls": True}
    for var, key in (
        ("TLS_CA_FILE", "ca_file"),
        ("TLS_CERT_FILE", "cert_file"),
        ("TLS_KEY_FILE", "key_file"),
    ):
        value = (env.get(var) or "").strip()
        if value:
            out[key] = value
    return out


async def wrap_client(
    stream: trio.abc.Stream, ctx: ssl.SSLContext, host: str, timeout: float
) -> trio.SSLStream[trio.abc.Stream]:
    """Run the dialler's side of the handshake on ``stream``, checking the certificate names
    ``host``; the encrypted stream.

    Raises:
        TlsHandshakeError: the handshake failed or took more than ``timeout`` seconds.
    """
    tls = trio.SSLStream(stream, ctx, server_hostname=host)
    await _handshake(tls, timeout, f"{host}")
    return tls


async def wrap_server(
    stream: trio.abc.Stream, ctx: ssl.SSLContext, remote: str, timeout: float
) -> trio.SSLStream[trio.abc.Stream]:
    """Run the listener's side of the handshake on ``stream``; the encrypted stream.

    Raises:
        TlsHandshakeError: the handshake failed or took more than ``timeout`` seconds.
    """
    tls = trio.SSLStream(stream, ctx, server_side=True)
    await _handshake(tls, timeout, remote)
    return tls


async def _handshake(tls: trio.SSLStream[trio.abc.Stream], timeout: float, who: str) -> None:
    try:
        with trio.fail_after(timeout):
            await tls.do_handshake()
    except trio.TooSlowError:
        raise TlsHandshakeError(f"TLS handshake with {who} took more than {timeout:g} s") from None
    except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError) as e:
        raise TlsHandshakeError(f"TLS handshake with {who} failed: {reason(e)}") from None


def reason(e: BaseException) -> str:
    """Why a TLS or socket call failed, in one line: the ``ssl`` error (with its verification
    message) if one is in the chain of causes, else the first cause that says something."""
    chain: list[BaseException] = []
    seen: BaseException | None = e
    while seen is not None and len(chain) < 8:
        chain.append(seen)
        seen = seen.__cause__
    for err in chain:
        if isinstance(err, ssl.SSLCertVerificationError) and err.verify_message:
            return f"certificate verify failed: {err.verify_message}"
        if isinstance(err, ssl.SSLError) and err.reason:
            return str(err.reason).lower().replace("_", " ")
    for err in chain:
        text = " ".join(str(err).split())
        if text:
            return text
    return type(e).__name__
