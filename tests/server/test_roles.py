"""Roles for keys: every operation x every kind of caller, with the status each must get; and the
record of who decided, deleted or closed, in the session's own timeline."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from sessionscope.models import KeyIdentity, PendingAction, TimelineEntry
from sessionscope.server.roles import key_name

FULL = "roles-full-key-0001"
OTHER = "roles-other-org-key-0002"
AGENT = "roles-agent-key-0003"
OPERATOR = "roles-operator-key-0004"
VIEWER = "roles-viewer-key-0005"
ROLE_KEYS = {"agent": AGENT, "operator": OPERATOR, "viewer": VIEWER}
CALLERS = ("no key", "wrong key", "other org", "agent", "operator", "viewer")

READ = {"agent", "operator", "viewer"}
AGENT_ONLY = {"agent"}
OPERATOR_ONLY = {"operator"}
AGENT_OR_OPERATOR = {"agent", "operator"}
PUBLIC: set[str] = set()


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    roles: set[str]
    success: int
    body: Any = None
    stream: bool = False

    @property
    def scoped(self) -> bool:
        """Under a session: another organisation's caller gets 404 there."""
        return "{session}" in self.path

    def expected(self, caller: str) -> int:
        if self.roles is PUBLIC:
            return self.success
        if caller in ("no key", "wrong key"):
            return 401
        if caller == "other org":
            return 404 if self.scoped else self.success
        return self.success if caller in self.roles else 403


S = "/v1/sessions/{session}"
OPERATIONS: dict[str, Operation] = {
    "health": Operation("GET", "/v1/health", PUBLIC, 200),
    "ready": Operation("GET", "/v1/ready", PUBLIC, 200),
    "whoami": Operation("GET", "/v1/whoami", READ, 200),
    "list sessions": Operation("GET", "/v1/sessions", READ, 200),
    "create session": Operation("POST", "/v1/sessions", AGENT_OR_OPERATOR, 201, {"title": "t"}),
    "get session": Operation("GET", S, READ, 200),
    "update session": Operation("PATCH", S, OPERATOR_ONLY, 200, {"title": "renamed"}),
    "delete session": Operation("DELETE", S, OPERATOR_ONLY, 204),
    "close session": Operation("POST", f"{S}/close", OPERATOR_ONLY, 200),
    "complete session": Operation("POST", f"{S}/complete", AGENT_OR_OPERATOR, 200),
    "send message": Operation("POST", f"{S}/messages", OPERATOR_ONLY, 201, {"content": "hi"}),
    "list events": Operation("GET", f"{S}/events", READ, 200),
    "append event": Operation("POST", f"{S}/events", AGENT_ONLY, 201, {"type": "log"}),
    "append events": Operation(
        "POST", f"{S}/events:batch", AGENT_ONLY, 201, {"events": [{"type": "log"}]}
    ),
    "session stream": Operation("GET", f"{S}/events/stream", READ, 200, stream=True),
    "get event": Operation("GET", f"{S}/events/{{event}}", READ, 200),
    "delete event": Operation("DELETE", f"{S}/events/{{event}}", OPERATOR_ONLY, 204),
    "hide event": Operation("POST", f"{S}/events/{{event}}/hide", OPERATOR_ONLY, 200),
    "unhide event": Operation("POST", f"{S}/events/{{event}}/unhide", OPERATOR_ONLY, 200),
    "timeline": Operation("GET", f"{S}/timeline", READ, 200),
    "replay": Operation("POST", f"{S}/replay", READ, 200),
    "org stream": Operation("GET", "/v1/stream", READ, 200, stream=True),
    "list artifacts": Operation("GET", f"{S}/artifacts", READ, 200),
    "upload artifact": Operation(
        "POST",
        f"{S}/artifacts",
        AGENT_ONLY,
        201,
        {"name": "a.txt", "data": base64.b64encode(b"abc").decode()},
    ),
    "get artifact": Operation("GET", f"{S}/artifacts/{{artifact}}", READ, 200),
    "artifact content": Operation("GET", f"{S}/artifacts/{{artifact}}/content", READ, 200),
    "list tool calls": Operation("GET", f"{S}/tool-calls", READ, 200),
    "request tool call": Operation("POST", f"{S}/tool-calls", AGENT_ONLY, 201, {"tool": "ls"}),
    "submit tool result": Operation(
        "POST", f"{S}/tool-calls/{{call}}/result", OPERATOR_ONLY, 200, {"output": "ok"}
    ),
    "list actions": Operation("GET", "/v1/actions", READ, 200),
    "list session actions": Operation("GET", f"{S}/actions", READ, 200),
    "propose action": Operation("POST", f"{S}/actions", AGENT_ONLY, 201, {"tool": "rm"}),
    "get action": Operation("GET", f"{S}/actions/{{action}}", READ, 200),
    "decide action": Operation(
        "POST", f"{S}/actions/{{action}}", OPERATOR_ONLY, 202, {"confirmed": True}
    ),
}


