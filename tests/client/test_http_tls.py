"""TLS for the HTTP client: an ``http://`` base URL skips loading the CA bundle, and the context it
gets instead trusts nothing, so a request that somehow reaches an ``https://`` URL fails closed."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from client_support import fast_config

from sessionscope.backends._http import HttpClient, _tls_for


def test_plain_http_gets_a_context_that_trusts_no_certificate() -> None:
    context = _tls_for(httpx.URL("http://127.0.0.1:8765"), trust_env=False)
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.get_ca_certs() == []


def test_https_and_environment_proxies_keep_the_verifying_default() -> None:
    assert _tls_for(httpx.URL("https://sessions.example.com"), trust_env=False) is True
    # A proxy taken from the environment may itself speak TLS.
    assert _tls_for(httpx.URL("http://127.0.0.1:8765"), trust_env=True) is True


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate (and its key) for 127.0.0.1."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    files = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *subject, *files],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
async def tls_server(certificate: tuple[Path, Path]) -> AsyncIterator[str]:
    """An https server on loopback presenting that certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}/v1/health"
    finally:
        server.close()
        await server.wait_closed()


async def test_an_https_request_from_a_plain_http_client_fails_closed(tls_server: str) -> None:
    client = HttpClient(fast_config("http://127.0.0.1:9", None))
    try:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.client.get(tls_server)
    finally:
        await client.aclose()
