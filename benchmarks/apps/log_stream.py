"""Baseline: a naive live view, one ``Log.write_line`` per event straight from httpx-sse.

``python -m benchmarks.apps.log_stream URL API_KEY SESSION_ID``.
"""

from __future__ import annotations

import json
import sys

import httpx
from httpx_sse import aconnect_sse
from textual import work
from textual.app import App, ComposeResult
from textual.widgets import Footer, Header, Log


class StreamApp(App[None]):
    TITLE = "log-stream-baseline"

    def __init__(self, url: str, api_key: str, session_id: str) -> None:
        super().__init__()
        self.url, self.api_key, self.session_id = url, api_key, session_id

    def compose(self) -> ComposeResult:
        yield Header()
        yield Log(max_lines=1000)
        yield Footer()

    def on_mount(self) -> None:
        self.follow()

    @work(exclusive=True)
    async def follow(self) -> None:
        log = self.query_one(Log)
        headers = {"Authorization": f"Bearer {self.api_key}"}
        path = f"/v1/sessions/{self.session_id}/events/stream"
        async with (
            httpx.AsyncClient(base_url=self.url, headers=headers, timeout=None) as client,
            aconnect_sse(client, "GET", path) as source,
        ):
            async for sse in source.aiter_sse():
                if not sse.id or not sse.data:  # e.g. the "retry:" frame
                    continue
                event = json.loads(sse.data)
                payload = event.get("payload") or {}
                summary = payload.get("message") or payload.get("content") or payload.get("tool")
                log.write_line(f"{event['sequence']:>8}  {event['type']:<16} {summary!s:.80}")


if __name__ == "__main__":
    StreamApp(*sys.argv[1:4]).run()
