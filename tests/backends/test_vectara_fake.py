"""The Vectara backend against the stateful fake (``tests/fakes/vectara.py``): what a stateless
mock cannot show. Real HTTP on loopback all the way."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
from fakes.vectara import API_KEY, FakeVectara, serve

from sessionscope.backends import (
    AuthError,
    BackendConfig,
    NotFound,
    ProtocolError,
    RateLimited,
    ServerError,
    ValidationFailed,
    WatchState,
    create_backend,
)
from sessionscope.backends.vectara import ArtifactScanner, VectaraBackend
from sessionscope.config import resolve
from sessionscope.models import Event, SessionStatus, SessionUpdate, ToolResult

DEADLINE_SECONDS = 30.0
SECRET = "xoxp-secret-token-value-77"


@pytest.fixture
def fake() -> Iterator[tuple[FakeVectara, str]]:
    platform = FakeVectara(agents=("support", "billing"))
    with serve(platform) as url:
        yield platform, url


def config(url: str, **options: Any) -> BackendConfig:
    return BackendConfig(
        name="vectara",
        url=url,
        api_key=API_KEY,
        timeout=5.0,
        poll_interval=0.05,
        options={"retry_base": 0.001, "retry_max": 0.01, "reconnect_base": 0.01, **options},
    )


@pytest.fixture
async def backend(fake: tuple[FakeVectara, str]) -> AsyncIterator[VectaraBackend]:
    opened = create_backend(config(fake[1], agent_key="support", page_size=3))
    assert isinstance(opened, VectaraBackend)
    try:
        yield opened
    finally:
        await opened.aclose()


async def test_sessions_page_across_pages_newest_first_with_fields_mapped(
    fake: tuple[FakeVectara, str], backend: VectaraBackend
) -> None:
    platform, _url = fake
    keys = [platform.create_session("support", f"chat {n}").key for n in range(7)]
    platform.session("support", keys[0]).enabled = False
    platform.session("support", keys[1]).status = "running"
    seen = [session async for session in backend.iter_sessions(page_size=3)]
    assert [s.id for s in seen] == list(reversed(keys))
    by_id = {s.id: s for s in seen}
    assert by_id[keys[0]].status is SessionStatus.PAUSED
    assert by_id[keys[1]].status is SessionStatus.ACTIVE
    assert by_id[keys[2]].status is SessionStatus.CREATED
    extra = by_id[keys[2]].model_extra or {}
    assert extra["enabled"] is True and extra["tti_minutes"] == 0
    assert extra["secret_names"] == ["slack_user_token"] and "secrets" not in extra
    assert by_id[keys[2]].usage.total_tokens == 150
    pages = [
        query
        for method, path, query, _ in platform.requests
        if method == "GET" and path == "/v2/agents/support/sessions"
    ]
    assert len(pages) == 3 and "page_key=" in pages[1]


async def test_without_an_agent_every_agents_sessions_merge_newest_first(
    fake: tuple[FakeVectara, str],
) -> None:
    platform, url = fake
    made = [
        platform.create_session(agent, f"{agent} {n}")
        for n in range(4)
        for agent in ("support", "billing")
    ]
    async with create_backend(config(url, page_size=2)) as backend:
        seen = [session async for session in backend.iter_sessions(page_size=3)]
        expected = [f"{s.agent_key}/{s.key}" for s in reversed(made)]
        assert [s.id for s in seen] == expected
        one = await backend.get_session(expected[0])
        assert one.agent_id == made[-1].agent_key
        with pytest.raises(NotFound):
            await backend.get_session("no-slash-here")


async def test_create_update_delete_a_session(
    fake: tuple[FakeVectara, str], backend: VectaraBackend
) -> None:
    platform, _url = fake
    from sessionscope.models import SessionCreate

    created = await backend.create_session(
        SessionCreate(title="made here", metadata={"tier": "gold"}, description="first")
    )
    stored = platform.session("support", created.id)
    assert stored.name == "made here" and stored.metadata == {"tier": "gold"}
    assert stored.description == "first"
    updated = await backend.update_session(
        created.id,
        SessionUpdate(title="renamed", metadata={"tier": "silver"}, description="d", enabled=False),
    )
    assert updated.title == "renamed" and updated.status is SessionStatus.PAUSED
    assert (stored.name, stored.metadata, stored.description, stored.enabled) == (
        "renamed",
        {"tier": "silver"},
        "d",
        False,
    )
    await backend.delete_session(created.id)
    with pytest.raises(NotFound):
        await backend.get_session(created.id)


async def test_events_get_stable_sequences_and_page_with_the_platform_cursor(
    fake: tuple[FakeVectara, str], backend: VectaraBackend
) -> None:
    platform, _url = fake
    session = platform.create_session("support", "events")
    platform.add_outputs(session, 8)
    first = [event async for event in backend.iter_events(session.key, page_size=3)]
    assert [e.sequence for e in first] == list(range(1, 9))
    assert [e.payload["content"] for e in first] == [f"output {n}" for n in range(8)]
    assert all(e.id.startswith("aev_") for e in first)
    later = await backend.list_events(session.key, after=5, limit=10)
    assert [(e.id, e.sequence) for e in later.data] == [(e.id, e.sequence) for e in first[5:]]
    # Paging on from a later position starts at the platform page that holds it, not page one.
    keys = [q for m, p, q, _ in platform.requests if p.endswith("/events") and m == "GET"]
    assert "page_key=" in keys[-1]


@pytest.mark.parametrize("flag_hidden", [True, False], ids=["hide_reason", "spec_shape"])
async def test_hidden_events_are_left_out_unless_asked_for_and_keep_their_sequence(
    fake: tuple[FakeVectara, str], backend: VectaraBackend, flag_hidden: bool
) -> None:
    """With ``hide_reason`` on events, and without it (the spec's AgentEvent has no such field:
    the backend compares the listing with and without ``include_hidden``)."""
    platform, _url = fake
    platform.flag_hidden = flag_hidden
    session = platform.create_session("support", "hide")
    platform.add_outputs(session, 4)
    events = (await backend.list_events(session.key)).data
    hidden = await backend.hide_event(session.key, events[1].id)
    assert hidden.hidden and hidden.hide_reason == "manual" and hidden.sequence == 2
    visible = (await backend.list_events(session.key)).data
    assert [e.sequence for e in visible] == [1, 3, 4]
    everything = (await backend.list_events(session.key, include_hidden=True)).data
    assert [(e.sequence, e.hidden) for e in everything] == [
        (1, False),
        (2, True),
        (3, False),
        (4, False),
    ]
    shown = await backend.unhide_event(session.key, events[1].id)
    assert not shown.hidden and shown.sequence == 2
    assert [e.sequence for e in (await backend.list_events(session.key)).data] == [1, 2, 3, 4]
    # Hidden by the platform itself (as compaction does), not through this backend.
    platform.session("support", session.key).events[2]["hide_reason"] = "compaction"
    by_platform = (await backend.list_events(session.key, include_hidden=True)).data
    assert [(e.sequence, e.hidden) for e in by_platform][2] == (3, True)
    assert [e.sequence for e in (await backend.list_events(session.key)).data] == [1, 2, 4]
    platform.session("support", session.key).events[2]["hide_reason"] = None
    await backend.delete_event(session.key, events[0].id)
    platform.add_outputs(session, 1, prefix="after delete")
    rest = (await backend.list_events(session.key)).data
    assert [e.sequence for e in rest] == [2, 3, 4, 5]
    assert rest[-1].payload["content"] == "after delete 0"


async def test_polling_shows_each_new_event_exactly_once_in_order(
    fake: tuple[FakeVectara, str], backend: VectaraBackend
) -> None:
    platform, _url = fake
    session = platform.create_session("support", "live")
    platform.add_outputs(session, 2, prefix="before")
    states: list[tuple[WatchState, str | None]] = []
    received: list[Event] = []

    async def watch() -> None:
        stream = backend.watch_session(
            session.key, after=0, on_state=lambda s, d: states.append((s, d))
        )
        async with aclosing(stream):
            async for event in stream:
                received.append(event)

    task = asyncio.create_task(watch())
    try:
        for round_ in range(4):
            platform.add_outputs(session, 3, prefix=f"round {round_}")
            await asyncio.sleep(0.03)
        platform.fail_next(503)
        platform.add_outputs(session, 2, prefix="after failure")
        deadline = time.monotonic() + DEADLINE_SECONDS
        while len(received) < 16:
            assert time.monotonic() < deadline, f"only {len(received)} events arrived"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # several more polls: nothing may repeat
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [e.sequence for e in received] == list(range(1, 17))
    assert len({e.id for e in received}) == 16
    assert (WatchState.POLLING, "polling every 0.05 s") in states


async def test_a_client_tool_call_round_trip_with_every_argument_secret(
    fake: tuple[FakeVectara, str], backend: VectaraBackend, caplog: pytest.LogCaptureFixture
) -> None:
    platform, _url = fake
    caplog.set_level(logging.DEBUG)
    session = platform.create_session("support", "tools")
    event_id = platform.request_client_tool(
        session, "notify_slack", {"channel": "support"}, {"token": SECRET}
    )
    calls = await backend.list_tool_calls(session.key)
    assert [c.id for c in calls] == [event_id]
    assert {a.name: (a.value, a.secret) for a in calls[0].arguments} == {
        "channel": ("support", True),
        "token": (SECRET, True),
    }
    events = (await backend.list_events(session.key)).data
    pending = next(e for e in events if e.type == "client_tool_pending")
    assert {"name": "token", "value": SECRET, "secret": True} in pending.payload["pending_calls"][
        0
    ]["arguments"]
    # An error reply that echoes the secret is redacted.
    platform.fail_next(400, message=f"bad argument token={SECRET}")
    with pytest.raises(ValidationFailed) as rejected:
        await backend.submit_tool_result(session.key, event_id, ToolResult(output={}))
    assert SECRET not in str(rejected.value) and "[redacted]" in str(rejected.value)

    call = await backend.submit_tool_result(session.key, event_id, ToolResult(output={"ok": 1}))
    assert call.status == "succeeded" and call.tool == "notify_slack"
    posted = [b for m, p, _q, b in platform.requests if m == "POST" and p.endswith("/events")]
    assert posted[-1] == {
        "type": "tool_output",
        "tool_outputs": [{"event_id": event_id, "type": "success", "output": {"ok": 1}}],
    }
    assert await backend.list_tool_calls(session.key) == []
    outputs = [e for e in (await backend.list_events(session.key)).data if e.type == "tool_output"]
    assert outputs[-1].payload["tool_output"] == {"ok": 1}
    second = platform.request_client_tool(session, "lookup", {"q": "x"}, {})
    failed = await backend.submit_tool_result(session.key, second, ToolResult(error="no access"))
    assert failed.status == "failed"
    assert {
        "type": "tool_output",
        "tool_outputs": [{"event_id": second, "type": "error", "error": "no access"}],
    } in [b for m, _p, _q, b in platform.requests if m == "POST"]
    assert SECRET not in caplog.text


async def test_send_message_returns_the_recorded_input_and_interrupt_is_sent(
    fake: tuple[FakeVectara, str], backend: VectaraBackend
) -> None:
    platform, _url = fake
    session = platform.create_session("support", "chat")
    platform.add_outputs(session, 1)
    event = await backend.send_message(session.key, "hello there")
    assert event.type == "input_message" and event.sequence == 2
    assert event.payload["messages"] == [{"type": "text", "content": "hello there"}]
    body = next(b for m, p, _q, b in platform.requests if m == "POST" and p.endswith("/events"))
    assert body == {
        "type": "input_message",
        "messages": [{"type": "text", "content": "hello there"}],
        "stream_response": True,
    }
    assert await backend.cancel_turn(session.key) == "interrupt sent"
    types = [e.type for e in (await backend.list_events(session.key)).data]
    assert types == ["agent_output", "input_message", "agent_output", "session_interrupted"]


async def test_artifacts_page_and_decode_with_the_checksum_checked(
    fake: tuple[FakeVectara, str], backend: VectaraBackend
) -> None:
    platform, _url = fake
    session = platform.create_session("support", "files")
    content = bytes(range(256)) * 1000
    for n in range(4):
        platform.add_artifact(session, f"f{n}.txt", "text/plain", f"file {n}\n".encode())
    big = platform.add_artifact(session, "blob.bin", "application/octet-stream", content)
    first = await backend.list_artifacts(session.key, limit=3)
    assert len(first.data) == 3 and first.next_cursor
    second = await backend.list_artifacts(session.key, cursor=first.next_cursor, limit=3)
    assert [a.name for a in first.data + second.data] == [
        "f0.txt",
        "f1.txt",
        "f2.txt",
        "f3.txt",
        "blob.bin",
    ]
    blob = second.data[-1]
    assert blob.size_bytes == len(content) and blob.checksum_sha256 == big["checksum_sha256"]
    assert (blob.model_extra or {})["ttl_days"] == 30
    whole = b"".join([c async for c in backend.read_artifact(session.key, blob.id)])
    assert whole == content
    part = b"".join(
        [c async for c in backend.read_artifact(session.key, blob.id, offset=1000, max_bytes=70)]
    )
    assert part == content[1000:1070]
    meta = await backend.get_artifact(session.key, blob.id)
    assert meta.name == "blob.bin" and "data" not in (meta.model_extra or {})
    big["checksum_sha256"] = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(ProtocolError, match="checksum"):
        async for _chunk in backend.read_artifact(session.key, blob.id, max_bytes=10):
            pass


def test_the_scanner_finds_data_only_at_the_top_level_and_in_any_chunking() -> None:
    body = (
        b'{"metadata": {"data": "not this", "x": "a \\"data\\": \\"q\\""}, "artifact_id": '
        b'"art_1", "data": "aGVsbG8g\\/3dvcmxk", "size_bytes": 11}'
    )
    for size in (1, 2, 3, 7, len(body)):
        scanner = ArtifactScanner("test")
        pieces: list[bytes] = []
        for start in range(0, len(body), size):
            pieces += scanner.feed(body[start : start + size])
        meta = scanner.finish()
        assert b"".join(pieces) == base64.b64decode("aGVsbG8g/3dvcmxk")
        assert meta["metadata"] == {"data": "not this", "x": 'a "data": "q"'}
        assert meta["data"] is None and meta["size_bytes"] == 11


async def test_errors_are_typed_and_carry_the_messages_and_request_id(
    fake: tuple[FakeVectara, str], backend: VectaraBackend
) -> None:
    platform, url = fake
    platform.fail_next(500)
    with pytest.raises(ServerError) as failed:
        await backend.list_sessions()
    assert "injected failure 500" in str(failed.value)
    assert "request id req-500-fake" in str(failed.value)
    platform.fail_next(429, retry_after=0.01)
    assert (await backend.list_sessions()).data == []
    platform.fail_next(429, retry_after=3600)
    with pytest.raises(RateLimited):
        await backend.list_sessions()
    with pytest.raises(NotFound, match="Session nope not found"):
        await backend.get_session("nope")
    async with create_backend(
        BackendConfig(name="vectara", url=url, api_key="wrong-key-123456", options={})
    ) as wrong:
        with pytest.raises(AuthError) as denied:
            await wrong.list_sessions()
        assert "wrong-key-123456" not in str(denied.value)
        assert "Invalid API key" in str(denied.value)
    headers = [p for m, p, _q, _b in platform.requests]
    assert headers  # every request went through the gate that checks x-api-key


async def test_the_account_watch_polls_for_new_and_changed_sessions(
    fake: tuple[FakeVectara, str], backend: VectaraBackend
) -> None:
    platform, _url = fake
    platform.create_session("support", "already there")
    changes: list[Any] = []

    async def watch() -> None:
        stream = backend.watch_org()
        async with aclosing(stream):
            async for change in stream:
                changes.append(change)

    task = asyncio.create_task(watch())
    try:
        await asyncio.sleep(0.2)  # the first poll only learns what is there
        made = platform.create_session("support", "new one")
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not changes:
            assert time.monotonic() < deadline, "no change arrived"
            await asyncio.sleep(0.02)
        platform.session("support", made.key).name = "renamed"
        while len(changes) < 2:
            assert time.monotonic() < deadline, "the update did not arrive"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [(c.kind, c.session_id) for c in changes] == [
        ("session.created", made.key),
        ("session.updated", made.key),
    ]
    assert changes[1].session.title == "renamed"


README = Path(__file__).resolve().parents[2] / "README.md"


async def test_the_readme_profile_builds_a_vectara_backend(tmp_path: Path) -> None:
    readme = README.read_text()
    block = readme.split("### Vectara", 1)[1].split("```toml", 1)[1].split("```", 1)[0]
    (tmp_path / "config.toml").write_text(block)
    settings = resolve(
        profile="vectara",
        environ={"VECTARA_API_KEY": "key-from-env"},
        path=tmp_path / "config.toml",
    )
    built = create_backend(
        BackendConfig(
            name=settings.backend,
            url=settings.url,
            api_key=settings.api_key,
            options=settings.options,
        )
    )
    try:
        assert isinstance(built, VectaraBackend)
        assert built.agent_key == "customer_support"
        assert built._live.poll_interval == 5
        assert built._http.client.headers["x-api-key"] == "key-from-env"
        assert "authorization" not in built._http.client.headers
        assert built.display_name == "api.vectara.io" and built.platform_label == "Vectara"
    finally:
        await built.aclose()
