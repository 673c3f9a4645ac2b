"""Every documented Vectara event type has its one-line summary; an unknown type shows its raw
JSON; secret-flagged arguments never reach a summary or a search."""

from __future__ import annotations

from typing import Any

import pytest

from sessionscope.backends.vectara import EVENT_TYPES, secret_arguments
from sessionscope.models import Event
from sessionscope.tui.event_summary import event_json, family, matches, summarize

SECRET = "sk-live-very-secret-value"

PAYLOADS: dict[str, tuple[dict[str, Any], str]] = {
    "input_message": ({"messages": [{"type": "text", "content": "help me"}]}, "help me"),
    "tool_input": (
        {"tool_name": "web_search", "tool_input": {"query": "weather"}},
        'web_search {"query":"weather"}',
    ),
    "tool_output": (
        {"tool_name": "web_search", "tool_output": {"hits": 3}, "error": False},
        'web_search → {"hits":3}',
    ),
    "thinking": ({"content": "considering options"}, "considering options"),
    "agent_output": ({"content": "Here is the answer"}, "Here is the answer"),
    "structured_output": (
        {"schema_name": "ticket", "content": {"id": 7}},
        'ticket: {"id":7}',
    ),
    "artifact_upload": (
        {"artifacts": [{"artifact_id": "art_1", "filename": "r.pdf", "size_bytes": 2048}]},
        "uploaded r.pdf (2,048 bytes)",
    ),
    "step_transition": (
        {"from_step": "triage", "to_step": "billing", "content": "hand off"},
        "step triage → billing: hand off",
    ),
    "step_transition_limit_exceeded": ({"message": "too many steps"}, "too many steps"),
    "compaction": (
        {"turns_compacted": 4, "events_compacted": 12, "summary_key": "s1"},
        "compacted 4 turns, 12 events",
    ),
    "image_read": (
        {"artifact_id": "art_img", "detail": "high"},
        "read image art_img (detail high)",
    ),
    "context_limit_exceeded": (
        {"message": "context full", "context_limit": 1000, "actual_tokens": 1200},
        "context full (1,200 of 1,000 tokens)",
    ),
    "session_interrupted": ({}, "session interrupted"),
    "skill_load": ({"skill_name": "code_review", "content": "…"}, "loaded skill code_review"),
    "client_tool_pending": (
        {
            "pending_calls": [
                {
                    "event_id": "aev_1",
                    "tool_name": "notify_slack",
                    "arguments": secret_arguments({"token": SECRET}),
                }
            ]
        },
        "waiting on 1 client tool call: notify_slack",
    ),
}


def event(event_type: str, payload: dict[str, Any]) -> Event:
    return Event(id="aev_x", session_id="s", sequence=1, type=event_type, payload=payload)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_documented_type_has_a_one_line_summary(event_type: str) -> None:
    payload, expected = PAYLOADS[event_type]
    assert summarize(event(event_type, payload)) == expected
    assert family(event_type) != "other"


def test_an_unknown_type_shows_its_raw_json() -> None:
    assert summarize(event("brand_new_kind", {"a": 1, "b": [2]})) == '{"a":1,"b":[2]}'


def test_secret_arguments_stay_out_of_summaries_json_and_search() -> None:
    payload, _ = PAYLOADS["client_tool_pending"]
    pending = event("client_tool_pending", payload)
    assert SECRET not in summarize(pending)
    assert SECRET not in event_json(pending)
    assert SECRET in event_json(pending, reveal_secrets=True)
    assert not matches(pending, SECRET[:12])
