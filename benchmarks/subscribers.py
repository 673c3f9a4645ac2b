"""A process of raw SSE subscribers (httpx-sse), so their parsing does not share the harness's GIL.

``python -m benchmarks.subscribers`` reads one JSON object on stdin (url, api_key, session_id,
after, last, count, timeout), prints ``ready`` once every subscriber is connected; a second stdin
line ``drain SECONDS`` (sent when the emitter is done) leaves that long for the rest to arrive.
Then it prints one JSON result line: per subscriber the sequences received, duplicates, gaps,
reconnects and delivery lags.
Each subscriber resumes with Last-Event-ID after a disconnect, as a real client would.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from datetime import datetime
from typing import Any

import httpx
from httpx_sse import aconnect_sse


class Deadline:
    """Far away until the harness says the emitter is done; then ``drain`` seconds from then."""

    def __init__(self, cap: float) -> None:
        self.at = time.monotonic() + cap

    def passed(self) -> bool:
        return time.monotonic() > self.at


def listen_for_drain(deadline: Deadline) -> None:
    line = sys.stdin.readline().split()
    if len(line) == 2 and line[0] == "drain":
        deadline.at = min(deadline.at, time.monotonic() + float(line[1]))


async def subscriber(
    client: httpx.AsyncClient,
    path: str,
    after: int,
    last: int,
    connected: asyncio.Event,
    deadline: Deadline,
) -> dict[str, Any]:
    received = 0
    duplicates = 0
    out_of_order = 0
    reconnects = 0
    position = after
    lags: list[float] = []
    while position < last and not deadline.passed():
        headers = {"Last-Event-ID": str(position)}
        try:
            async with aconnect_sse(client, "GET", path, headers=headers) as source:
                connected.set()
                async for sse in source.aiter_sse():
                    if not sse.id or not sse.data:  # e.g. the "retry:" frame
                        continue
                    sequence = int(sse.id)
                    if sequence <= position:
                        duplicates += 1
                        continue
                    if sequence != position + 1:
                        out_of_order += 1
                    position = sequence
                    received += 1
                    created = json.loads(sse.data).get("created_at")
                    if created:
                        lags.append(time.time() - datetime.fromisoformat(created).timestamp())
                    if position >= last or deadline.passed():
                        break
        except (httpx.HTTPError, ValueError):
            pass
        if position < last:
            reconnects += 1
            await asyncio.sleep(0.05)
    return {
        "received": received,
        "last": position,
        "duplicates": duplicates,
        "gaps": out_of_order,
        "reconnects": reconnects,
        "lags": lags[:: max(1, len(lags) // 200)],
    }


async def main() -> None:
    spec = json.loads(sys.stdin.readline())
    limits = httpx.Limits(max_connections=spec["count"] + 10, max_keepalive_connections=0)
    timeout = httpx.Timeout(30.0, read=60.0)
    path = f"/v1/sessions/{spec['session_id']}/events/stream"
    async with httpx.AsyncClient(
        base_url=spec["url"],
        headers={"Authorization": f"Bearer {spec['api_key']}"},
        limits=limits,
        timeout=timeout,
    ) as client:
        deadline = Deadline(spec["timeout"])
        threading.Thread(target=listen_for_drain, args=(deadline,), daemon=True).start()
        events = [asyncio.Event() for _ in range(spec["count"])]
        tasks = [
            asyncio.create_task(
                subscriber(client, path, spec["after"], spec["last"], event, deadline)
            )
            for event in events
        ]
        wait_all = asyncio.gather(*(event.wait() for event in events))
        await asyncio.wait_for(wait_all, timeout=60)
        print("ready", flush=True)
        results = await asyncio.gather(*tasks)
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