KEYS = [("acme", FULL), ("globex", OTHER), *(("acme", key) for key in ROLE_KEYS.values())]


@pytest.fixture
def roles_server(make_server: Any) -> Any:
    return make_server(api_keys=KEYS, key_roles={key: role for role, key in ROLE_KEYS.items()})


def _client(url: str, key: str | None) -> httpx.Client:
    headers = {"X-API-Key": key} if key is not None else {}
    return httpx.Client(base_url=url, headers=headers, timeout=30.0)


def _targets(owner: httpx.Client) -> dict[str, str]:
    """A fresh session with one of everything, made with a full key."""
    session = owner.post("/v1/sessions", json={"title": "roles"}).json()["id"]
    base = f"/v1/sessions/{session}"
    event = owner.post(f"{base}/events", json={"type": "log"}).json()["id"]
    artifact = owner.post(
        f"{base}/artifacts", json={"name": "x.txt", "data": base64.b64encode(b"x").decode()}
    ).json()["id"]
    call = owner.post(f"{base}/tool-calls", json={"tool": "ls"}).json()["id"]
    action = owner.post(f"{base}/actions", json={"tool": "rm"}).json()["id"]
    return {
        "session": session,
        "event": event,
        "artifact": artifact,
        "call": call,
        "action": action,
    }


def _key_for(caller: str) -> str | None:
    return {"no key": None, "wrong key": "not-a-key", "other org": OTHER}.get(
        caller, ROLE_KEYS.get(caller)
    )


def _call(client: httpx.Client, operation: Operation, targets: dict[str, str]) -> httpx.Response:
    path = operation.path.format(**targets)
    if operation.stream:
        with client.stream(operation.method, path) as response:
            if response.status_code >= 400:
                response.read()
            return response
    return client.request(operation.method, path, json=operation.body)


def test_every_operation_for_every_caller(roles_server: Any) -> None:
    url = roles_server.url
    mismatches: list[str] = []
    checked = 0
    with _client(url, FULL) as owner:
        shared = _targets(owner)
        for caller in CALLERS:
            with _client(url, _key_for(caller)) as client:
                for name, operation in OPERATIONS.items():
                    # Reads share one session; what may change or delete gets a fresh one.
                    reads = operation.method == "GET"
                    response = _call(client, operation, shared if reads else _targets(owner))
                    expected = operation.expected(caller)
                    checked += 1
                    if response.status_code != expected:
                        mismatches.append(
                            f"{name} as {caller}: {response.status_code}, expected {expected}"
                        )
                        continue
                    if expected == 403:
                        problem = response.json()
                        assert response.headers["content-type"].startswith(
                            "application/problem+json"
                        )
                        assert caller in problem["detail"], problem
    assert not mismatches, "\n".join(mismatches)
    assert checked == len(OPERATIONS) * len(CALLERS)


