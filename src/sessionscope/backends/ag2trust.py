"""The AG2Trust backend (hosted agent pools), from ``ag2trust-sessions.txt`` and the vendor notes.

AG2Trust keeps no list of sessions and no event log: a thread exists through the pool endpoint
(``POST /api/v1/ask/{endpoint_slug}``) and its replies. Everything the console lists and shows
comes from the local record (``ag2trust_record``), written before anything is shown; the platform
is called only to start or message a thread, decide an action, set variables and close. Watching
follows the record, never the platform, so the 60 requests a minute are never spent on polling;
completions arrive through ``sessionscope webhook``, which appends them to the same record.

Options (``BackendConfig.options``):

``endpoint``
    the pool endpoint slug threads are started on (required to start one).
``record``
    path of the local record; default ``<user data dir>/ag2trust/<profile>.sqlite3``.
``profile``
    names the default record (set by the console from the chosen profile).
``record_poll`` (0.25 s)
    how often a watch looks at the record (a local read; no request to the platform).
``retry_attempts``, ``retry_base``, ``retry_max``, ``max_retry_after`` as for every backend.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from sessionscope.backends._http import (
    HttpClient,
    _Redactor,
    neutralise_detail,
    option,
    parse_retry_after,
)
from sessionscope.backends.ag2trust_record import Record, ThreadQuery, parse_time
from sessionscope.backends.base import (
    AuthError,
    Backend,
    BackendConfig,
    BackendError,
    Capability,
    Conflict,
    Gone,
    NotFound,
    ProtocolError,
    RateLimited,
    ServerError,
    SessionQuery,
    ValidationFailed,
    WatchState,
    WatchStateCallback,
)
from sessionscope.models import (
    ActionDecisionResult,
    ActionStatus,
    CloseResult,
    Event,
    OrgChange,
    Page,
    PendingAction,
    Session,
    SessionCreate,
    SessionUpdate,
    validate_context_variables,
)

T = TypeVar("T")

DEFAULT_URL = "https://api.ag2trust.com"
#: The pool endpoint's limit on ``content`` (ag2trust notes: <= 10k characters).
MAX_MESSAGE_CHARS = 10_000
#: ``Idempotency-Key`` may be at most 256 characters.
MAX_IDEMPOTENCY_KEY = 256
#: The rate-limit hint shows once this few requests are left in the window.
LOW_RATE_REMAINING = 10
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_NATIVE_DEFAULT_URL = BackendConfig().url


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def default_record_path(profile: str | None, host: str, endpoint: str | None) -> Path:
    """One record per profile (or per host and endpoint without one), in the user data
    directory."""
    from platformdirs import user_data_path

    name = profile or "-".join(part for part in (host, endpoint) if part) or "default"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "default"
    return user_data_path("sessionscope", appauthor=False) / "ag2trust" / f"{safe}.sqlite3"


def _host_of(url: httpx.URL) -> str:
    host = url.host or "ag2trust"
    return f"{host}:{url.port}" if url.port else host


def record_path_for(config: BackendConfig) -> Path:
    """The record a configuration uses: the ``record`` option, else the default for its profile.
    The console and ``sessionscope webhook`` agree on it through this one function."""
    record = config.options.get("record")
    if record:
        return Path(str(record)).expanduser()
    url = config.url if config.url and config.url != _NATIVE_DEFAULT_URL else DEFAULT_URL
    endpoint = config.options.get("endpoint")
    return default_record_path(
        config.options.get("profile"), _host_of(httpx.URL(url)), str(endpoint) if endpoint else None
    )


@dataclass
class RateLimitState:
    """The last ``X-RateLimit-*`` headers seen (60 requests a minute per organisation)."""

    limit: int | None = None
    remaining: int | None = None
    reset: str | None = None

    def note(self) -> str | None:
        """A hint for the status line when the budget runs low; None otherwise."""
        if self.remaining is None:
            return None
        threshold = LOW_RATE_REMAINING
        if self.limit:
            threshold = max(threshold, self.limit // 6)
        if self.remaining > threshold:
            return None
        of = f" of {self.limit}" if self.limit else ""
        reset = ""
        if self.reset:
            seconds = _reset_seconds(self.reset)
            reset = f", resets in {seconds:.0f} s" if seconds is not None else ""
        return f"AG2Trust rate limit low: {self.remaining}{of} requests left{reset}"


def _reset_seconds(value: str) -> float | None:
    """``X-RateLimit-Reset`` as seconds from now: epoch seconds, or seconds to wait."""
    try:
        number = float(value)
    except ValueError:
        moment = parse_time(value)
        if moment is None:
            return None
        return max(0.0, (moment - datetime.now(moment.tzinfo)).total_seconds())
    import time

    return max(0.0, number - time.time()) if number > 1e9 else max(0.0, number)


def map_error(
    response: httpx.Response, body: bytes, where: str, redact: _Redactor
) -> BackendError | None:
    """AG2Trust's ``{error, error_code, details}`` to a typed error; None for another shape."""
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        problem = json.loads(body)
    except ValueError:
        return None
    if not isinstance(problem, dict) or not ("error_code" in problem or "error" in problem):
        return None
    status = response.status_code
    code = str(problem.get("error_code") or "").upper()
    raw = problem.get("error")
    details: dict[str, Any] = problem["details"] if isinstance(problem.get("details"), dict) else {}
    text = raw if isinstance(raw, str) else (code or "error")
    detail = redact(neutralise_detail(text))
    context = f" (HTTP {status}{' ' + neutralise_detail(code, 40) if code else ''}, {where})"
    if code == "RATE_LIMIT_EXCEEDED" or status == 429:
        retry_after = _number(details.get("retry_after"))
        if retry_after is None:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
        when = f"; retry in {retry_after:.0f} s" if retry_after is not None else ""
        return RateLimited(
            f"Rate limited (60 requests a minute): {detail}{when}{context}",
            retry_after=retry_after,
        )
    if code == "INVALID_API_KEY" or status == 401:
        return AuthError(
            f"Not authorised — the API key was rejected: {detail}{context}", status=status
        )
    if code == "AGENT_NOT_FOUND":
        return NotFound(f"No agent serves this pool: {detail}{context}", status=status)
    if code == "ENDPOINT_NOT_FOUND":
        return NotFound(
            f"No such pool endpoint (check the endpoint option): {detail}{context}", status=status
        )
    if code == "AGENT_NOT_RUNNING":
        return ValidationFailed(
            f"The pool's agent is not running; start it in AG2Trust, then retry: {detail}{context}",
            status=status,
        )
    if code == "MESSAGE_TOO_LONG":
        return ValidationFailed(
            f"Message too long: {detail}{context}",
            status=status,
            errors=[{"field": "content", "message": detail}],
        )
    if status == 403:
        return AuthError(
            f"Not authorised — the API key may not do this: {detail}{context}", status=status
        )
    if status == 404:
        return NotFound(f"Not found: {detail}{context}", status=status)
    if status == 409:
        return Conflict(f"Conflict: {detail}{context}", status=status)
    if status == 410:
        return Gone(f"No longer available: {detail}{context}", status=status)
    if status in (400, 422):
        return ValidationFailed(f"Rejected: {detail}{context}", status=status)
    if status >= 500:
        return ServerError(f"The server failed: {detail}{context}", status=status)
    return ProtocolError(f"Unexpected reply: {detail}{context}", status=status)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return max(0.0, float(value))
    if isinstance(value, str):
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
    return None


