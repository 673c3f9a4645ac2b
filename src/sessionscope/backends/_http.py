"""HTTP plumbing shared by HTTP backends: one pooled client, typed errors, polite retries.

Everything here is credential-safe: the key only ever travels in a request header, and every
message that leaves this module (exceptions, log lines, watch-state details) goes through
``_Redactor`` so that a server echoing the key back cannot leak it to a screen or a log.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from pydantic import TypeAdapter, ValidationError

from sessionscope import __version__
from sessionscope.backends.base import (
    AuthError,
    BackendConfig,
    BackendError,
    Conflict,
    ConnectError,
    Gone,
    NotFound,
    ProtocolError,
    RateLimited,
    ServerError,
    ValidationFailed,
)
from sessionscope.models import MAX_REPLY_BYTES

log = logging.getLogger("sessionscope.backends.http")

T = TypeVar("T")

USER_AGENT = f"sessionscope/{__version__}"

#: C0/C1 controls and bidi overrides: a server's text must not drive the operator's terminal.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f]")
#: Server-provided text in a message is cut here so an error stays a sentence, not a page.
MAX_DETAIL_CHARS = 300
#: Error bodies are read at most this far: enough for any problem+json, not for a rogue server.
MAX_ERROR_BODY_BYTES = 64 * 1024
#: Statuses worth another attempt for an idempotent request (the gateway kind of failure).
_TRANSIENT_STATUSES = frozenset({502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


def neutralise_detail(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """One printable line of at most ``limit`` characters."""
    text = _UNSAFE.sub(" ", text)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


class _Redactor:
    """Removes the credential from any text bound for a message or a log."""

    def __init__(self, secret: str | None) -> None:
        self._secret = secret or None
        self._more: set[str] = set()

    def add(self, value: str) -> None:
        """Also redact ``value`` from now on (e.g. a secret-derived tool argument a platform
        sent, which a later error reply might echo)."""
        if len(value) >= 4:  # shorter values would blank out ordinary words
            self._more.add(value)

    def __call__(self, text: str) -> str:
        if self._secret and self._secret in text:
            text = text.replace(self._secret, "[redacted]")
        for value in self._more:
            if value in text:
                text = text.replace(value, "[redacted]")
        return text

    def __repr__(self) -> str:
        return "_Redactor()"


def flag_option(config: BackendConfig, name: str, default: bool = False) -> bool:
    """An on/off option from a profile (a TOML boolean) or ``--option`` (a string: "false"
    must not read as true)."""
    value = config.options.get(name, default)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def option(config: BackendConfig, name: str, default: float) -> float:
    value = config.options.get(name, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


@dataclass
class Backoff:
    """Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
    Jitter"): spreads reconnecting clients apart instead of having them hammer in lockstep."""

    base: float = 0.25
    cap: float = 5.0
    rng: random.Random | None = None

    def delay(self, attempt: int, floor: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based). ``floor`` is a minimum the
        server asked for (Retry-After, SSE ``retry:``), itself bounded by the cap."""
        rng = self.rng or random
        ceiling = min(self.cap, self.base * (2 ** min(attempt, 30)))
        wait = rng.uniform(0, ceiling)
        if floor is not None:
            wait = max(wait, min(floor, self.cap))
        return wait


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def rate_limited_detail(wait: float) -> str:
    """The one sentence every backend shows while it waits out a 429."""
    return f"rate limited, retrying in {max(1, math.ceil(wait))} s"


def platform_retry_hint(body: Any) -> float | None:
    """A retry hint some platforms put in the error body instead of (or beside) Retry-After:
    ``retry_after_seconds`` (Everruns' problem+json), ``retry_after`` or ``details.retry_after``
    (AG2Trust)."""
    if not isinstance(body, dict):
        return None
    details = body.get("details")
    candidates = [body.get("retry_after_seconds"), body.get("retry_after")]
    if isinstance(details, dict):
        candidates.append(details.get("retry_after"))
    for value in candidates:
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
        if isinstance(value, str):
            parsed = parse_retry_after(value)
            if parsed is not None:
                return parsed
    return None


def _reason(status: int) -> str:
    try:
        from http import HTTPStatus

        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


def error_from_response(
    response: httpx.Response, body: bytes, where: str, redact: Callable[[str], str]
) -> BackendError:
    """Map a non-2xx reply to a typed error carrying the server's (neutralised) detail."""
    status = response.status_code
    detail = ""
    field_errors: list[dict[str, Any]] = []
    request_note = ""
    content_type = response.headers.get("content-type", "")
    problem: Any = None
    if "json" in content_type:
        try:
            problem = json.loads(body)
        except ValueError:
            problem = None
        if isinstance(problem, dict):
            raw_detail = problem.get("detail") or problem.get("title") or problem.get("message")
            nested = problem.get("error")
            if raw_detail is None and isinstance(nested, dict):
                # The ``{"error": {"code", "message", ...}}`` shape many platform SDKs use.
                raw_detail = nested.get("message") or nested.get("detail") or nested.get("code")
            elif raw_detail is None and isinstance(nested, str):
                raw_detail = nested
            messages = problem.get("messages")
            if raw_detail is None and isinstance(messages, list) and messages:
                # Vectara's shape: {messages[], request_id, field_errors{field: message}}.
                raw_detail = "; ".join(str(message) for message in messages)
            if isinstance(raw_detail, str):
                detail = raw_detail
            elif raw_detail is not None:
                detail = json.dumps(raw_detail)[:MAX_DETAIL_CHARS]
            request_id = problem.get("request_id")
            if isinstance(request_id, str) and request_id:
                # What the platform's support asks for; kept apart so a long detail cannot cut it.
                request_note = f" [request id {neutralise_detail(request_id, 80)}]"
            by_field = problem.get("field_errors")
            if isinstance(by_field, dict):
                field_errors = [
                    {"field": str(name), "message": redact(neutralise_detail(str(message)))}
                    for name, message in by_field.items()
                ]
            errors = problem.get("errors")
            if isinstance(errors, list):
                field_errors = [
                    {
                        str(k): redact(neutralise_detail(str(v)))
                        for k, v in item.items()
                        if isinstance(item, dict)
                    }
                    for item in errors
                    if isinstance(item, dict)
                ]
    elif "html" not in content_type and body:
        detail = body[:1000].decode("utf-8", "replace")
    detail = redact(neutralise_detail(detail)) if detail else ""
    suffix = (f": {detail}" if detail else "") + redact(request_note)
    context = f" (HTTP {status} {_reason(status)}, {where})"

    if status in (401, 403):
        hint = "the API key was rejected" if status == 401 else "the API key may not do this"
        return AuthError(f"Not authorised — {hint}{suffix}{context}", status=status)
    if status == 404:
        return NotFound(f"Not found{suffix}{context}", status=status)
    if status == 409:
        return Conflict(f"Conflict{suffix}{context}", status=status)
    if status == 410:
        return Gone(f"No longer available{suffix}{context}", status=status)
    if status in (400, 422):
        fields = ", ".join(
            str(e.get("field") or e.get("loc") or e.get("name") or "")
            for e in field_errors
            if e.get("field") or e.get("loc") or e.get("name")
        )
        named = f" [{neutralise_detail(fields, 120)}]" if fields and fields not in detail else ""
        return ValidationFailed(
            f"Rejected{suffix}{named}{context}", status=status, errors=field_errors
        )
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if retry_after is None:
            retry_after = platform_retry_hint(problem)
        when = f"; retry in {retry_after:.0f} s" if retry_after is not None else ""
        return RateLimited(f"Rate limited{suffix}{when}{context}", retry_after=retry_after)
    if status >= 500:
        return ServerError(f"The server failed{suffix}{context}", status=status)
    return ProtocolError(f"Unexpected reply{suffix}{context}", status=status)


def _transport_message(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    return neutralise_detail(text, 160)


def error_from_transport(
    exc: httpx.TransportError, where: str, redact: Callable[[str], str]
) -> BackendError:
    text = redact(_transport_message(exc))
    if isinstance(exc, httpx.RemoteProtocolError):
        return ProtocolError(f"The server broke off its reply ({text}; {where})")
    if isinstance(exc, httpx.TimeoutException):
        return ConnectError(f"The server did not answer in time ({where})")
    if isinstance(exc, httpx.ConnectError):
        return ConnectError(f"Cannot reach the server: {text} ({where})")
    return ConnectError(f"Connection lost: {text} ({where})")


def _is_pre_send(exc: httpx.TransportError) -> bool:
    """The request never reached the server, so even a non-idempotent one may be re-sent."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def parse_json_as(adapter: TypeAdapter[T], body: bytes, where: str, content_type: str) -> T:
    """Decode and validate, turning every way a reply can be malformed into ProtocolError."""
    if "html" in content_type:
        raise ProtocolError(f"The server answered with a web page instead of JSON ({where})")
    try:
        return adapter.validate_json(body)
    except ValidationError as exc:
        # The pydantic text would quote the server's data; name the place and problem only.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'reply'}: {err['msg']}"
            for err in exc.errors(include_input=False)[:3]
        )
        kind = "not valid JSON" if exc.errors()[0]["type"] == "json_invalid" else "malformed"
        raise ProtocolError(
            f"The server's reply is {kind} ({neutralise_detail(problems, 200)}; {where})"
        ) from None


def _tls_for(url: httpx.URL, trust_env: bool) -> ssl.SSLContext | bool:
    """What ``verify`` to give httpx for this base URL.

    httpx builds a verifying TLS context for every client, loading the whole CA bundle (about
    50 ms and 2.6 MiB at the console's start) even when every request goes to an ``http://``
    server. Requests here only ever go to the base URL (relative paths, redirects not followed),
    so for ``http://`` a context that trusts no certificate is enough: it still requires one and
    checks the host name, so anything that did reach an ``https://`` URL would fail closed
    instead of being trusted. With ``trust_env`` a proxy from the environment may speak TLS:
    keep the real context then."""
    if url.scheme == "http" and not trust_env:
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return True


#: A platform's own error shape: returns the typed error for a non-2xx reply, or None to fall
#: back to ``error_from_response``.
ErrorMapper = Callable[[httpx.Response, bytes, str, "_Redactor"], BackendError | None]


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    backoff: Backoff = field(default_factory=Backoff)
    #: A Retry-After longer than this is not waited out: the caller gets RateLimited at once.
    max_retry_after: float = 30.0


class HttpClient:
    """One pooled ``httpx.AsyncClient`` per backend, with typed errors and bounded retries."""

    def __init__(
        self,
        config: BackendConfig,
        *,
        rng: random.Random | None = None,
        auth_header: str = "Authorization",
        auth_scheme: str = "Bearer",
        error_mapper: ErrorMapper | None = None,
        on_response: Callable[[httpx.Response], None] | None = None,
    ) -> None:
        """``auth_header``/``auth_scheme``: where the key goes (``x-api-key`` with no scheme for
        platforms that take a bare key header). ``error_mapper`` reads a platform's own error
        shape; ``on_response`` sees every reply's headers (e.g. rate-limit counters), successful
        or not."""
        url = httpx.URL(config.url)
        # Userinfo in the URL would be sent as Basic auth and shown in errors: drop it.
        self.base_url = url.copy_with(userinfo=b"")
        self.redact = _Redactor(config.api_key)
        #: Added to every authorisation failure, e.g. which unset variable should hold the key.
        self.auth_hint = str(config.options.get("auth_hint") or "")
        self._error_mapper = error_mapper
        self._on_response = on_response
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if config.api_key:
            headers[auth_header] = f"{auth_scheme} {config.api_key}".lstrip()
        trust_env = flag_option(config, "trust_env")
        self.client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(config.timeout, connect=min(config.timeout, 5.0)),
            limits=httpx.Limits(
                max_connections=int(option(config, "max_connections", 20)),
                max_keepalive_connections=int(option(config, "max_keepalive", 10)),
                keepalive_expiry=30.0,
            ),
            follow_redirects=False,
            trust_env=trust_env,
            verify=_tls_for(self.base_url, trust_env),
        )
        self.retry = RetryPolicy(
            attempts=max(1, int(option(config, "retry_attempts", 4))),
            backoff=Backoff(
                base=option(config, "retry_base", 0.25),
                cap=option(config, "retry_max", 5.0),
                rng=rng,
            ),
            max_retry_after=option(config, "max_retry_after", 30.0),
        )
        self.max_response_bytes = int(option(config, "max_response_bytes", MAX_REPLY_BYTES))
        #: Told (with an operator-facing sentence) when a request waits before its retry, e.g.
        #: "rate limited, retrying in 3 s", so a console can show it on its status line.
        self.on_retry: Callable[[str], None] | None = None

    async def aclose(self) -> None:
        await self.client.aclose()

    def full_path(self, path: str) -> str:
        """The path as sent, below the base URL's own path: what the operator should check
        when a server answers "not found"."""
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url.path.rstrip("/") + "/" + path.lstrip("/")

    def _with_auth_hint(self, error: BackendError) -> BackendError:
        if self.auth_hint and isinstance(error, AuthError):
            return AuthError(f"{error.message} — {self.auth_hint}", status=error.status)
        return error

    async def _read_capped(self, response: httpx.Response, cap: int, where: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise ProtocolError(f"The server's reply is larger than {cap:,} bytes ({where})")
            chunks.append(chunk)
        return b"".join(chunks)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> tuple[httpx.Response, bytes]:
        """Send with retries; return the 2xx reply and its body, or raise a typed error."""
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        where = f"{method} {self.full_path(path)}"
        attempt = 0
        while True:
            try:
                return await self._send_once(method, path, params, json_body, headers, where)
            except _Retryable as retryable:
                error = retryable.error
                allowed = retryable.always or idempotent
                attempt += 1
                if not allowed or attempt >= self.retry.attempts:
                    raise error from None
                floor = retryable.retry_after
                if floor is not None and floor > self.retry.max_retry_after:
                    raise error from None
                wait = self.retry.backoff.delay(attempt - 1, floor)
                if floor is not None:
                    wait = max(wait, floor)
                log.debug("%s failed (%s); retry %d in %.2fs", where, error, attempt, wait)
                if isinstance(error, RateLimited) and self.on_retry is not None:
                    try:
                        self.on_retry(rate_limited_detail(wait))
                    except Exception:
                        log.exception("retry listener failed")
                await asyncio.sleep(wait)

    async def _send_once(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        headers: Mapping[str, str] | None,
        where: str,
    ) -> tuple[httpx.Response, bytes]:
        try:
            request = self.client.build_request(
                method, path, params=params, json=json_body, headers=headers
            )
            response = await self.client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise _Retryable(
                error_from_transport(exc, where, self.redact), always=_is_pre_send(exc)
            ) from None
        try:
            try:
                if response.is_success:
                    body = await self._read_capped(response, self.max_response_bytes, where)
                else:
                    body = await self._read_capped_lenient(response)
            except httpx.TransportError as exc:
                raise _Retryable(error_from_transport(exc, where, self.redact)) from None
        finally:
            await response.aclose()
        log.debug("%s -> %d (%d bytes)", where, response.status_code, len(body))
        if self._on_response is not None:
            self._on_response(response)
        if response.is_success:
            return response, body
        error = None
        if self._error_mapper is not None:
            error = self._error_mapper(response, body, where, self.redact)
        if error is None:
            error = error_from_response(response, body, where, self.redact)
        error = self._with_auth_hint(error)
        if isinstance(error, RateLimited):
            raise _Retryable(error, always=True, retry_after=error.retry_after)
        if response.status_code in _TRANSIENT_STATUSES:
            raise _Retryable(error)
        raise error

    async def _read_capped_lenient(self, response: httpx.Response) -> bytes:
        """An error body is read only as far as needed to explain the error."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= MAX_ERROR_BODY_BYTES:
                break
        return b"".join(chunks)[:MAX_ERROR_BODY_BYTES]

    async def json_as(
        self,
        adapter: TypeAdapter[T],
        method: str,
        path: str,
        **kwargs: Any,
    ) -> T:
        response, body = await self.request(method, path, **kwargs)
        return parse_json_as(
            adapter, body, f"{method} {path}", response.headers.get("content-type", "")
        )

    @asynccontextmanager
    async def stream(
        self, method: str, path: str, *, headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> AsyncIterator[httpx.Response]:
        """An open streamed reply (status already checked: non-2xx raises a typed error).

        Transport errors pass through as ``httpx.TransportError``: a streaming caller resumes
        from where it was (Range, Last-Event-ID), which this layer cannot know."""
        where = f"{method} {self.full_path(path)}"
        request = self.client.build_request(method, path, headers=headers, **kwargs)
        response = await self.client.send(request, stream=True)
        try:
            if not response.is_success and response.status_code != 416:
                try:
                    body = await self._read_capped_lenient(response)
                except httpx.TransportError:
                    body = b""
                raise self._with_auth_hint(error_from_response(response, body, where, self.redact))
            yield response
        finally:
            await response.aclose()


class _Retryable(Exception):
    """Internal: a failure that another attempt might cure."""

    def __init__(
        self, error: BackendError, *, always: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(error.message)
        self.error = error
        #: Safe to retry whatever the method (the request was refused or never sent).
        self.always = always
        self.retry_after = retry_after
