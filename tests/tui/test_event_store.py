"""The timeline's event store against the reference server."""

from __future__ import annotations

from typing import Any

from session_support import agent_client, create_session, make_app, post_messages

from sessionscope.models import Event
from sessionscope.tui.event_store import SequenceStore


async def test_a_page_requested_before_the_view_exists_serves_the_later_loads(
    server: Any,
) -> None:
    """The session screen asks for the newest page while it mounts; the timeline's own load of
    that page later waits for the same request and finds the rows."""
    async with agent_client(server) as client:
        session_id = await create_session(client, "Early page")
        await post_messages(client, session_id, 5, "early")
    backend = make_app(server).backend
    try:
        store = SequenceStore(backend, session_id, 5, page_size=3)
        assert store.tail_page() == 1
        assert SequenceStore(backend, session_id, 0).tail_page() is None
        early = store.start_loading(1)
        assert store.start_loading(1) is early, "one request per page"
        await store.load_page(1)
        assert early.done() and early.exception() is None
        rows = [store.lookup(row) for row in (3, 4)]
        assert [row.sequence for row in rows if isinstance(row, Event)] == [4, 5]
        assert not store.page_loaded(0)
    finally:
        await backend.aclose()
