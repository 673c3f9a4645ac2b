"""Several profiles at once: two reference servers as two profiles of one fleet, real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from client_support import FAST

from sessionscope.audit import ALREADY_DECIDED, SENT, AuditLog
from sessionscope.backends import BackendConfig, create_backend
from sessionscope.backends.audited import AuditedBackend
from sessionscope.backends.fleet import (
    SEPARATOR,
    DecisionRequest,
    FleetBackend,
    FleetMember,
    ReadOnlyProfile,
    decide_many,
    summarise,
)
from sessionscope.models import ActionStatus


def agent(running: Any) -> httpx.Client:
    return httpx.Client(
        base_url=f"{running.url}/v1",
        headers={"Authorization": f"Bearer {running.api_key}"},
        timeout=10.0,
    )


def create_session(running: Any, title: str) -> str:
    with agent(running) as client:
        response = client.post("/sessions", json={"title": title})
        response.raise_for_status()
        session_id: str = response.json()["id"]
        return session_id


def propose(running: Any, session_id: str, tool: str = "send_email") -> str:
    with agent(running) as client:
        response = client.post(f"/sessions/{session_id}/actions", json={"tool": tool})
        response.raise_for_status()
        action_id: str = response.json()["id"]
        return action_id


def action_status(running: Any, session_id: str, action_id: str) -> str:
    with agent(running) as client:
        response = client.get(f"/sessions/{session_id}/actions/{action_id}")
        response.raise_for_status()
        status: str = response.json()["status"]
        return status


def member(name: str, running: Any, *, read_only: bool = False, log: AuditLog | None = None):  # type: ignore[no-untyped-def]
    backend = create_backend(
        BackendConfig(url=running.url, api_key=running.api_key, timeout=5.0, options=dict(FAST))
    )
    if log is not None:
        backend = AuditedBackend(backend, log, profile=name)
    return FleetMember(name, backend, read_only=read_only)


@pytest.fixture
async def two_servers(make_server: Callable[..., Any]) -> AsyncIterator[tuple[Any, Any]]:
    yield make_server(), make_server()


async def test_the_merged_list_holds_both_profiles_newest_first_each_once(
    two_servers: tuple[Any, Any],
) -> None:
    first, second = two_servers
    made = {("a", create_session(first, f"a{n}")) for n in range(4)}
    made |= {("b", create_session(second, f"b{n}")) for n in range(3)}
    fleet = FleetBackend([member("a", first), member("b", second)])
    async with fleet:
        first_page = await fleet.list_sessions(limit=3)
        assert first_page.total == 7
        listed = [session async for session in fleet.iter_sessions(page_size=2)]
    ids = [session.id for session in listed]
    assert len(ids) == len(set(ids)) == 7
    assert {tuple(i.split(SEPARATOR, 1)) for i in ids} == made
    assert {getattr(session, "profile", None) for session in listed} == {"a", "b"}
    times = [session.created_at for session in listed]
    assert times == sorted(times, reverse=True), "the merged list is newest first"


async def test_one_inbox_and_a_decision_reaches_only_its_owner(
    two_servers: tuple[Any, Any],
) -> None:
    first, second = two_servers
    first_session = create_session(first, "first")
    second_session = create_session(second, "second")
    first_action = propose(first, first_session)
    second_action = propose(second, second_session)
    fleet = FleetBackend([member("a", first), member("b", second)])
    async with fleet:
        inbox = await fleet.list_pending_actions()
        assert {(getattr(i, "profile", None), i.session_id) for i in inbox} == {
            ("a", f"a{SEPARATOR}{first_session}"),
            ("b", f"b{SEPARATOR}{second_session}"),
        }
        owned = next(item for item in inbox if getattr(item, "profile", None) == "b")
        result = await fleet.decide_action(owned.session_id, owned.id, False)
    assert result.status is ActionStatus.CANCELLED
    assert action_status(second, second_session, second_action) == "cancelled"
    assert action_status(first, first_session, first_action) == "pending"


async def test_a_read_only_profile_is_listed_but_never_changed(
    two_servers: tuple[Any, Any],
) -> None:
    first, second = two_servers
    session_id = create_session(second, "watched only")
    action_id = propose(second, session_id)
    fleet = FleetBackend([member("a", first), member("b", second, read_only=True)])
    async with fleet:
        inbox = await fleet.list_pending_actions()
        item = next(i for i in inbox if getattr(i, "profile", None) == "b")
        with pytest.raises(ReadOnlyProfile) as refused:
            await fleet.decide_action(item.session_id, item.id, True)
    assert "read-only" in str(refused.value)
    assert action_status(second, session_id, action_id) == "pending"


async def test_a_stopped_profile_leaves_the_other_usable_and_says_why(
    two_servers: tuple[Any, Any],
) -> None:
    first, second = two_servers
    kept = create_session(first, "still here")
    create_session(second, "gone soon")
    propose(first, kept)
    second.thread.stop()
    fleet = FleetBackend([member("a", first), member("b", second)])
    async with fleet:
        page = await fleet.list_sessions(limit=10)
        inbox = await fleet.list_pending_actions()
        session = await fleet.get_session(f"a{SEPARATOR}{kept}")
    assert [s.id for s in page.data] == [f"a{SEPARATOR}{kept}"]
    assert len(inbox) == 1 and session.title == "still here"
    error = fleet.member_health["b"].error
    assert error is not None and "Cannot reach" in error
    assert fleet.member_health["a"].error is None


async def test_a_batch_across_profiles_is_sent_once_each_and_summarised(
    two_servers: tuple[Any, Any], tmp_path: Path
) -> None:
    first, second = two_servers
    log = AuditLog(tmp_path / "audit.jsonl")
    sessions = [(first, create_session(first, "a")), (second, create_session(second, "b"))]
    proposed = [
        (running, session_id, propose(running, session_id, tool=f"tool{n}"))
        for n, (running, session_id) in enumerate((sessions * 3)[:5])
    ]
    fleet = FleetBackend([member("a", first, log=log), member("b", second, log=log)])
    async with fleet:
        inbox = await fleet.list_pending_actions()
        assert len(inbox) == 5
        # Someone else decides one of them first, through the server directly.
        running, session_id, action_id = proposed[1]
        with agent(running) as client:
            client.post(
                f"/sessions/{session_id}/actions/{action_id}", json={"confirmed": False}
            ).raise_for_status()
        outcomes = await decide_many(
            fleet, [DecisionRequest(item, "confirm") for item in inbox], reason="batch"
        )
    words = sorted(outcome.outcome for outcome in outcomes)
    assert words == sorted([SENT] * 4 + [ALREADY_DECIDED])
    assert summarise(outcomes) == "4 sent, 1 already decided"
    already = next(o for o in outcomes if o.outcome == ALREADY_DECIDED)
    assert already.request.action.id.endswith(action_id)
    records = log.records()
    assert len(records) == 5, "one trail entry per send"
    assert sorted(record.outcome for record in records) == words
    assert all(record.operation == "decide" and record.idempotency_key for record in records)
    assert {record.profile for record in records} == {"a", "b"}


def test_the_audit_command_prints_and_filters_the_trail(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sessionscope.cli import main

    log = AuditLog(tmp_path / "sessionscope" / "audit.jsonl")
    sent = log.begin("decide", profile="prod", backend="native", session_id="s1", choice="confirm")
    log.finish(sent, SENT, "processing")
    log.begin("close", profile="staging", backend="everruns", session_id="s\x1b[2J2")
    runner = CliRunner()
    env = {"XDG_DATA_HOME": str(tmp_path)}
    everything = runner.invoke(main, ["audit"], env=env)
    assert everything.exit_code == 0, everything.output
    assert "prod native s1 decide confirm -> sent (processing)" in everything.output
    assert "close -> interrupted" in everything.output, "a send with no answer shows"
    assert "\x1b" not in everything.output
    only_prod = runner.invoke(main, ["audit", "--profile", "prod", "--json"], env=env)
    assert only_prod.output.count("\n") == 1 and '"outcome": "sent"' in only_prod.output


def test_the_audited_wrapper_answers_every_interface_question_as_the_backend_does(
    tmp_path: Path,
) -> None:
    from sessionscope.backends.base import Backend

    inner = create_backend(BackendConfig(url="http://127.0.0.1:9", options={"poll": True}))
    # An instance whose every public fact differs from the interface's default.
    for attribute, value in vars(Backend).items():
        if attribute.startswith("_") or callable(value) or isinstance(value, property):
            continue
        object.__setattr__(inner, attribute, ("changed", attribute))
    wrapped = AuditedBackend(inner, AuditLog(tmp_path / "a.jsonl"))
    for attribute, value in vars(Backend).items():
        if attribute.startswith("_") or callable(value) or isinstance(value, property):
            continue
        assert getattr(wrapped, attribute) == ("changed", attribute), attribute
    heard: list[Any] = []
    inner.set_retry_listener = heard.append  # type: ignore[method-assign]
    wrapped.set_retry_listener("listener")  # type: ignore[arg-type]
    assert heard == ["listener"]


async def test_the_rest_of_a_partly_merged_page_is_not_asked_for_again(
    two_servers: tuple[Any, Any],
) -> None:
    first, second = two_servers
    for n in range(6):
        create_session(first, f"a{n}")
        create_session(second, f"b{n}")
    members = [member("a", first), member("b", second)]
    asked: list[tuple[str, str | None]] = []
    for fleet_member in members:
        inner = fleet_member.backend.list_sessions

        async def counted(
            *args: Any, _inner: Any = inner, _name: str = fleet_member.name, **kwargs: Any
        ) -> Any:
            asked.append((_name, kwargs.get("cursor")))
            return await _inner(*args, **kwargs)

        fleet_member.backend.list_sessions = counted  # type: ignore[method-assign]
    fleet = FleetBackend(members)
    async with fleet:
        listed = [session async for session in fleet.iter_sessions(page_size=4)]
    assert len({session.id for session in listed}) == 12
    times = [session.created_at for session in listed]
    assert times == sorted(times, reverse=True)
    # Each member page of 4 rows is fetched once, though each merged page uses only part of it.
    assert len(asked) == len(set(asked)), asked
