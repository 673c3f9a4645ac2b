"""The agent simulator: pretend agents that report into the server through its agent-facing API.

It speaks HTTP to the app in process (``httpx.ASGITransport``) with an organisation's API key, so
its sessions, events, artifacts, actions and tool calls go through the same validation, storage and
live streams as a real agent's would.

Determinism: every choice comes from one ``random.Random(seed)``. Each simulated agent's whole
script (what it will say and do) is drawn when the agent starts, and the scheduler draws which agent
acts next, all before any request is made; so the same seed gives the same sessions and events
whatever the server answers or how long it takes (timestamps aside). The only thing that depends on
the server is the wording of an agent's reaction to an operator's decision on its action or to a
client's answer to its tool call.

Pacing: ``rate`` is units of work per second, each adding about one event. ``run()`` works in
batches: each tick it plans every step that has fallen due and runs the agents' chains
concurrently, so high rates (1000/s for benchmarks) do not depend on ``asyncio.sleep`` resolution.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import logging
import math
import random
from collections import deque
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx

from sessionscope.models import EventType, SessionStatus
from sessionscope.server import sim_content as content

log = logging.getLogger(__name__)

#: Simulated agents working at the same time by default: "a handful".
DEFAULT_AGENTS = 5
#: How far behind schedule ``run()`` lets itself fall before it forgets the debt, in seconds of
#: work; stops a stalled server from being hammered with a burst when it recovers.
MAX_BACKLOG_SECONDS = 1.0
#: Batch size when running unthrottled (``rate=math.inf``).
UNTHROTTLED_BATCH = 64
#: SessionFeeder sends this many due events or more through the batch endpoint (at most
#: FEEDER_BATCH_MAX per request, the server's limit).
FEEDER_BATCH_MIN = 4
FEEDER_BATCH_MAX = 1000


class SimulatorAuthError(RuntimeError):
    """The server refused the simulator's API key."""


class StepKind(enum.Enum):
    CREATE = "create"
    USER_MESSAGE = "user_message"
    EVENT = "event"
    STATUS = "status"
    VARIABLES = "variables"
    PROPOSE_ACTION = "propose_action"
    CHECK_ACTION = "check_action"
    CHECK_TOOL_CALL = "check_tool_call"
    ARTIFACT = "artifact"
    TOOL_CALL = "tool_call"
    COMPLETE = "complete"
    CLOSE = "close"


@dataclass(frozen=True, slots=True)
class Step:
    """One unit of work: one request to the agent-facing API (two for the CHECK_ kinds)."""

    kind: StepKind
    body: dict[str, Any] = field(default_factory=dict)


class Outcome(enum.Enum):
    COMPLETED = "completed"
    CLOSED = "closed"
    IDLE = "idle"


@dataclass(slots=True)
class Agent:
    """One simulated agent working through one session."""

    number: int
    script: list[Step]
    session_id: str | None = None
    action_ids: list[str] = field(default_factory=list)
    tool_call_ids: list[str] = field(default_factory=list)
    position: int = 0
    #: Set when a request failed (e.g. an operator deleted the session): the rest is skipped.
    broken: bool = False

    @property
    def finished(self) -> bool:
        return self.position >= len(self.script)

    def take(self) -> Step:
        step = self.script[self.position]
        self.position += 1
        return step


# ---------------------------------------------------------------------------------------------
# Scripts
# ---------------------------------------------------------------------------------------------


def _event(kind: EventType, **payload: Any) -> Step:
    return Step(StepKind.EVENT, {"type": kind.value, "payload": payload})


def _call_id(rng: random.Random) -> str:
    return f"call_{rng.getrandbits(48):012x}"


