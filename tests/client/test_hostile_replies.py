"""Hostile replies, generated: wrong types, missing and extra fields, huge numbers, bytes that
are not UTF-8, markup and terminal control sequences, through the native backend's parsing (a
real HTTP server on loopback answers them) and then the console's rendering of whatever parsed.

Every reply ends as a model or a typed ``BackendError``; nothing crashes, and what renders is
plain text: markup shows as written, control characters as visible stand-ins.

The platform backends can join by adding their call and reply templates to ``CALLS``."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from client_support import fast_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rawserver import RawRequest, RawServer, response_bytes
from rich.text import Text

from sessionscope.backends import BackendError
from sessionscope.backends.native import NativeBackend
from sessionscope.models import Artifact, Event, PendingAction, Session, ToolCall
from sessionscope.tui import event_summary
from sessionscope.tui.safe import plain_line
from sessionscope.tui.screens.action import render_preview
from sessionscope.tui.widgets.artifacts import artifact_row
from sessionscope.tui.widgets.tool_calls import render_arguments

#: Text an agent or a server might send to drive the operator's terminal or the console's markup.
NASTY = [
    "[b]bold[/b]",
    "[link=https://evil.example]click[/link]",
    "[/]",
    "\x1b[2J\x1b[H",
    "\x1b]0;owned\x07",
    "\x9b31m",
    "\x00\x07\x08\r",
    "\u202eevil\u202c",
    ":warning:",
    "\ud7ff\ue000\uffff",
]
TEXT = st.one_of(st.text(max_size=40), st.sampled_from(NASTY))
HUGE = st.integers(min_value=-(2**300), max_value=2**300)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    HUGE,
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)

NOW = "2026-01-01T00:00:00Z"
SESSION = {"id": "s1", "title": "t", "status": "active", "created_at": NOW, "tags": ["a"]}
EVENT = {
    "id": "e1",
    "session_id": "s1",
    "sequence": 1,
    "type": "message.agent",
    "created_at": NOW,
    "payload": {"content": "hi"},
}
ACTION = {"id": "a1", "session_id": "s1", "tool": "rm", "preview": {"command": "rm -rf /"}}
ARTIFACT = {"id": "f1", "session_id": "s1", "name": "a.txt", "size_bytes": 3}
CALL = {"id": "c1", "session_id": "s1", "tool": "ls", "arguments": [{"name": "p", "value": 1}]}


def _page(item: dict[str, Any]) -> dict[str, Any]:
    return {"data": [item], "next_cursor": None, "total": 1}


Call = Callable[[NativeBackend], Awaitable[Any]]
#: (what the client asks, the reply shape it expects).
CALLS: list[tuple[str, Call, dict[str, Any]]] = [
    ("get session", lambda b: b.get_session("s1"), SESSION),
    ("list sessions", lambda b: b.list_sessions(), _page(SESSION)),
    ("list events", lambda b: b.list_events("s1"), _page(EVENT)),
    ("get event", lambda b: b.get_event("s1", "e1"), EVENT),
    ("get action", lambda b: b.get_action("s1", "a1"), ACTION),
    ("pending actions", lambda b: b.list_pending_actions(), _page(ACTION)),
    ("get artifact", lambda b: b.get_artifact("s1", "f1"), ARTIFACT),
    ("tool calls", lambda b: b.list_tool_calls("s1"), _page(CALL)),
]


@st.composite
def mutated(draw: st.DrawFn, template: Any) -> Any:
    """``template`` with fields dropped, retyped or added, recursively."""
    if isinstance(template, dict):
        result: dict[str, Any] = {}
        for key, value in template.items():
            choice = draw(st.integers(0, 5))
            if choice == 0:
                continue  # missing
            result[key] = draw(JSON) if choice == 1 else draw(mutated(value))
        for key in draw(st.lists(TEXT, max_size=2)):
            result[key] = draw(JSON)
        return result
    if isinstance(template, list):
        return [draw(mutated(item)) for item in template] if draw(st.booleans()) else draw(JSON)
    return draw(JSON) if draw(st.integers(0, 3)) == 0 else template


@st.composite
def hostile_reply(draw: st.DrawFn, template: dict[str, Any]) -> bytes:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=200))  # anything, UTF-8 or not
    if kind == 1:
        # A number too long for any parser's patience.
        return b'{"id": "s1", "sequence": 1%s}' % (b"0" * draw(st.integers(400, 6000)))
    body = json.dumps(draw(mutated(template)), ensure_ascii=draw(st.booleans()))
    return body.encode("utf-8", "surrogatepass")


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _safe(text: Text | str) -> None:
    plain = text.plain if isinstance(text, Text) else text
    assert not _CONTROL.search(plain), repr(plain)
    if isinstance(text, Text):
        # Built as plain text: no markup parsed into styles or links.
        for span in text.spans:
            assert "link" not in str(span.style), span


def _render(parsed: Any) -> None:
    """Everything the console would show of a parsed reply, checked for safety."""
    items = parsed.data if hasattr(parsed, "data") else parsed
    for item in items if isinstance(items, list) else [items]:
        if isinstance(item, Session):
            for value in (item.title, item.preview or "", str(item.status), *item.tags):
                _safe(plain_line(value))
        elif isinstance(item, Event):
            _safe(event_summary.summarize(item))
            _safe(plain_line(event_summary.summarize(item)))
        elif isinstance(item, PendingAction):
            _safe(render_preview(item.preview))
            _safe(plain_line(item.tool))
        elif isinstance(item, Artifact):
            for cell in artifact_row(item):
                _safe(cell)
        elif isinstance(item, ToolCall):
            _safe(render_arguments(item.arguments, revealed=True))
            _safe(render_arguments(item.arguments, revealed=False))


async def _exchange(reply: bytes, call: Call) -> None:
    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> None:
        writer.write(response_bytes(200, reply))

    server = await RawServer(handler).start()
    backend = NativeBackend(fast_config(server.url, retry_attempts=1))
    try:
        try:
            parsed = await call(backend)
        except BackendError as error:
            _safe(str(error))  # an operator reads it: plain, short, no control characters
            return
        _render(parsed)
    finally:
        await backend.aclose()
        await server.stop()


@st.composite
def exchanges(draw: st.DrawFn) -> tuple[str, Call, bytes]:
    name, call, template = draw(st.sampled_from(CALLS))
    return name, call, draw(hostile_reply(template))


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(exchanges())
def test_hostile_replies_parse_or_fail_typed_and_render_as_plain_text(
    exchange: tuple[str, Call, bytes],
) -> None:
    _name, call, reply = exchange
    asyncio.run(_exchange(reply, call))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["message.agent", "tool.started", "action.pending", "audit.decided", "x"]),
    st.dictionaries(TEXT, JSON, max_size=6),
)
def test_any_payload_summarises_to_one_safe_line(event_type: str, payload: Any) -> None:
    event = Event(id="e", session_id="s", sequence=1, type=event_type, payload=payload)
    line = event_summary.summarize(event)
    _safe(line)
    assert "\n" not in line


def test_markup_and_escapes_show_as_written() -> None:
    payload = {"content": "[b]bold[/b] \x1b[2J"}
    line = event_summary.summarize(
        Event(id="e", session_id="s", sequence=1, type="message.agent", payload=payload)
    )
    assert "[b]bold[/b]" in line and "\x1b" not in line and "[2J" in line
