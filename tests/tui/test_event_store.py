"""The timeline's event store against the reference server."""

from __future__ import annotations

from typing import Any

from session_support import agent_client, create_session, make_app, post_event, post_messages

from sessionscope.models import Event
from sessionscope.tui.state.event_store import FilteredStore, RowState, SequenceStore


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


async def test_tail_events_fetches_a_tail_page_that_live_events_only_started(
    server: Any,
) -> None:
    """A live event can open the tail page before anything fetched it (the rate seed runs while
    the stream delivers): the page exists but is not loaded, and its older rows must be fetched."""
    async with agent_client(server) as client:
        session_id = await create_session(client, "Tail seed")
        await post_messages(client, session_id, 6, "old")
        live = Event.model_validate(
            await post_event(client, session_id, "message.agent", {"content": "live"})
        )
    backend = make_app(server).backend
    try:
        store = SequenceStore(backend, session_id, live.sequence - 1, page_size=3)
        assert live.sequence % 3 == 2, "the live event lands mid-page"
        assert store.append([live]) == 1
        assert not store.page_loaded(store.page_of(live.sequence - 1))
        seed = await store.tail_events(3)
        assert [event.sequence for event in seed] == list(
            range(live.sequence - 2, live.sequence + 1)
        )
    finally:
        await backend.aclose()


async def test_filtered_store_visibility_does_not_touch_the_page_order(server: Any) -> None:
    """Hiding an event is not reading its page: the page the view used least recently is still
    the one a new page evicts, even when the hidden event is on it."""
    async with agent_client(server) as client:
        session_id = await create_session(client, "Filtered LRU")
        await post_messages(client, session_id, 12, "m")
    backend = make_app(server).backend
    try:
        store = FilteredStore(
            backend, session_id, types=["message.agent"], page_size=3, max_pages=3
        )
        for page in range(3):
            await store.load_page(page)
        on_page_1, on_page_2 = store.lookup(4), store.lookup(7)
        assert isinstance(on_page_1, Event) and isinstance(on_page_2, Event)
        assert isinstance(store.lookup(0), Event)  # page 0 read last: least recent is page 1
        assert store.apply_visibility(on_page_2.sequence, on_page_2.id, True)
        assert store.apply_visibility(on_page_1.sequence, on_page_1.id, True)
        assert not store.apply_visibility(1, "", True), "session.created matches no row"
        assert not store.apply_visibility(on_page_2.sequence, "evt_other", False)

        await store.load_page(3)
        assert store.cached_pages() == 3
        assert store.lookup(4) is RowState.LOADING, "page 1 was the least recently used"
        kept = store.lookup(7)
        assert isinstance(kept, Event) and kept.id == on_page_2.id and kept.hidden
        assert isinstance(store.lookup(0), Event)
    finally:
        await backend.aclose()


async def test_sequence_store_visibility_does_not_touch_the_page_order(server: Any) -> None:
    async with agent_client(server) as client:
        session_id = await create_session(client, "Sequence LRU")
        await post_messages(client, session_id, 8, "m")
    backend = make_app(server).backend
    try:
        store = SequenceStore(backend, session_id, 9, page_size=3, max_pages=2)
        await store.load_page(0)
        await store.load_page(1)
        oldest = store.lookup(1)
        assert isinstance(oldest, Event)
        assert isinstance(store.lookup(4), Event)  # page 1 read last: page 0 is least recent
        assert store.apply_visibility(oldest.sequence, oldest.id, True)

        await store.load_page(2)
        assert store.lookup(1) is RowState.LOADING, "page 0 was the least recently used"
        assert isinstance(store.lookup(4), Event)
    finally:
        await backend.aclose()