def write_script(rng: random.Random, *, hostile_rate: float = 0.08) -> list[Step]:
    """Everything one agent will do in its session, drawn up front."""
    persona = rng.choice(content.PERSONAS)
    title = content.fill(rng.choice(persona.titles), rng)
    if rng.random() < hostile_rate:
        title = f"{title} {content.hostile(rng)[:80]}"
    model_id = rng.choice(content.MODELS)
    steps: list[Step] = [
        Step(
            StepKind.CREATE,
            {
                "title": title,
                "agent_id": persona.agent_id,
                "task_id": f"task_{rng.getrandbits(32):08x}",
                "model_id": model_id,
                "tags": sorted(rng.sample(persona.tags, rng.randint(1, len(persona.tags)))),
                "metadata": {"simulated": True, "priority": rng.choice(("low", "normal", "high"))},
            },
        ),
        Step(StepKind.USER_MESSAGE, {"content": content.user_prompt(rng, title)}),
        Step(StepKind.STATUS, {"status": SessionStatus.ACTIVE.value}),
    ]
    turns = rng.randint(2, 7)
    failed = False
    # Checks on an action or a client tool call come one turn later, giving an operator time.
    follow_ups: list[Step] = []
    actions = tool_calls = 0
    for _ in range(turns):
        due, follow_ups = follow_ups, []
        move = rng.random()
        if move < 0.25:
            steps.append(_event(EventType.THINKING, content=content.thinking(rng, title)))
            steps += _tool_use(rng, rng.choice(persona.tools))
        elif move < 0.45:
            steps.append(
                _agent_message(rng, title, model_id, hostile_content=rng.random() < hostile_rate)
            )
            if rng.random() < 0.5:
                steps.append(Step(StepKind.USER_MESSAGE, {"content": content.user_followup(rng)}))
        elif move < 0.6:
            kind = rng.choice(content.ARTIFACT_KINDS)
            file = content.artifact(rng, title, kind)
            steps.append(Step(StepKind.ARTIFACT, {"file": file}))
        elif move < 0.75:
            proposal = content.action_proposal(rng, title)
            steps.append(
                _agent_message(rng, title, model_id)
                if rng.random() < 0.5
                else _event(EventType.THINKING, content=content.thinking(rng, title))
            )
            steps.append(Step(StepKind.PROPOSE_ACTION, {"proposal": proposal}))
            follow_ups.append(
                Step(StepKind.CHECK_ACTION, {"tool": proposal.tool, "index": actions})
            )
            actions += 1
        elif move < 0.85:
            request = content.client_tool_call(rng)
            steps.append(
                Step(StepKind.TOOL_CALL, {"tool": request.tool, "arguments": request.arguments})
            )
            follow_ups.append(
                Step(StepKind.CHECK_TOOL_CALL, {"tool": request.tool, "index": tool_calls})
            )
            tool_calls += 1
        elif move < 0.9:
            steps.append(
                Step(
                    StepKind.VARIABLES,
                    {
                        "context_variables": {
                            "CUSTOMER_NAME": rng.choice(content.CUSTOMERS),
                            "TICKET_PRIORITY": rng.choice(("P1", "P2", "P3")),
                            "REGION": rng.choice(("eu-west-1", "us-east-1")),
                        }
                    },
                )
            )
        elif move < 0.93:
            steps.append(Step(StepKind.STATUS, {"status": SessionStatus.PAUSED.value}))
            steps.append(Step(StepKind.STATUS, {"status": SessionStatus.ACTIVE.value}))
        else:
            tool = rng.choice(persona.tools)
            call_id = _call_id(rng)
            steps.append(
                _event(
                    EventType.TOOL_STARTED,
                    tool=tool,
                    call_id=call_id,
                    input=content.tool_input(rng, tool),
                )
            )
            steps.append(
                _event(
                    EventType.TOOL_FAILED,
                    tool=tool,
                    call_id=call_id,
                    error=content.tool_error(rng, tool),
                    duration_ms=rng.randint(20, 30_000),
                )
            )
            if rng.random() < 0.5:
                steps.append(_event(EventType.ERROR, message=content.tool_error(rng, tool)))
                failed = True
        steps += due
        if failed:
            break
    if not failed:
        steps += follow_ups
    steps += _ending(rng, title, model_id, failed=failed)
    return steps


