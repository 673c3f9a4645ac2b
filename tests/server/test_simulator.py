"""The agent simulator: seeded, complete in what it produces, and wired into the server."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import math
import os
import random
import struct
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from server_helpers import wait_until

from sessionscope.server import sim_content as content
from sessionscope.server.app import create_app
from sessionscope.server.settings import ServerSettings, database_url
from sessionscope.server.simulator import (
    SessionFeeder,
    Simulator,
    SimulatorAuthError,
    StepKind,
    in_process_client,
    write_script,
)

API_KEY = "simulator-test-key-0123456789"


def in_process_settings(db_path: Path) -> ServerSettings:
    return ServerSettings(
        port=0,
        db_url=database_url(db_path),
        api_keys=[("acme", API_KEY)],
    )


# ---------------------------------------------------------------------------------------------
# Content, without a server
# ---------------------------------------------------------------------------------------------


def test_png_is_a_real_png() -> None:
    data = content.make_png(random.Random(3), width=20, height=10)
    assert data.startswith(content.PNG_SIGNATURE)
    # Every chunk's CRC is right, and the image decodes with an independent decoder.
    position = len(content.PNG_SIGNATURE)
    kinds = []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        kinds.append(kind)
        position += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.size == (20, 10)
    assert image.mode == "RGB"


def test_each_artifact_kind_has_its_mime_type() -> None:
    rng = random.Random(1)
    mime_types = {
        kind: content.artifact(rng, "x", kind).mime_type for kind in content.ARTIFACT_KINDS
    }
    assert mime_types == {
        "text": "text/plain",
        "markdown": "text/markdown",
        "json": "application/json",
        "python": "text/x-python",
        "png": "image/png",
        "binary": "application/octet-stream",
    }


def _script_text(seed: int) -> str:
    rng = random.Random(seed)
    return repr([write_script(rng) for _ in range(20)])


def test_scripts_depend_only_on_the_seed() -> None:
    # Another user of the global random module must not change the story.
    first = _script_text(42)
    random.seed(0)
    random.random()
    assert _script_text(42) == first
    assert _script_text(43) != first


def test_scripts_cover_every_kind_of_step() -> None:
    rng = random.Random(7)
    steps = [step for _ in range(60) for step in write_script(rng)]
    kinds = Counter(step.kind for step in steps)
    assert set(kinds) == set(StepKind)
    event_types = {step.body["type"] for step in steps if step.kind is StepKind.EVENT}
    assert {"thinking", "message.agent", "tool.started", "tool.completed", "tool.failed"} <= (
        event_types
    )
    assert "error" in event_types
    statuses = {step.body["status"] for step in steps if step.kind is StepKind.STATUS}
    assert {"active", "idle", "failed"} <= statuses
    proposals = [step.body["proposal"] for step in steps if step.kind is StepKind.PROPOSE_ACTION]
    assert all(30 <= proposal.expires_in_seconds <= 600 for proposal in proposals)
    assert {proposal.tool for proposal in proposals} >= {"send_email", "run_shell", "deploy"}
    assert any(proposal.destructive for proposal in proposals)
    email = next(proposal for proposal in proposals if proposal.tool == "send_email")
    assert set(email.preview) >= {"to", "subject", "body"}
    tool_calls = [step.body for step in steps if step.kind is StepKind.TOOL_CALL]
    assert any(argument["secret"] for call in tool_calls for argument in call["arguments"])


def test_some_content_is_hostile() -> None:
    rng = random.Random(11)
    text = repr([write_script(rng, hostile_rate=0.5) for _ in range(40)])
    assert "[bold]not bold[/bold]" in text
    assert "[@click=app.quit]" in text
    assert "\\x1b[31m" in text
    assert "word299" in text  # a very long line


# ---------------------------------------------------------------------------------------------
# Against a real app. Step-driven tests run the app in process, the way the server itself runs
# the simulator (httpx.ASGITransport): the same routes, storage and streams, minus the loopback
# socket, which would make hundreds of steps slow on a loaded machine.
# ---------------------------------------------------------------------------------------------


@pytest.fixture
async def app_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(in_process_settings(tmp_path / "sim.db"))
    async with app.router.lifespan_context(app), in_process_client(app, API_KEY) as client:
        yield client


def _stable(value: Any, kept_ids: tuple[str, ...] = ("call_id", "agent_id", "task_id")) -> Any:
    """A payload without what the server generates (ids, timestamps)."""
    if isinstance(value, dict):
        return {
            key: _stable(item, kept_ids)
            for key, item in value.items()
            if key != "id"
            and not key.endswith("_at")
            and not (key.endswith("_id") and key not in kept_ids)
        }
    if isinstance(value, list):
        return [_stable(item, kept_ids) for item in value]
    return value


async def _story(client: httpx.AsyncClient, session_ids: list[str]) -> list[Any]:
    story: list[Any] = []
    for session_id in session_ids:
        session = (await client.get(f"/v1/sessions/{session_id}")).raise_for_status().json()
        events = (
            (await client.get(f"/v1/sessions/{session_id}/events", params={"limit": 1000}))
            .raise_for_status()
            .json()["data"]
        )
        story.append(
            (
                {key: session[key] for key in STORY_FIELDS},
                [
                    (event["type"], _stable(event["payload"], _kept_ids(event["type"])))
                    for event in events
                ],
            )
        )
    return story


def _kept_ids(event_type: str) -> tuple[str, ...]:
    # A client tool call's id is the server's; a tool event's call_id is the agent's own.
    if event_type.startswith("tool_call."):
        return ("agent_id", "task_id")
    return ("call_id", "agent_id", "task_id")


STORY_FIELDS = ("title", "agent_id", "task_id", "model_id", "tags", "metadata", "status")


async def test_same_seed_tells_the_same_story(app_client: httpx.AsyncClient) -> None:
    stories = []
    for seed in (99, 99, 100):
        simulator = Simulator(app_client, seed, rate=1000)
        for _ in range(40):
            await simulator.step()
        assert simulator.errors == 0
        stories.append(await _story(app_client, simulator.session_ids))
    assert stories[0] == stories[1]
    assert stories[0] != stories[2]
    assert sum(len(events) for _, events in stories[0]) >= 30


async def _everything(client: httpx.AsyncClient) -> dict[str, Any]:
    """What the organisation holds now, gathered through the API."""
    sessions = (
        (await client.get("/v1/sessions", params={"limit": 200})).raise_for_status().json()["data"]
    )
    found: dict[str, Any] = {
        "statuses": Counter(session["status"] for session in sessions),
        "status_changes": set(),
        "event_types": Counter(),
        "artifacts": {},
        "tool_calls": [],
        "actions": [],
    }
    for session in sessions:
        base = f"/v1/sessions/{session['id']}"
        events = (await client.get(f"{base}/events", params={"limit": 1000})).json()["data"]
        found["event_types"].update(event["type"] for event in events)
        found["status_changes"].update(
            event["payload"].get("status") for event in events if event["type"] == "session.status"
        )
        for artifact in (await client.get(f"{base}/artifacts")).json()["data"]:
            found["artifacts"].setdefault(artifact["mime_type"], (base, artifact["id"]))
        found["tool_calls"] += (await client.get(f"{base}/tool-calls")).json()["data"]
        found["actions"] += (await client.get(f"{base}/actions")).json()["data"]
    return found


EXPECTED_EVENT_TYPES = {
    "session.created",
    "session.status",
    "session.completed",
    "session.closed",
    "message.user",
    "message.agent",
    "thinking",
    "tool.started",
    "tool.completed",
    "tool.failed",
    "tool_call.requested",
    "artifact.created",
    "action.pending",
    "variables.updated",
    "error",
}
EXPECTED_MIME_TYPES = {
    "text/plain",
    "text/markdown",
    "application/json",
    "text/x-python",
    "image/png",
    "application/octet-stream",
}


def _covered(found: dict[str, Any]) -> bool:
    return (
        EXPECTED_EVENT_TYPES <= set(found["event_types"])
        and EXPECTED_MIME_TYPES <= set(found["artifacts"])
        and {"active", "idle", "failed", "completed", "closed"} <= set(found["statuses"])
        and "paused" in found["status_changes"]
        and any(
            argument["secret"] for call in found["tool_calls"] for argument in call["arguments"]
        )
    )


async def test_produces_every_kind_of_thing(app_client: httpx.AsyncClient) -> None:
    simulator = Simulator(app_client, 30, rate=1000)
    # Step until the server holds one of everything (seed 30 needs about 120 steps), checking in
    # chunks because each check reads the whole organisation; the cap ends a regression.
    chunk = 120
    for _ in range(12):
        for _ in range(chunk):
            await simulator.step()
        found = await _everything(app_client)
        if _covered(found):
            break
        chunk = 40
    assert EXPECTED_EVENT_TYPES <= set(found["event_types"]), found["event_types"]
    assert EXPECTED_MIME_TYPES <= set(found["artifacts"]), found["artifacts"]
    assert {"active", "idle", "failed", "completed", "closed"} <= set(found["statuses"])
    assert "paused" in found["status_changes"]
    assert simulator.errors == 0

    base, png_id = found["artifacts"]["image/png"]
    png = await app_client.get(f"{base}/artifacts/{png_id}/content")
    assert png.headers["content-type"].startswith("image/png")
    assert png.content.startswith(content.PNG_SIGNATURE)
    Image.open(io.BytesIO(png.content)).load()

    secret_arguments = [
        argument
        for call in found["tool_calls"]
        for argument in call["arguments"]
        if argument["secret"]
    ]
    assert secret_arguments and all(argument["value"] for argument in secret_arguments)

    assert found["actions"]
    for action in found["actions"]:
        created = datetime.fromisoformat(action["created_at"])
        expires = datetime.fromisoformat(action["expires_at"])
        assert 29 <= (expires - created).total_seconds() <= 601
    tools = {action["tool"] for action in found["actions"]}
    assert tools & {"send_email", "run_shell", "deploy", "delete_records"}
    assert any(action["destructive"] for action in found["actions"])


async def test_agents_notice_operator_decisions_and_client_results(
    app_client: httpx.AsyncClient,
) -> None:
    # Seed 19's first agent proposes two actions and requests a client tool call.
    simulator = Simulator(app_client, 19, rate=1000, agents=1)

    async def step_until(condition: Callable[[], bool]) -> None:
        for _ in range(100):
            if condition():
                return
            await simulator.step()
        raise AssertionError("the simulated agent never got there")

    await step_until(lambda: bool(simulator.agents and simulator.agents[0].action_ids))
    agent = simulator.agents[0]
    base = f"/v1/sessions/{agent.session_id}"
    decided = await app_client.post(
        f"{base}/actions/{agent.action_ids[0]}", json={"confirmed": True}
    )
    assert decided.status_code == 202
    await step_until(lambda: bool(agent.tool_call_ids))
    answered = await app_client.post(
        f"{base}/tool-calls/{agent.tool_call_ids[0]}/result", json={"output": {"ok": True}}
    )
    answered.raise_for_status()
    await step_until(lambda: agent.finished)
    assert simulator.errors == 0

    events = (await app_client.get(f"{base}/events", params={"limit": 1000})).json()["data"]
    said = [event["payload"].get("content", "") for event in events]
    assert any("was approved" in text for text in said)
    assert any("Still waiting for a decision" in text for text in said)
    assert any("Got the result of" in text for text in said)


async def test_run_stops_on_max_events_and_on_stop(app_client: httpx.AsyncClient) -> None:
    simulator = Simulator(app_client, 5, rate=math.inf)
    assert await simulator.run(max_events=30) == 30
    assert simulator.steps_done == 30

    stop = asyncio.Event()
    stop.set()
    assert await Simulator(app_client, 5, rate=2).run(stop) == 0

    stop = asyncio.Event()
    slow = Simulator(app_client, 6, rate=0.5)
    task = asyncio.create_task(slow.run(stop))
    # The first unit is due at once; then the simulator waits two seconds unless told to stop.

    async def first_unit_done() -> None:
        while slow.steps_done < 1:  # noqa: ASYNC110 - a counter, not an event
            await asyncio.sleep(0.01)

    await asyncio.wait_for(first_unit_done(), timeout=10)
    stop.set()
    assert await asyncio.wait_for(task, timeout=10) == 1


async def test_rejects_a_bad_rate() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(ValueError, match="rate"):
            Simulator(client, 1, rate=0)


async def test_wrong_key_stops_the_simulator_without_leaking_it(tmp_path: Path) -> None:
    app = create_app(in_process_settings(tmp_path / "sim.db"))
    wrong_key = "not-a-real-key-0000"
    async with app.router.lifespan_context(app), in_process_client(app, wrong_key) as client:
        with pytest.raises(SimulatorAuthError) as raised:
            await Simulator(client, 1, rate=math.inf).run(max_events=5)
    assert wrong_key not in str(raised.value)


async def test_an_operator_deleting_a_session_does_not_stop_the_others(
    app_client: httpx.AsyncClient,
) -> None:
    simulator = Simulator(app_client, 8, rate=1000, agents=2)
    while len(simulator.session_ids) < 2:
        await simulator.step()
    victim = simulator.session_ids[0]
    (await app_client.delete(f"/v1/sessions/{victim}")).raise_for_status()
    created_before = len(simulator.session_ids)
    for _ in range(60):
        await simulator.step()
    assert simulator.errors >= 1
    assert len(simulator.session_ids) > created_before


async def test_feeder_fills_one_session(app_client: httpx.AsyncClient) -> None:
    session = (await app_client.post("/v1/sessions", json={"title": "feed"})).json()
    feeder = SessionFeeder(app_client, session["id"], rng_seed=1, rate=math.inf)
    assert await feeder.run(max_events=40) == 40
    parallel = SessionFeeder(app_client, session["id"], rng_seed=2, rate=math.inf, concurrency=4)
    assert await parallel.run(max_events=20) == 20

    events = (
        await app_client.get(f"/v1/sessions/{session['id']}/events", params={"limit": 1000})
    ).json()["data"]
    fed = [event for event in events if event["type"] != "session.created"]
    assert len(fed) == 60
    sequences = [event["sequence"] for event in events]
    assert sequences == sorted(set(sequences))
    types = Counter(event["type"] for event in fed[:40])
    assert types["tool.started"] >= 1 and types["message.agent"] >= 1
    # The serial feeder sends each tool's completion right after its start.
    for started, completed in itertools.pairwise(fed[:40]):
        if started["type"] == "tool.started" and completed["type"] == "tool.completed":
            assert started["payload"]["call_id"] == completed["payload"]["call_id"]


# ---------------------------------------------------------------------------------------------
# The server starts its simulator
# ---------------------------------------------------------------------------------------------


def test_server_with_simulate_reports_into_the_first_organisation(
    make_server: Callable[..., Any],
) -> None:
    running = make_server(simulate=True, rate=20.0, seed=3)
    headers = {"Authorization": f"Bearer {running.api_key}"}
    with httpx.Client(base_url=running.url, headers=headers, timeout=10.0) as client:

        def a_session_with_events() -> dict[str, Any] | None:
            sessions = client.get("/v1/sessions").raise_for_status().json()["data"]
            return next((found for found in sessions if found["event_count"] >= 3), None)

        session = wait_until(a_session_with_events, timeout=30, what="simulated events")
        assert session["agent_id"]
    other_headers = {"Authorization": f"Bearer {running.other_api_key}"}
    with httpx.Client(base_url=running.url, headers=other_headers, timeout=10.0) as other:
        assert other.get("/v1/sessions").json()["total"] == 0


def test_command_feeds_a_session_on_a_running_server(make_server: Callable[..., Any]) -> None:
    running = make_server()
    headers = {"Authorization": f"Bearer {running.api_key}"}
    with httpx.Client(base_url=running.url, headers=headers, timeout=10.0) as client:
        session_id = client.post("/v1/sessions", json={"title": "fed"}).json()["id"]
        command = [sys.executable, "-m", "sessionscope.server.sim_cli", "--url", running.url]
        command += ["--session", session_id, "--rate", "0", "--max-events", "25", "--seed", "4"]
        environment = {**os.environ, "SESSIONSCOPE_API_KEY": running.api_key}
        finished = subprocess.run(
            command, env=environment, capture_output=True, text=True, timeout=60, check=True
        )
        summary = json.loads(finished.stdout.strip().splitlines()[-1])
        assert summary["events"] == 25
        assert running.api_key not in finished.stdout + finished.stderr
        session = client.get(f"/v1/sessions/{session_id}").json()
        # session.created plus the 25 fed events.
        assert session["event_count"] == 26
