"""The FastAPI application: schema on startup, expiry sweeper, optional simulator."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic.warnings import UnsupportedFieldAttributeWarning
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import sessionscope
from sessionscope.server import api, openapi, readiness
from sessionscope.server.broker import Broker
from sessionscope.server.db import make_engine, prepare_schema
from sessionscope.server.errors import install_error_handlers, problem
from sessionscope.server.pg_fanout import PgFanout
from sessionscope.server.settings import ServerSettings, sqlite_path
from sessionscope.server.store import Store

log = logging.getLogger("sessionscope.server")


async def _sweep_forever(store: Store, settings: ServerSettings) -> None:
    # Confirmed actions normally finish on their own timer; the sweeper catches those a restart
    # interrupted, with generous slack so it never races the timer.
    stale_after = max(settings.action_completion_delay * 4, 5.0)
    # Pruning is a bulk delete: often enough to keep the table near the window, no more.
    prune_every = min(60.0, max(settings.org_change_retention / 2, settings.sweep_interval))
    loop = asyncio.get_running_loop()
    next_prune = loop.time()
    while True:
        try:
            await store.sweep(stale_after=stale_after)
            if loop.time() >= next_prune:
                next_prune = loop.time() + prune_every
                await store.prune_org_changes(settings.org_change_retention)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("action sweep failed; retrying")
        await asyncio.sleep(settings.sweep_interval)


async def _start_fanout(
    engine: AsyncEngine, broker: Broker, store: Store, settings: ServerSettings
) -> PgFanout | None:
    """On PostgreSQL other replicas may write too: live streams are fed from the database
    (see ``pg_fanout``). SQLite keeps publishing in process."""
    if engine.dialect.name != "postgresql":
        return None
    fanout = PgFanout(settings.db_url, broker, catch_up_interval=settings.fanout_catch_up_interval)
    await fanout.start()
    broker.follower = fanout
    store.fanout = fanout
    return fanout


def _start_simulator(app: FastAPI, settings: ServerSettings) -> asyncio.Task[object] | None:
    try:
        module = importlib.import_module("sessionscope.server.simulator")
    except ModuleNotFoundError as error:
        if error.name != "sessionscope.server.simulator":
            raise
        log.warning("the simulator is not available in this build")
        return None
    result = module.run_simulator(app, settings)
    if inspect.isawaitable(result):
        return asyncio.ensure_future(result)
    return None


def create_app(settings: ServerSettings) -> FastAPI:
    # The shared models defer building their validators (console start-up cost), so FastAPI now
    # builds its body validators at the first request, outside its own suppression of this
    # false positive about its Body(alias=...) parameters (pydantic issue 12356).
    warnings.filterwarnings(
        "ignore", message=r"The 'alias' attribute", category=UnsupportedFieldAttributeWarning
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db_file = sqlite_path(settings.db_url)
        if db_file is not None:
            db_file.parent.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.db_url)
        await prepare_schema(engine)
        broker = Broker(settings.stream_queue_size)
        store = Store(
            engine,
            broker,
            action_completion_delay=settings.action_completion_delay,
            session_update_interval=settings.session_update_interval,
        )
        fanout = await _start_fanout(engine, broker, store, settings)
        app.state.engine = engine
        app.state.broker = broker
        app.state.store = store
        app.state.fanout = fanout
        tasks: list[asyncio.Task[object]] = [
            asyncio.create_task(_sweep_forever(store, settings), name="sessionscope-sweeper")
        ]
        if settings.simulate:
            simulator = _start_simulator(app, settings)
            if simulator is not None:
                tasks.append(simulator)
        try:
            yield
        finally:
            broker.close_all()
            if fanout is not None:
                await fanout.stop()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await store.aclose()
            await engine.dispose()

    app = FastAPI(
        title="sessionscope Sessions API",
        version=sessionscope.__version__,
        lifespan=lifespan,
    )
    app.state.settings = settings
    first = settings.first_key
    #: The simulator reports into the first key's organisation, through the API, with this key.
    app.state.org = first[0] if first else None
    app.state.api_key = first[1] if first else None
    install_error_handlers(app)
    for router in api.ROUTERS:
        app.include_router(router)
    app.include_router(readiness.router)
    openapi.install(app)

    app.add_middleware(
        _BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        max_event_bytes=min(settings.max_event_bytes, settings.max_body_bytes),
    )
    return app


class _BodySizeLimit:
    """Agents are untrusted: refuse an oversized body, before anything reads it when its size is
    declared, and as soon as the limit is passed when it is not (a chunked upload). Only an
    artifact upload may take ``max_bytes``; every other body becomes an event or an object a
    client reads back whole, so it is held to ``max_event_bytes`` (a 90 MB event would be
    accepted, then unreadable by the client).

    Plain ASGI: Starlette's ``@app.middleware("http")`` runs every request through a task and
    a memory stream (a sixth of a small request's server time)."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_event_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_event_bytes = max_event_bytes

    def _limit(self, scope: Scope) -> int:
        upload = scope["method"] == "POST" and scope["path"].endswith("/artifacts")
        return self.max_bytes if upload else self.max_event_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunked = False
        limit = self._limit(scope)
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > limit:
                    refusal = problem(413, self._too_large(limit))
                    await refusal(scope, receive, send)
                    return
                # The server holds the client to its declared length.
                await self.app(scope, receive, send)
                return
            if name == b"transfer-encoding":
                chunked = True
        # Without either header there is no body (HTTP/1.1), and nothing to count: streams and
        # other GETs go straight through.
        await self.app(scope, self._counted(receive, limit) if chunked else receive, send)

    def _too_large(self, limit: int) -> str:
        return f"the request body exceeds {limit} bytes"

    def _counted(self, receive: Receive, limit: int) -> Receive:
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised where the route reads its body. Starlette's HTTPException, because
                    # FastAPI turns any other error while it reads a body into a 400.
                    raise HTTPException(413, self._too_large(limit))
            return message

        return counted
