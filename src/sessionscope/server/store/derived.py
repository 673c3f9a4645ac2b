"""The timeline and the replay of a session, derived from its events."""

from __future__ import annotations

from typing import Any

from sessionscope.models import (
    VISIBILITY_TYPES,
    Event,
    EventType,
    ReplayStep,
    TimelineEntry,
)
from sessionscope.server.store.codecs import PREVIEW_CHARS, SESSION_COUNTER_TYPES

# ---------------------------------------------------------------------------------------------
# Timeline and replay, derived from events.
# ---------------------------------------------------------------------------------------------


def _call_key(payload: dict[str, Any]) -> str | None:
    for key in ("call_id", "tool_call_id", "tool_use_id", "id"):
        value = payload.get(key)
        if isinstance(value, str | int):
            return str(value)
    return None


def _tool_name(payload: dict[str, Any]) -> str:
    value = payload.get("tool") or payload.get("name") or "tool"
    return str(value)


def _pair_tools(events: list[Event]) -> dict[str, Event]:
    """tool.started event id -> its tool.completed/tool.failed event (by call id, else by tool)."""
    open_by_key: dict[str, Event] = {}
    open_by_tool: dict[str, list[Event]] = {}
    pairs: dict[str, Event] = {}
    ends = {EventType.TOOL_COMPLETED.value, EventType.TOOL_FAILED.value}
    for event in events:
        if event.type == EventType.TOOL_STARTED.value:
            key = _call_key(event.payload)
            if key is not None:
                open_by_key[key] = event
            else:
                open_by_tool.setdefault(_tool_name(event.payload), []).append(event)
        elif event.type in ends:
            key = _call_key(event.payload)
            started = open_by_key.pop(key, None) if key is not None else None
            if started is None:
                waiting = open_by_tool.get(_tool_name(event.payload))
                started = waiting.pop(0) if waiting else None
            if started is not None:
                pairs[started.id] = event
    return pairs


def _duration_ms(start: Event, end: Event) -> int:
    return max(0, int((end.created_at - start.created_at).total_seconds() * 1000))


def _summary(event: Event) -> str:
    payload = event.payload
    for key in ("content", "message", "text", "summary", "error"):
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value.splitlines()[0][:PREVIEW_CHARS] if value.strip() else value[:PREVIEW_CHARS]
    if "tool" in payload:
        return _tool_name(payload)
    if "name" in payload:
        return str(payload["name"])
    if "status" in payload:
        return str(payload["status"])
    return ""


def build_timeline(events: list[Event]) -> list[TimelineEntry]:
    # Hide/unhide/delete announcements are for live viewers, not part of the session's story.
    events = [event for event in events if event.type not in VISIBILITY_TYPES]
    pairs = _pair_tools(events)
    ended = {end.id for end in pairs.values()}
    entries: list[TimelineEntry] = []
    for event in events:
        if event.id in ended:
            continue
        end = pairs.get(event.id)
        if end is not None:
            outcome = "failed" if end.type == EventType.TOOL_FAILED.value else "completed"
            entries.append(
                TimelineEntry(
                    sequence=event.sequence,
                    timestamp=event.created_at,
                    kind="tool",
                    summary=f"{_tool_name(event.payload)} {outcome}",
                    event_id=event.id,
                    duration_ms=_duration_ms(event, end),
                )
            )
            continue
        entries.append(
            TimelineEntry(
                sequence=event.sequence,
                timestamp=event.created_at,
                kind=event.type,
                summary=_summary(event),
                event_id=event.id,
            )
        )
    return entries


def build_replay(events: list[Event]) -> list[ReplayStep]:
    pairs = _pair_tools(events)
    ended = {end.id for end in pairs.values()}
    steps: list[ReplayStep] = []
    for event in events:
        if event.id in ended:
            continue
        payload = event.payload
        end = pairs.get(event.id)
        if end is not None:
            steps.append(
                ReplayStep(
                    index=len(steps),
                    timestamp=event.created_at,
                    action=_tool_name(payload),
                    input=payload.get("input", payload.get("arguments")),
                    output=end.payload.get("output", end.payload.get("error")),
                    duration_ms=_duration_ms(event, end),
                )
            )
        elif event.type in SESSION_COUNTER_TYPES:
            steps.append(
                ReplayStep(
                    index=len(steps),
                    timestamp=event.created_at,
                    action=event.type,
                    input=payload.get("content") if event.type == "message.user" else None,
                    output=payload.get("content") if event.type == "message.agent" else None,
                )
            )
        elif event.type == EventType.TOOL_STARTED.value:
            steps.append(
                ReplayStep(
                    index=len(steps),
                    timestamp=event.created_at,
                    action=_tool_name(payload),
                    input=payload.get("input", payload.get("arguments")),
                )
            )
    return steps
