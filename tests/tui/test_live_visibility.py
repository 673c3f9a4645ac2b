"""Visibility notices (``event.hidden`` / ``event.deleted``) that reach the session screen in the
same live batch as the event they name, against the reference server."""

from __future__ import annotations

from typing import Any

from session_support import SIZE, agent_client, create_session, make_app, post_event, wait_for

from sessionscope.tui.app import SessionScopeApp
from sessionscope.tui.screens.session import SessionScreen
from sessionscope.tui.widgets.timeline import Timeline


def visible_rows(timeline: Timeline) -> list[str]:
    return [timeline.render_line(y).text for y in range(timeline.size.height)]


async def test_an_event_and_its_notice_in_one_batch_end_up_hidden(server: Any) -> None:
    """A resumed backlog, or a burst inside one flush interval, can carry an event and the notice
    that hides or deletes it in one batch: the notice must still find its event."""
    async with agent_client(server) as client:
        session_id = await create_session(client, "One batch")
        await post_event(client, session_id, "message.agent", {"content": "before"})
        app = make_app(server)
        async with app.run_test(size=SIZE) as pilot:
            assert isinstance(app, SessionScopeApp)
            app.open_session(session_id)
            await wait_for(
                pilot,
                lambda: isinstance(app.screen, SessionScreen) and app.screen.session is not None,
                "the session screen",
            )
            screen = app.screen
            assert isinstance(screen, SessionScreen)
            timeline = screen.timeline
            await wait_for(
                pilot,
                lambda: any("before" in row for row in visible_rows(timeline)),
                "the first event",
            )
            # Hold the flush so that everything the stream delivers next lands in one batch,
            # whatever the network's timing: the case under test, made deterministic.
            assert not screen._flush_scheduled and not screen._batch
            screen._flush_scheduled = True
            hidden = await post_event(client, session_id, "message.agent", {"content": "tok-1"})
            deleted = await post_event(client, session_id, "message.agent", {"content": "tok-2"})
            for kind, target in (("event.hidden", hidden), ("event.deleted", deleted)):
                notice = await post_event(
                    client,
                    session_id,
                    kind,
                    {"event_id": target["id"], "sequence": target["sequence"]},
                )
            await wait_for(pilot, lambda: len(screen._batch) == 4, "the four live events")
            screen._flush()
            assert timeline.store.row_count == notice["sequence"]
            await wait_for(
                pilot,
                lambda: "event.deleted" in "".join(visible_rows(timeline)),
                "the batch on screen",
            )
            rows = visible_rows(timeline)
            assert "hidden event" in rows[hidden["sequence"] - 1]
            assert "tok-1" not in rows[hidden["sequence"] - 1]
            assert "(no event)" in rows[deleted["sequence"] - 1]
            assert not any("tok-" in row for row in rows), rows
