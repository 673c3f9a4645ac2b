"""``sessionscope webhook``: receives AG2Trust's completion webhooks and appends them to the local
record the console follows, so the console is live without polling the platform.

Each delivery must carry ``X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with
the API key>`` (``ag2trust-sessions.txt`` notes). The signature is checked in constant time
before the body is even parsed; a missing or wrong one gets 401 and nothing is recorded. A
verified delivery is written in one transaction; a redelivery of the same one is recorded once.

Starlette on uvicorn, bound to loopback unless told otherwise: expose it through a tunnel or a
reverse proxy that terminates TLS.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sessionscope.backends.ag2trust_record import Record

log = logging.getLogger("sessionscope.webhook")

DEFAULT_LISTEN = "127.0.0.1:8787"
#: A completion notice is small; anything larger is refused before it is read in full.
MAX_BODY_BYTES = 1024 * 1024
SIGNATURE_HEADER = "x-webhook-signature"
#: Headers that may name a delivery, so a redelivery is recognised (not documented by AG2Trust;
#: without one the body's digest serves).
_DELIVERY_HEADERS = ("x-webhook-id", "x-delivery-id", "x-request-id")


def signature_for(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of ``X-Webhook-Signature`` against the body."""
    if not header or not secret:
        return False
    expected = signature_for(secret, body).encode()
    # Hex digits in either case; the comparison itself stays constant-time.
    return hmac.compare_digest(expected, header.strip().lower().encode("utf-8", "replace"))


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) or ``PORT`` alone (loopback)."""
    text = listen.strip()
    if text.isdigit():
        return "127.0.0.1", int(text)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{listen!r} is not HOST:PORT")
    host = host.strip("[]") or "127.0.0.1"
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"port {number} is out of range")
    return host, number


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(record: Record, secret: str) -> Starlette:
    async def receive(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return JSONResponse({"error": "body too large"}, status_code=413)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return JSONResponse({"error": "body too large"}, status_code=413)
        if not verify_signature(secret, body, request.headers.get(SIGNATURE_HEADER)):
            log.warning("refused a webhook delivery with a missing or wrong signature")
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        try:
            payload: Any = json.loads(body)
        except ValueError:
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        if not isinstance(payload, dict) or not isinstance(payload.get("thread_id"), str):
            return JSONResponse({"error": "a delivery names its thread_id"}, status_code=400)
        delivery = (
            next(
                (request.headers[name] for name in _DELIVERY_HEADERS if request.headers.get(name)),
                None,
            )
            or hashlib.sha256(body).hexdigest()
        )
        sequence = await asyncio.to_thread(record.record_webhook, payload, delivery)
        return JSONResponse({"recorded": sequence is not None, "sequence": sequence})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/", receive, methods=["POST"]),
            Route("/webhook", receive, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


def serve(listen: str, record_path: Path, secret: str) -> None:
    """Run the receiver until interrupted."""
    import uvicorn

    host, port = parse_listen(listen)
    record = Record(record_path)
    try:
        uvicorn.run(
            create_app(record, secret),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    finally:
        record.close()
