"""Run the simulator against a server over HTTP, in its own process (for benchmarks and demos).

    SESSIONSCOPE_API_KEY=... python -m sessionscope.server.sim_cli --url http://127.0.0.1:8765 \\
        --session ses_123 --rate 1000 --duration 60

With ``--session`` it feeds that one session; without, it runs the multi-agent simulator. The key is
read from the environment only, so it never shows up in a process listing. On exit it prints one
JSON line: events sent, seconds, achieved rate.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time

import click
import httpx

from sessionscope.server.simulator import SessionFeeder, Simulator


async def _simulate(
    url: str,
    api_key: str,
    session_id: str | None,
    rate: float,
    seed: int | None,
    duration: float | None,
    max_events: int | None,
    concurrency: int,
    agents: int,
) -> dict[str, object]:
    limits = httpx.Limits(max_connections=max(concurrency, agents) + 2)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=30.0
    ) as client:
        worker: SessionFeeder | Simulator
        if session_id is not None:
            worker = SessionFeeder(client, session_id, seed, rate, concurrency=concurrency)
        else:
            worker = Simulator(client, seed, rate, agents=agents)
        stop = asyncio.Event()
        if duration is not None:
            asyncio.get_running_loop().call_later(duration, stop.set)
        started = time.perf_counter()
        done = await worker.run(stop, max_events)
        seconds = time.perf_counter() - started
    summary: dict[str, object] = {
        "events": done,
        "seconds": round(seconds, 3),
        "rate": round(done / seconds, 1) if seconds > 0 else None,
    }
    if isinstance(worker, Simulator):
        summary["sessions"] = len(worker.session_ids)
        summary["errors"] = worker.errors
    return summary


@click.command()
@click.option("--url", required=True, help="Server root, e.g. http://127.0.0.1:8765.")
@click.option("--session", "session_id", default=None, help="Feed only this session.")
@click.option("--rate", default=2.0, show_default=True, help="Events per second; 0 = unthrottled.")
@click.option("--seed", default=None, type=int)
@click.option("--duration", default=None, type=float, help="Seconds to run.")
@click.option("--max-events", default=None, type=int)
@click.option("--concurrency", default=1, show_default=True, help="Requests in flight (feeder).")
@click.option("--agents", default=5, show_default=True, help="Concurrent simulated agents.")
@click.option(
    "--api-key-env",
    default="SESSIONSCOPE_API_KEY",
    show_default=True,
    help="Variable with the key.",
)
def main(
    url: str,
    session_id: str | None,
    rate: float,
    seed: int | None,
    duration: float | None,
    max_events: int | None,
    concurrency: int,
    agents: int,
    api_key_env: str,
) -> None:
    """Simulate agents against a running sessionscope server."""
    api_key = os.environ.get(api_key_env)
    if not api_key:
        raise click.UsageError(f"set {api_key_env} to the organisation's API key")
    if duration is None and max_events is None:
        raise click.UsageError("give --duration or --max-events")
    summary = asyncio.run(
        _simulate(
            url,
            api_key,
            session_id,
            rate if rate > 0 else math.inf,
            seed,
            duration,
            max_events,
            concurrency,
            agents,
        )
    )
    click.echo(json.dumps(summary))


if __name__ == "__main__":
    main()