def _agent_message(
    rng: random.Random, title: str, model_id: str, *, hostile_content: bool = False
) -> Step:
    text = content.agent_message(rng, title, hostile_content=hostile_content)
    input_tokens = rng.randint(200, 8000)
    output_tokens = max(1, len(text) // 4)
    return _event(
        EventType.MESSAGE_AGENT,
        role="agent",
        content=text,
        model=model_id,
        usage={
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
    )


def _tool_use(rng: random.Random, tool: str) -> list[Step]:
    call_id = _call_id(rng)
    started = _event(
        EventType.TOOL_STARTED, tool=tool, call_id=call_id, input=content.tool_input(rng, tool)
    )
    duration_ms = rng.randint(5, 12_000)
    if rng.random() < 0.15:
        return [
            started,
            _event(
                EventType.TOOL_FAILED,
                tool=tool,
                call_id=call_id,
                error=content.tool_error(rng, tool),
                duration_ms=duration_ms,
            ),
        ]
    return [
        started,
        _event(
            EventType.TOOL_COMPLETED,
            tool=tool,
            call_id=call_id,
            output=content.tool_output(rng, tool),
            duration_ms=duration_ms,
        ),
    ]


def _ending(rng: random.Random, title: str, model_id: str, *, failed: bool) -> list[Step]:
    if failed or rng.random() < 0.1:
        return [
            _event(EventType.ERROR, message=f"Giving up on {title}: too many upstream errors"),
            Step(StepKind.STATUS, {"status": SessionStatus.FAILED.value}),
        ]
    endings = (Outcome.COMPLETED, Outcome.CLOSED, Outcome.IDLE)
    outcome = rng.choices(endings, weights=(45, 25, 30))[0]
    wrap_up = _agent_message(rng, title, model_id)
    if outcome is Outcome.IDLE:
        return [wrap_up, Step(StepKind.STATUS, {"status": SessionStatus.IDLE.value})]
    if outcome is Outcome.COMPLETED:
        return [wrap_up, Step(StepKind.COMPLETE)]
    return [wrap_up, Step(StepKind.COMPLETE), Step(StepKind.CLOSE)]


# ---------------------------------------------------------------------------------------------
# Pacing shared by the simulator and the single-session feeder
# ---------------------------------------------------------------------------------------------


class _Paced:
    """Runs ``_run_batch(n)`` so that about ``rate`` units per second get done."""

    rate: float

    async def _run_batch(self, count: int) -> int:
        raise NotImplementedError

    async def run(self, stop: asyncio.Event | None = None, max_events: int | None = None) -> int:
        """Work until ``stop`` is set or ``max_events`` units are done; returns the units done."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        unthrottled = math.isinf(self.rate)
        max_batch = UNTHROTTLED_BATCH if unthrottled else max(1, math.ceil(self.rate / 4))
        started = loop.time()
        done = 0
        scheduled = 0  # units counted against the schedule since ``started``
        while not stop.is_set() and (max_events is None or done < max_events):
            now = loop.time()
            if unthrottled:
                due = max_batch
            else:
                # The first unit is due at once, the next one 1/rate later, and so on.
                due = int((now - started) * self.rate) + 1 - scheduled
                if due > max(1.0, self.rate * MAX_BACKLOG_SECONDS):
                    started, scheduled = now, 0
                    due = 1
                if due <= 0:
                    next_due = started + scheduled / self.rate
                    await _wait(stop, next_due - now)
                    continue
            count = min(due, max_batch)
            if max_events is not None:
                count = min(count, max_events - done)
            done += await self._run_batch(count)
            scheduled += count
        return done


async def _all_or_first_error(work: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run concurrently; on the first failure cancel the rest and raise that failure alone."""
    try:
        async with asyncio.TaskGroup() as group:
            for item in work:
                group.create_task(item)
    except BaseExceptionGroup as errors:
        raise errors.exceptions[0] from None


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
    except TimeoutError:
        pass


def _check_rate(rate: float) -> float:
    if not rate > 0:
        raise ValueError(f"rate must be positive (events per second), got {rate!r}")
    return float(rate)


# ---------------------------------------------------------------------------------------------
# The simulator
# ---------------------------------------------------------------------------------------------


class Simulator(_Paced):
    """Simulated agents working concurrently, each through one session at a time.

    ``client`` must be authenticated for one organisation and point at the server root (requests
    go to ``/v1/...``). ``step()`` does one unit of work; ``run()`` paces units at ``rate``.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        rng_seed: int | None = None,
        rate: float = 2.0,
        *,
        agents: int = DEFAULT_AGENTS,
        hostile_rate: float = 0.08,
    ) -> None:
        self.client = client
        self.rng = random.Random(rng_seed)
        self.rate = _check_rate(rate)
        self.agent_count = max(1, agents)
        self.hostile_rate = hostile_rate
        self.agents: list[Agent] = []
        self._started_agents = 0
        #: Requests that failed; the simulator keeps going without the affected agent.
        self.errors = 0
        #: Units of work done.
        self.steps_done = 0
        #: Ids of the sessions this simulator created, oldest first (the most recent 100,000).
        self.session_ids: deque[str] = deque(maxlen=100_000)

    # -- planning (synchronous, draws from the rng only) ------------------------------------

    def _new_agent(self) -> Agent:
        self._started_agents += 1
        return Agent(self._started_agents, write_script(self.rng, hostile_rate=self.hostile_rate))

    def _plan(self, count: int) -> list[tuple[Agent, list[Step]]]:
        """Choose the next ``count`` steps; steps of one agent stay in order."""
        chains: dict[int, tuple[Agent, list[Step]]] = {}
        for _ in range(count):
            self.agents = [a for a in self.agents if not (a.finished or a.broken)]
            while len(self.agents) < self.agent_count:
                self.agents.append(self._new_agent())
            agent = self.rng.choice(self.agents)
            chains.setdefault(agent.number, (agent, []))[1].append(agent.take())
        return list(chains.values())

    # -- execution ----------------------------------------------------------------------------

    async def step(self) -> None:
        """One unit of work: one agent takes its next step."""
        await self._run_batch(1)

    async def _run_batch(self, count: int) -> int:
        chains = self._plan(count)
        if len(chains) == 1:
            agent, steps = chains[0]
            await self._run_chain(agent, steps)
        else:
            await _all_or_first_error(self._run_chain(agent, steps) for agent, steps in chains)
        self.steps_done += count
        return count

    async def _run_chain(self, agent: Agent, steps: list[Step]) -> None:
        for step in steps:
            if agent.broken:
                return
            try:
                await self._execute(agent, step)
            except httpx.HTTPStatusError as error:
                if error.response.status_code in (401, 403):
                    # Every other agent would fail the same way: stop instead of spinning.
                    raise SimulatorAuthError(_describe(error)) from None
                self._drop(agent, error)
            except (httpx.HTTPError, ValueError, LookupError) as error:
                # A deleted session, a server shutting down, a rejected body: drop this agent,
                # keep the others going. The message never includes headers (the API key).
                self._drop(agent, error)

    def _drop(self, agent: Agent, error: Exception) -> None:
        agent.broken = True
        self.errors += 1
        log.warning("simulated agent %d stopped: %s", agent.number, _describe(error))

    async def _execute(self, agent: Agent, step: Step) -> None:
        if step.kind is StepKind.CREATE:
            created = await self._request("POST", "/v1/sessions", step.body)
            agent.session_id = str(created["id"])
            self.session_ids.append(agent.session_id)
            return
        if agent.session_id is None:
            raise ValueError("session was never created")
        base = f"/v1/sessions/{agent.session_id}"
        match step.kind:
            case StepKind.USER_MESSAGE:
                await self._request("POST", f"{base}/messages", step.body)
            case StepKind.EVENT:
                await self._request("POST", f"{base}/events", step.body)
            case StepKind.STATUS | StepKind.VARIABLES:
                await self._request("PATCH", base, step.body)
            case StepKind.COMPLETE:
                await self._request("POST", f"{base}/complete", {})
            case StepKind.CLOSE:
                await self._request("POST", f"{base}/close", {})
            case StepKind.ARTIFACT:
                await self._upload(base, step.body["file"])
            case StepKind.TOOL_CALL:
                created = await self._request("POST", f"{base}/tool-calls", step.body)
                agent.tool_call_ids.append(str(created["id"]))
            case StepKind.CHECK_TOOL_CALL:
                await self._check_tool_call(agent, base, **step.body)
            case StepKind.PROPOSE_ACTION:
                proposal: content.ActionProposal = step.body["proposal"]
                expires_at = datetime.now(UTC) + timedelta(seconds=proposal.expires_in_seconds)
                created = await self._request(
                    "POST",
                    f"{base}/actions",
                    {
                        "tool": proposal.tool,
                        "preview": proposal.preview,
                        "expires_at": expires_at.isoformat(),
                        "destructive": proposal.destructive,
                    },
                )
                agent.action_ids.append(str(created["id"]))
            case StepKind.CHECK_ACTION:
                await self._check_action(agent, base, **step.body)

    async def _check_action(self, agent: Agent, base: str, tool: str, index: int) -> None:
        action_id = agent.action_ids[index]
        action = await self._request("GET", f"{base}/actions/{action_id}")
        status = str(action.get("status", "pending"))
        if status == "pending":
            text = f"Still waiting for a decision on `{tool}`; carrying on with other checks."
            await self._post_event(base, EventType.THINKING, {"content": text})
        elif status in ("processing", "completed"):
            text = f"`{tool}` was approved, thanks. Continuing."
            await self._post_event(
                base, EventType.MESSAGE_AGENT, {"role": "agent", "content": text}
            )
        else:
            text = f"`{tool}` was {status}; I will not do it."
            await self._post_event(
                base, EventType.MESSAGE_AGENT, {"role": "agent", "content": text}
            )

    async def _check_tool_call(self, agent: Agent, base: str, tool: str, index: int) -> None:
        # The list holds only outstanding calls: a call missing from it has been answered.
        outstanding = await self._request("GET", f"{base}/tool-calls")
        pending_ids = {str(call.get("id")) for call in outstanding.get("data", [])}
        if agent.tool_call_ids[index] in pending_ids:
            text = f"The client has not run `{tool}` yet; continuing without it for now."
            await self._post_event(base, EventType.THINKING, {"content": text})
        else:
            text = f"Got the result of `{tool}` from the client, thanks."
            await self._post_event(
                base, EventType.MESSAGE_AGENT, {"role": "agent", "content": text}
            )

    async def _post_event(self, base: str, kind: EventType, payload: dict[str, Any]) -> None:
        await self._request("POST", f"{base}/events", {"type": kind.value, "payload": payload})

    async def _upload(self, base: str, file: content.ArtifactFile) -> None:
        await self._request(
            "POST",
            f"{base}/artifacts",
            {
                "name": file.name,
                "mime_type": file.mime_type,
                "data": base64.b64encode(file.data).decode("ascii"),
                "description": file.description,
            },
        )

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        response = await self.client.request(method, path, json=body)
        response.raise_for_status()
        if not response.content:
            return {}
        data = response.json()
        return data if isinstance(data, dict) else {}


def _describe(error: Exception) -> str:
    if isinstance(error, httpx.HTTPStatusError):
        response = error.response
        return f"{error.request.method} {error.request.url.path} -> {response.status_code}"
    if isinstance(error, httpx.HTTPError):
        return f"{type(error).__name__} on {error.request.method} {error.request.url.path}"
    return f"{type(error).__name__}: {error}"


# ---------------------------------------------------------------------------------------------
# One session at a fixed rate (the live-ingest benchmark)
# ---------------------------------------------------------------------------------------------


class SessionFeeder(_Paced):
    """Appends a realistic mix of events to ONE existing session at ``rate`` events per second.

    ``concurrency`` > 1 keeps several requests in flight for very high rates; the events' order in
    the session then follows arrival, not generation.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        session_id: str,
        rng_seed: int | None = None,
        rate: float = 100.0,
        *,
        concurrency: int = 1,
    ) -> None:
        self.client = client
        self.session_id = session_id
        self.rng = random.Random(rng_seed)
        self.rate = _check_rate(rate)
        self.concurrency = max(1, concurrency)
        self.events_sent = 0
        self._pending: list[dict[str, Any]] = []

    def next_event(self) -> dict[str, Any]:
        """The next event body; tool calls come as started/completed pairs."""
        if self._pending:
            return self._pending.pop(0)
        rng = self.rng
        subject = "the live feed"
        move = rng.random()
        if move < 0.3:
            text = content.agent_message(rng, subject, hostile_content=rng.random() < 0.03)
            return {
                "type": EventType.MESSAGE_AGENT.value,
                "payload": {"role": "agent", "content": text},
            }
        if move < 0.5:
            return {
                "type": EventType.THINKING.value,
                "payload": {"content": content.thinking(rng, subject)},
            }
        if move < 0.6:
            return {"type": EventType.LOG.value, "payload": {"message": content.hostile(rng)[:200]}}
        if move < 0.62:
            return {
                "type": EventType.ERROR.value,
                "payload": {"message": content.tool_error(rng, "probe")},
            }
        tool = rng.choice(("web_search", "query_warehouse", "run_tests", "read_file"))
        call_id = _call_id(rng)
        self._pending.append(
            {
                "type": EventType.TOOL_COMPLETED.value,
                "payload": {
                    "tool": tool,
                    "call_id": call_id,
                    "output": content.tool_output(rng, tool),
                    "duration_ms": rng.randint(5, 5000),
                },
            }
        )
        return {
            "type": EventType.TOOL_STARTED.value,
            "payload": {"tool": tool, "call_id": call_id, "input": content.tool_input(rng, tool)},
        }

    async def step(self) -> None:
        await self._run_batch(1)

    async def _run_batch(self, count: int) -> int:
        bodies = [self.next_event() for _ in range(count)]
        path = f"/v1/sessions/{self.session_id}/events"
        if self.concurrency == 1 and count >= FEEDER_BATCH_MIN:
            # At high rates one request per event costs the server more than the events do:
            # the batch endpoint appends them in one request, in generation order.
            for start in range(0, count, FEEDER_BATCH_MAX):
                response = await self.client.post(
                    f"{path}:batch", json={"events": bodies[start : start + FEEDER_BATCH_MAX]}
                )
                response.raise_for_status()
            self.events_sent += count
            return count

        async def send(body: dict[str, Any]) -> None:
            response = await self.client.post(path, json=body)
            response.raise_for_status()

        if self.concurrency == 1:
            for body in bodies:
                await send(body)
        else:
            # A sliding window, not lock-step rounds: one slow request does not idle the others.
            window = asyncio.Semaphore(self.concurrency)

            async def send_in_window(body: dict[str, Any]) -> None:
                async with window:
                    await send(body)

            await _all_or_first_error(send_in_window(body) for body in bodies)
        self.events_sent += count
        return count


# ---------------------------------------------------------------------------------------------
# Wiring into the server
# ---------------------------------------------------------------------------------------------


class SimulatorSettings(Protocol):
    rate: float
    seed: int | None


def in_process_client(app: Any, api_key: str) -> httpx.AsyncClient:
    """A client that calls ``app`` directly, authenticated as an agent of the key's organisation."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://simulator.invalid",
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=30.0,
    )


async def run_simulator(
    app: Any, settings: SimulatorSettings, stop: asyncio.Event | None = None
) -> None:
    """What the server's lifespan runs when ``--simulate`` is on: simulate into the first API
    key's organisation until cancelled (or until ``stop`` is set)."""
    api_key = _simulator_api_key(app, settings)
    async with in_process_client(app, api_key) as client:
        simulator = Simulator(client, settings.seed, settings.rate)
        log.info("simulator running at %g events/s (seed %s)", settings.rate, settings.seed)
        try:
            await simulator.run(stop)
        except Exception:
            # The server must outlive its simulator; the traceback names no credential.
            log.exception("simulator stopped")


def _simulator_api_key(app: Any, settings: SimulatorSettings) -> str:
    """The first configured key: its organisation is the one the simulator reports into."""
    first_key = getattr(settings, "first_key", None)
    if isinstance(first_key, tuple) and len(first_key) == 2 and first_key[1]:
        return str(first_key[1])
    for name in ("simulator_api_key", "first_api_key", "api_key"):
        value = getattr(app.state, name, None)
        if isinstance(value, str) and value:
            return value
    raise RuntimeError("the simulator needs an API key and none is configured")
