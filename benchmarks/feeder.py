"""Feed one session at a fixed rate through the HTTP API, with probe events to time the screen.

``python -m benchmarks.feeder`` reads a JSON spec on stdin (url, api_key, session_id, rate,
seconds, probe_every), feeds the simulator's realistic event mix (``SessionFeeder``) with every
``probe_every``-th event replaced by a ``log`` event whose message is ``probe-NNNNNNN``, and prints
one JSON line: events sent, elapsed seconds, and each probe's server timestamp (from the reply).
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime
from typing import Any

import httpx

from sessionscope.server.simulator import SessionFeeder


class ProbingFeeder(SessionFeeder):
    def __init__(self, *args: Any, probe_every: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.probe_every = probe_every
        self.generated = 0
        self.probes: dict[str, float] = {}

    def next_event(self) -> dict[str, Any]:
        self.generated += 1
        if self.generated % self.probe_every == 0:
            marker = f"probe-{self.generated:07d}"
            return {"type": "log", "payload": {"message": marker}}
        return super().next_event()

    use_batches = False

    def _note_probe(self, body: dict[str, Any], created_at: str) -> None:
        message = body["payload"].get("message", "") if body["type"] == "log" else ""
        if message.startswith("probe-"):
            self.probes[message] = datetime.fromisoformat(created_at).timestamp()

    async def _run_batch(self, count: int) -> int:
        bodies = [self.next_event() for _ in range(count)]
        if self.use_batches:
            # One request per tick through events:batch: the rate is then not capped by the
            # per-request cost of the HTTP stack.
            for start in range(0, len(bodies), 1000):  # the API's cap per batch
                chunk = bodies[start : start + 1000]
                response = await self.client.post(
                    f"/v1/sessions/{self.session_id}/events:batch", json={"events": chunk}
                )
                response.raise_for_status()
                for body, event in zip(chunk, response.json()["data"], strict=True):
                    self._note_probe(body, event["created_at"])
            self.events_sent += count
            return count
        path = f"/v1/sessions/{self.session_id}/events"

        async def send(body: dict[str, Any]) -> None:
            response = await self.client.post(path, json=body)
            response.raise_for_status()
            self._note_probe(body, response.json()["created_at"])

        for start in range(0, len(bodies), self.concurrency):
            await asyncio.gather(*(send(b) for b in bodies[start : start + self.concurrency]))
        self.events_sent += count
        return count


async def main() -> None:
    spec = json.loads(sys.stdin.readline())
    concurrency = max(1, min(32, int(spec["rate"] // 100)))
    async with httpx.AsyncClient(
        base_url=spec["url"],
        headers={"Authorization": f"Bearer {spec['api_key']}"},
        timeout=30.0,
        limits=httpx.Limits(max_connections=concurrency + 2),
    ) as client:
        feeder = ProbingFeeder(
            client,
            spec["session_id"],
            rng_seed=7,
            rate=spec["rate"],
            concurrency=concurrency,
            probe_every=spec["probe_every"],
        )
        probe = await client.post(
            f"/v1/sessions/{spec['session_id']}/events:batch",
            json={"events": [{"type": "log", "payload": {"message": "feeder warm-up"}}]},
        )
        feeder.use_batches = bool(spec.get("batches", True)) and probe.status_code == 201
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.call_later(spec["seconds"], stop.set)
        started = loop.time()
        sent = await feeder.run(stop)
        elapsed = loop.time() - started
    result = {"sent": sent, "elapsed": elapsed, "probes": feeder.probes}
    result["batches"] = feeder.use_batches
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