def test_every_operation_is_in_the_matrix(roles_server: Any) -> None:
    with _client(roles_server.url, None) as client:
        document = client.get("/openapi.json").json()
    declared = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    names = {"session": "session_id", "event": "event_id", "artifact": "artifact_id"}
    names |= {"call": "call_id", "action": "action_id"}
    covered = set()
    for operation in OPERATIONS.values():
        path = operation.path
        for short, long in names.items():
            path = path.replace("{" + short + "}", "{" + long + "}")
        covered.add((operation.method, path))
    assert declared == covered


def test_whoami_names_the_role_never_the_key(roles_server: Any) -> None:
    for role, key in [*ROLE_KEYS.items(), (None, FULL)]:
        with _client(roles_server.url, key) as client:
            response = client.get("/v1/whoami")
            identity = KeyIdentity.model_validate(response.json())
            assert identity.organisation == "acme" and identity.role == role
            assert identity.key == key_name(key) and key not in response.text
            assert identity.read_only is (role == "viewer")


def test_decisions_and_deletions_are_recorded_in_the_timeline(roles_server: Any) -> None:
    with _client(roles_server.url, FULL) as owner, _client(roles_server.url, OPERATOR) as ops:
        targets = _targets(owner)
        base = f"/v1/sessions/{targets['session']}"
        cancel = PendingAction.model_validate(
            owner.post(f"{base}/actions", json={"tool": "send_email"}).json()
        )
        assert ops.post(f"{base}/actions/{targets['action']}", json={"confirmed": True}).is_success
        assert ops.post(f"{base}/actions/{cancel.id}", json={"confirmed": False}).is_success
        assert ops.delete(f"{base}/events/{targets['event']}").status_code == 204
        assert ops.post(f"{base}/close").status_code == 200
        events = owner.get(f"{base}/events", params={"limit": 1000}).json()["data"]
        audits = [event for event in events if event["type"].startswith("audit.")]
        assert [event["type"] for event in audits] == [
            "audit.decided",
            "audit.decided",
            "audit.deleted",
            "audit.closed",
        ]
        for event in audits:
            assert event["payload"]["key"] == key_name(OPERATOR)
            assert event["payload"]["role"] == "operator"
        assert audits[0]["payload"]["confirmed"] is True and audits[0]["payload"]["tool"] == "rm"
        assert audits[1]["payload"]["confirmed"] is False
        assert audits[2]["payload"]["event_id"] == targets["event"]
        # The key itself is nowhere in what the session holds.
        assert OPERATOR not in owner.get(f"{base}/events", params={"limit": 1000}).text
        timeline = [
            TimelineEntry.model_validate(entry)
            for entry in owner.get(f"{base}/timeline").json()["data"]
        ]
        summaries = [entry.summary for entry in timeline if entry.kind.startswith("audit.")]
        assert summaries[0] == f"confirmed rm (key {key_name(OPERATOR)}, role operator)"
        assert summaries[1].startswith("cancelled send_email")
        # A key without a role is recorded as such.
        again = _targets(owner)
        path = f"/v1/sessions/{again['session']}/actions/{again['action']}"
        owner.post(path, json={"confirmed": False})
        recorded = owner.get(f"/v1/sessions/{again['session']}/events").json()["data"]
        audit = [event for event in recorded if event["type"] == "audit.decided"]
        assert audit[0]["payload"]["role"] == "full"


def test_key_specs_take_a_role_and_refuse_unknown_ones() -> None:
    from sessionscope.server.settings import api_key_specs_from_env, parse_api_key_spec

    assert parse_api_key_spec("abc") == ("default", "abc", None)
    assert parse_api_key_spec("acme:abc") == ("acme", "abc", None)
    assert parse_api_key_spec("acme:abc:viewer") == ("acme", "abc", "viewer")
    for bad in ("acme:abc:viewr", "acme:abc:", "acme::viewer", "a:b:c:d"):
        with pytest.raises(ValueError):
            parse_api_key_spec(bad)
    env = {"SESSIONSCOPE_SERVER_API_KEYS": "k1, acme:k2:agent"}
    assert api_key_specs_from_env(env) == [("default", "k1", None), ("acme", "k2", "agent")]