def _check_content(content: str) -> None:
    if not content.strip():
        raise ValidationFailed(
            "Write a message: AG2Trust does not take an empty one",
            errors=[{"field": "content", "message": "empty"}],
        )
    if len(content) > MAX_MESSAGE_CHARS:
        raise ValidationFailed(
            f"The message has {len(content):,} characters; AG2Trust takes at most "
            f"{MAX_MESSAGE_CHARS:,} (MESSAGE_TOO_LONG) — nothing was sent",
            errors=[{"field": "content", "message": "too long"}],
        )


def _check_variables(variables: dict[str, str]) -> None:
    try:
        validate_context_variables(variables)
    except ValueError as error:
        raise ValidationFailed(
            f"{error} — nothing was sent",
            errors=[{"field": "context_variables", "message": str(error)}],
        ) from None


class AG2TrustBackend(Backend):
    name = "ag2trust"
    capabilities = frozenset(
        {
            Capability.LIST_SESSIONS,
            Capability.OLDEST_FIRST,
            Capability.CREATE_SESSION,
            Capability.UPDATE_SESSION,
            Capability.CLOSE,
            Capability.MESSAGES,
            Capability.EVENTS,
            Capability.LIVE_STREAM,
            Capability.ORG_STREAM,
            Capability.PENDING_ACTIONS,
            Capability.VARIABLES,
        }
    )
    platform_label = "AG2Trust"
    #: For the close confirmation.
    close_note = "Closing ends the conversation and stops billing for it."
    #: A thread starts with its first message; title and tags live in the local record only
    #: (the pool assigns the agent).
    create_fields = frozenset({"title", "tags", "prompt"})
    prompt_required = True

    def __init__(self, config: BackendConfig) -> None:
        url = config.url if config.url and config.url != _NATIVE_DEFAULT_URL else DEFAULT_URL
        self.config = config
        endpoint = config.options.get("endpoint")
        self.endpoint = str(endpoint) if endpoint else None
        if self.endpoint is not None and not _SLUG.match(self.endpoint):
            raise ValidationFailed(f"{self.endpoint!r} is not a pool endpoint slug")
        self.rate = RateLimitState()
        self._http = HttpClient(
            BackendConfig(
                name=config.name,
                url=url,
                api_key=config.api_key,
                poll_interval=config.poll_interval,
                timeout=config.timeout,
                options=config.options,
            ),
            auth_header="X-API-Key",
            auth_scheme="",
            error_mapper=map_error,
            on_response=self._observe,
        )
        host = _host_of(self._http.base_url)
        self._display_name = f"{host} · {self.endpoint}" if self.endpoint else host
        self.record = Record(record_path_for(config))
        self._record_poll = max(0.01, option(config, "record_poll", 0.25))

    def __repr__(self) -> str:
        return f"AG2TrustBackend({self._display_name})"

    @property
    def display_name(self) -> str:
        return self._display_name

    async def aclose(self) -> None:
        await self._http.aclose()
        self.record.close()

    def _observe(self, response: httpx.Response) -> None:
        headers = response.headers
        limit = headers.get("x-ratelimit-limit")
        remaining = headers.get("x-ratelimit-remaining")
        if remaining is None:
            return
        try:
            self.rate.remaining = int(float(remaining))
            self.rate.limit = int(float(limit)) if limit else self.rate.limit
        except ValueError:
            return
        self.rate.reset = headers.get("x-ratelimit-reset")

    async def _db(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(call, *args, **kwargs)

    async def _post(
        self, path: str, body: dict[str, Any], key: str, *, method: str = "POST"
    ) -> tuple[int, dict[str, Any]]:
        response, raw = await self._http.request(
            method,
            path,
            json_body=body,
            headers={"Idempotency-Key": key[:MAX_IDEMPOTENCY_KEY]},
            # The key makes a retry the same request to the platform.
            idempotent=True,
        )
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            raise ProtocolError(f"The reply is not valid JSON ({method} {path})") from None
        if not isinstance(data, dict):
            raise ProtocolError(f"The reply is not a JSON object ({method} {path})")
        return response.status_code, data

    # -- server ---------------------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        # AG2Trust has nothing to ask that would not spend the rate budget: the record is what
        # the console reads.
        return {"status": "ok", "record": str(self.record.path)}

    # -- sessions -------------------------------------------------------------------------------
    async def list_sessions(
        self, query: SessionQuery | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Session]:
        query = query or SessionQuery()
        after: int | None = None
        if cursor:
            try:
                after = int(cursor)
            except ValueError:
                raise ValidationFailed(f"{cursor!r} is not a cursor of this list") from None
        await self._db(self.record.expire_due)
        sessions, next_id, total, position = await self._db(
            self.record.list_threads,
            ThreadQuery(
                status=query.status.value if query.status else None,
                text=query.text,
                agent_id=query.agent_id,
                tag=query.tag,
                oldest_first=query.order == "oldest",
            ),
            after_local_id=after,
            limit=max(1, min(limit, 500)),
        )
        return Page[Session](
            data=sessions,
            next_cursor=str(next_id) if next_id is not None else None,
            total=total if cursor is None else None,
            stream_position=position if cursor is None else None,
        )

    async def get_session(self, session_id: str) -> Session:
        session = await self._db(self.record.get_thread, session_id)
        if session is None:
            raise NotFound(f"No thread {neutralise_detail(session_id, 80)} in the local record")
        return session

    async def create_session(self, spec: SessionCreate) -> Session:
        """Start a thread: the prompt goes to the pool endpoint without a ``thread_id``."""
        if not self.endpoint:
            raise ValidationFailed(
                "No pool endpoint: set the endpoint option (--option endpoint=SLUG)",
                errors=[{"field": "endpoint", "message": "required"}],
            )
        prompt = spec.prompt or ""
        if not prompt.strip():
            raise ValidationFailed(
                "AG2Trust starts a thread with its first message: write a prompt",
                errors=[{"field": "prompt", "message": "required"}],
            )
        _check_content(prompt)
        variables = dict(spec.context_variables)
        body: dict[str, Any] = {"content": prompt}
        if variables:
            _check_variables(variables)
            body["context_variables"] = variables
        key = uuid.uuid4().hex
        _, reply = await self._post(f"/api/v1/ask/{_seg(self.endpoint)}", body, key)
        self._check_reply(reply, "POST /api/v1/ask")
        title = spec.title or " ".join(prompt.split())[:60]
        thread_id = await self._db(
            self.record.record_reply,
            reply,
            endpoint=self.endpoint,
            first_message=(prompt, key),
            title=title,
            tags=list(spec.tags),
            context_variables=variables or None,
        )
        return await self.get_session(thread_id)

    @staticmethod
    def _check_reply(reply: dict[str, Any], where: str) -> None:
        if not isinstance(reply.get("thread_id"), str) or not reply["thread_id"]:
            raise ProtocolError(f"The pool reply has no thread_id ({where})")
        pending = reply.get("pending_action")
        if pending is not None and not (
            isinstance(pending, dict) and isinstance(pending.get("action_id"), str)
        ):
            raise ProtocolError(f"The pool reply's pending_action has no action_id ({where})")

    async def send_message(self, session_id: str, content: str) -> Event:
        """Message a thread: the pool endpoint with its ``thread_id``. The message is recorded
        before it is sent and the reply before it is shown."""
        _check_content(content)
        session = await self.get_session(session_id)
        if session.closed_at is not None:
            raise ValidationFailed("This thread is closed; start a new one")
        endpoint = session.metadata.get("endpoint") or self.endpoint
        if not endpoint:
            raise ValidationFailed("No pool endpoint: set the endpoint option")
        key = uuid.uuid4().hex
        sequence = await self._db(self.record.record_outgoing, session_id, content, key)
        try:
            _, reply = await self._post(
                f"/api/v1/ask/{_seg(endpoint)}", {"content": content, "thread_id": session_id}, key
            )
            self._check_reply(reply, "POST /api/v1/ask")
        except BackendError as error:
            await self._db(self.record.record_undelivered, session_id, key, error.message)
            raise
        if reply["thread_id"] != session_id:
            raise ProtocolError("The pool answered on another thread (POST /api/v1/ask)")
        await self._db(self.record.record_reply, reply, endpoint=endpoint)
        event = await self._db(self.record.event, session_id, sequence)
        assert event is not None
        return event

    async def update_session(self, session_id: str, update: SessionUpdate) -> Session:
        session = await self.get_session(session_id)
        if update.status is not None and update.status != session.status:
            raise ValidationFailed("AG2Trust threads change status only by closing")
        if update.context_variables is not None:
            changed = {
                key: value
                for key, value in update.context_variables.items()
                if session.context_variables.get(key) != value
            }
            # The platform keeps every variable set on the thread: the rules apply to the whole.
            _check_variables({**session.context_variables, **update.context_variables})
            if changed:
                _, reply = await self._post(
                    f"/api/v1/sessions/{_seg(session_id)}",
                    {"context_variables": changed},
                    uuid.uuid4().hex,
                    method="PATCH",
                )
                await self._db(self.record.record_variables, session_id, changed, reply)
        if update.title is not None or update.tags is not None:
            await self._db(
                self.record.update_thread, session_id, title=update.title, tags=update.tags
            )
        return await self.get_session(session_id)

    async def close_session(self, session_id: str) -> CloseResult:
        await self.get_session(session_id)
        _, reply = await self._post(
            f"/api/v1/sessions/{_seg(session_id)}/close", {}, uuid.uuid4().hex
        )
        await self._db(self.record.record_close, session_id, reply)
        session = await self.get_session(session_id)
        closed_at = parse_time(reply.get("closed_at")) or session.closed_at
        duration = reply.get("duration_seconds")
        billable = reply.get("billable")
        if closed_at is None or not isinstance(duration, int) or not isinstance(billable, bool):
            raise ProtocolError(
                "The close reply lacks closed_at, duration_seconds or billable "
                f"(POST /api/v1/sessions/{neutralise_detail(session_id, 60)}/close)"
            )
        return CloseResult(
            id=session_id, closed_at=closed_at, duration_seconds=duration, billable=billable
        )

    # -- events ---------------------------------------------------------------------------------
    async def list_events(
        self,
        session_id: str,
        *,
        after: int = 0,
        limit: int = 500,
        types: list[str] | None = None,
        include_hidden: bool = False,
    ) -> Page[Event]:
        await self.get_session(session_id)
        events, more = await self._db(
            self.record.events,
            session_id,
            after=after,
            limit=max(1, min(limit, 1000)),
            types=types,
        )
        cursor = str(events[-1].sequence) if more and events else None
        return Page[Event](data=events, next_cursor=cursor)

    async def get_event(self, session_id: str, event_id: str) -> Event:
        thread, _, number = event_id.rpartition("#")
        event = None
        if thread == session_id and number.isdigit():
            event = await self._db(self.record.event, session_id, int(number))
        if event is None:
            raise NotFound(f"No event {neutralise_detail(event_id, 80)} in the local record")
        return event

    # -- pending actions ------------------------------------------------------------------------
    async def list_pending_actions(self) -> list[PendingAction]:
        await self._db(self.record.expire_due)
        return await self._db(self.record.actions, pending_only=True)

    async def list_session_actions(self, session_id: str) -> list[PendingAction]:
        await self.get_session(session_id)
        await self._db(self.record.expire_due)
        return await self._db(self.record.actions, thread_id=session_id)

    async def get_action(self, session_id: str, action_id: str) -> PendingAction:
        action = await self._db(self.record.action, action_id)
        if action is None or action.session_id != session_id:
            raise NotFound(f"No action {neutralise_detail(action_id, 80)} on this thread")
        return action

    async def decide_action(
        self,
        session_id: str,
        action_id: str,
        confirmed: bool,
        *,
        idempotency_key: str | None = None,
        choice: str | None = None,
        reason: str | None = None,
    ) -> ActionDecisionResult:
        """Confirm (202, processing: the result comes with the next reply on the thread) or
        cancel (200). Sent once: the key is recorded before the first attempt and reused."""
        if choice is not None:
            confirmed = choice == "confirm"
        await self._db(self.record.expire_due)
        action = await self.get_action(session_id, action_id)
        if action.status is ActionStatus.EXPIRED:
            when = f" at {action.expires_at:%H:%M:%S} UTC" if action.expires_at else ""
            raise Gone(
                f"The action expired{when}: AG2Trust cancelled it by expiry; it cannot be decided"
            )
        if action.status is not ActionStatus.PENDING:
            agrees = (action.status is ActionStatus.CANCELLED) is not confirmed
            if not agrees:
                raise Conflict(f"The action was already decided: {action.status.value}")
            return ActionDecisionResult(
                session_id=session_id,
                action_id=action_id,
                status=action.status,
                callback_id=action.callback_id,
                message="already decided",
            )
        try:
            key = await self._db(
                self.record.decision_key, action_id, confirmed, idempotency_key or uuid.uuid4().hex
            )
        except ValueError:
            raise Conflict("The action was already decided the other way") from None
        path = f"/api/v1/sessions/{_seg(session_id)}/actions/{_seg(action_id)}"
        try:
            status_code, reply = await self._post(path, {"confirmed": confirmed}, key)
        except Gone:
            await self._db(self.record.expire_due)
            raise
        status_text = str(reply.get("status") or "").lower()
        if status_code == 202 or status_text == "processing":
            status = ActionStatus.PROCESSING
        elif status_text in ("cancelled", "canceled") or not confirmed:
            status = ActionStatus.CANCELLED
        else:
            try:
                status = ActionStatus(status_text)
            except ValueError:
                raise ProtocolError(f"Unknown action status in the reply (POST {path})") from None
        message = reply.get("message") if isinstance(reply.get("message"), str) else ""
        callback_id = (
            reply.get("callback_id") if isinstance(reply.get("callback_id"), str) else None
        )
        await self._db(
            self.record.record_decision,
            action_id,
            status,
            callback_id=callback_id,
            message=message or None,
        )
        if status is ActionStatus.PROCESSING and not message:
            message = "confirmed; the result comes with the next reply on the thread"
        return ActionDecisionResult(
            session_id=session_id,
            action_id=action_id,
            status=status,
            callback_id=callback_id,
            message=message,
        )

    # -- live: the record, never the platform ---------------------------------------------------
    @property
    def status_hint(self) -> str | None:
        return self.rate.note()

    def _live_detail(self) -> str:
        note = self.rate.note()
        base = f"following the local record ({self.record.path.name})"
        return f"{base}; {note}" if note else base

    async def watch_session(
        self,
        session_id: str,
        *,
        after: int = 0,
        on_state: WatchStateCallback | None = None,
    ) -> AsyncIterator[Event]:
        last = after
        report = _Reporter(on_state)
        await self.get_session(session_id)
        while True:
            await self._db(self.record.expire_due)
            events, more = await self._db(self.record.events, session_id, after=last, limit=1000)
            report(WatchState.LIVE, self._live_detail())
            for event in events:
                last = event.sequence
                yield event
            if not more:
                await asyncio.sleep(self._record_poll)

    async def watch_org(
        self, *, after: int | None = None, on_state: WatchStateCallback | None = None
    ) -> AsyncIterator[OrgChange]:
        report = _Reporter(on_state)
        last = after if after is not None else await self._db(self.record.last_change)
        while True:
            await self._db(self.record.expire_due)
            changes = await self._db(self.record.changes, last)
            report(WatchState.LIVE, self._live_detail())
            for change_id, kind, thread_id, action_id in changes:
                last = change_id
                session = await self._db(self.record.get_thread, thread_id)
                action = await self._db(self.record.action, action_id) if action_id else None
                yield OrgChange(
                    id=change_id, kind=kind, session_id=thread_id, session=session, action=action
                )
            if not changes:
                await asyncio.sleep(self._record_poll)


class _Reporter:
    """Calls back only on a change of state or detail."""

    def __init__(self, callback: WatchStateCallback | None) -> None:
        self._callback = callback
        self._last: tuple[WatchState, str | None] | None = None

    def __call__(self, state: WatchState, detail: str | None) -> None:
        if self._callback is None or self._last == (state, detail):
            return
        self._last = (state, detail)
        self._callback(state, detail)
