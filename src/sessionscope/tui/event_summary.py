"""One-line, human summaries of events, and the colour family of each event type.

Payload shapes differ between backends, so every summary is a best effort over the common key names
and falls back to a compact ``key=value`` listing. Summaries are plain strings; callers render them
through ``sessionscope.tui.safe`` (they still contain untrusted agent text).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from sessionscope.models import VISIBILITY_TYPES, Event, EventType, mask_secret_arguments
from sessionscope.tui.safe import SECRET_MASK, one_line

#: Colour family of each type prefix; the timeline maps a family to a component class.
_FAMILY_BY_PREFIX: tuple[tuple[str, str], ...] = (
    ("message.user", "user"),
    ("message.", "message"),
    ("thinking", "thinking"),
    ("tool_call.", "tool"),
    ("tool.failed", "error"),
    ("tool.", "tool"),
    ("action.failed", "error"),
    ("action.", "action"),
    ("session.failed", "error"),
    ("session.", "session"),
    ("artifact.", "artifact"),
    ("variables.", "session"),
    ("event.", "session"),
    ("error", "error"),
    ("log", "log"),
    # Vectara's types (vectara-openapi.yaml, AgentEvent).
    ("input_message", "user"),
    ("agent_output", "message"),
    ("structured_output", "message"),
    ("tool_input", "tool"),
    ("tool_output", "tool"),
    ("client_tool_pending", "tool"),
    ("artifact_upload", "artifact"),
    ("image_read", "artifact"),
    ("step_transition_limit_exceeded", "error"),
    ("context_limit_exceeded", "error"),
    ("step_transition", "session"),
    ("compaction", "session"),
    ("session_interrupted", "session"),
    ("skill_load", "log"),
    # Everruns' types (everruns-openapi.json, EventData).
    ("input.message", "user"),
    ("output.message.", "message"),
    ("reason.", "thinking"),
    ("turn.failed", "error"),
    ("turn.", "session"),
)

FAMILIES: tuple[str, ...] = (
    "user",
    "message",
    "thinking",
    "tool",
    "action",
    "session",
    "artifact",
    "error",
    "log",
    "other",
)

#: Timeline entries that name what they are about by id only (AgentInbox): the summary says what
#: happened to which, then any other payload keys.
_ID_SUMMARIES: dict[str, tuple[str, str]] = {
    "session.created": ("sessionId", "session {} created"),
    "inbox.created": ("inboxId", "inbox {} created"),
    "message.received": ("messageId", "message {} received"),
    "wait.completed": ("waitId", "wait {} completed"),
}

_TEXT_KEYS = ("content", "text", "message", "summary", "detail", "reason", "output", "error")
_TOOL_KEYS = ("tool", "tool_name", "name")


# Called twice for every new timeline row (its colour, its summary) with a handful of types.
@lru_cache(maxsize=512)
def family(event_type: str) -> str:
    for prefix, name in _FAMILY_BY_PREFIX:
        if event_type.startswith(prefix):
            return name
    return "other"


def mask_secrets(value: Any) -> Any:
    """Copy of ``value`` with every secret-flagged tool argument's value masked."""
    return mask_secret_arguments(value, SECRET_MASK)


def secret_values(value: Any) -> list[Any]:
    """The values of every secret-flagged tool argument in ``value`` (as ``mask_secrets`` finds
    them), to tell what revealing would show."""
    if isinstance(value, dict):
        if value.get("secret") is True and "value" in value:
            return [value["value"]]
        return [found for item in value.values() for found in secret_values(item)]
    if isinstance(value, list):
        return [found for item in value for found in secret_values(item)]
    return []


def looks_masked(value: Any) -> bool:
    """A value a server already masked before storing it ("********", "••••", "")."""
    return isinstance(value, str) and not value.strip("*•·x ")


def _first(payload: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = payload.get(key)
        if value not in (None, "", [], {}):
            return value
    return None


def _compact(value: Any, limit: int = 160) -> str:
    if isinstance(value, str):
        return value[:limit]
    try:
        text = json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
    except (TypeError, ValueError):
        text = str(value)
    return text[:limit]


def _key_values(payload: dict[str, Any], limit: int = 6) -> str:
    parts = [f"{key}={_compact(value, 60)}" for key, value in list(payload.items())[:limit]]
    if len(payload) > limit:
        parts.append(f"(+{len(payload) - limit} more)")
    return " ".join(parts)


def _arguments(payload: dict[str, Any]) -> str:
    arguments = payload.get("arguments", payload.get("args", payload.get("input")))
    if arguments in (None, "", [], {}):
        return ""
    return _compact(mask_secrets(arguments), 120)


def visibility_change(event: Event) -> tuple[int, str, bool | None] | None:
    """``(sequence, event_id, hidden)`` for an ``event.hidden/unhidden/deleted`` event, where
    ``hidden`` is ``None`` for a deletion; ``None`` for any other event or a malformed payload."""
    if event.type not in VISIBILITY_TYPES or not isinstance(event.payload, dict):
        return None
    sequence = event.payload.get("sequence")
    event_id = event.payload.get("event_id")
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence <= 0:
        return None
    hidden = None if event.type == EventType.EVENT_DELETED else event.type == EventType.EVENT_HIDDEN
    return sequence, str(event_id) if event_id is not None else "", hidden


def _visibility_summary(event: Event) -> str | None:
    change = visibility_change(event)
    if change is None:
        return None
    sequence, event_id, _hidden = change
    verb = event.type.removeprefix("event.")
    return f"event #{sequence} {verb}" + (f" ({event_id})" if event_id else "")


def _text_of(value: Any) -> str:
    return value if isinstance(value, str) else _compact(value)


def _vectara_input(p: dict[str, Any]) -> str:
    parts = []
    for item in p.get("messages") or []:
        if isinstance(item, dict):
            parts.append(
                _text_of(item.get("content"))
                if item.get("content") is not None
                else f"skill {item.get('skill_name', '?')}"
            )
    return " ".join(parts) or _compact(p)


def _vectara_tool_output(p: dict[str, Any]) -> str:
    marker = " (error)" if p.get("error") is True else ""
    return f"{p.get('tool_name', 'tool')}{marker} → {_compact(p.get('tool_output'), 120)}"


def _vectara_artifacts(p: dict[str, Any]) -> str:
    names = [
        f"{a.get('filename', a.get('artifact_id', '?'))}"
        + (f" ({a['size_bytes']:,} bytes)" if isinstance(a.get("size_bytes"), int) else "")
        for a in p.get("artifacts") or []
        if isinstance(a, dict)
    ]
    return "uploaded " + (", ".join(names) or "nothing")


def _vectara_context_limit(p: dict[str, Any]) -> str:
    used, limit = p.get("actual_tokens"), p.get("context_limit")
    counts = (
        f" ({used:,} of {limit:,} tokens)"
        if isinstance(used, int) and isinstance(limit, int)
        else ""
    )
    return f"{_text_of(p.get('message', 'context limit exceeded'))}{counts}"


def _vectara_pending(p: dict[str, Any]) -> str:
    # Only the tool names: the arguments carry secret-derived values.
    calls = [c for c in p.get("pending_calls") or [] if isinstance(c, dict)]
    names = ", ".join(str(c.get("tool_name", "?")) for c in calls)
    return f"waiting on {len(calls)} client tool call{'s' if len(calls) != 1 else ''}: {names}"


#: One line per Vectara event type; payloads arrive with secrets already masked.
_PLATFORM_SUMMARIES: dict[str, Callable[[dict[str, Any]], str]] = {
    "input_message": _vectara_input,
    "agent_output": lambda p: _text_of(p.get("content", "")),
    "structured_output": lambda p: (
        f"{p.get('schema_name', 'output')}: {_compact(p.get('content'), 160)}"
    ),
    "tool_input": lambda p: f"{p.get('tool_name', 'tool')} {_compact(p.get('tool_input'), 120)}",
    "tool_output": _vectara_tool_output,
    "client_tool_pending": _vectara_pending,
    "artifact_upload": _vectara_artifacts,
    "image_read": lambda p: (
        f"read image {p.get('artifact_id', '?')}"
        + (f" (detail {p['detail']})" if p.get("detail") else "")
    ),
    "step_transition": lambda p: (
        f"step {p.get('from_step', '?')} → {p.get('to_step', '?')}"
        + (f": {_text_of(p['content'])}" if p.get("content") else "")
    ),
    "step_transition_limit_exceeded": lambda p: _text_of(
        p.get("message", "step transition limit exceeded")
    ),
    "compaction": lambda p: (
        f"compacted {p.get('turns_compacted', '?')} turns, {p.get('events_compacted', '?')} "
        "events" + (f": {_text_of(p['summary_text'])}" if p.get("summary_text") else "")
    ),
    "context_limit_exceeded": _vectara_context_limit,
    "session_interrupted": lambda p: "session interrupted",
    "skill_load": lambda p: f"loaded skill {p.get('skill_name', '?')}",
}


#: The reference server's audit records (who decided, deleted or closed) carry their sentence.
for _audit in ("audit.decided", "audit.deleted", "audit.closed"):
    _PLATFORM_SUMMARIES[_audit] = lambda p: _text_of(p.get("summary", ""))


def _everruns_text(message: Any) -> str:
    """The text parts of an Everruns message (``{role, content: [{type, text}, ...]}``)."""
    if not isinstance(message, dict):
        return _text_of(message)
    parts = message.get("content")
    if isinstance(parts, list):
        texts = [p.get("text") for p in parts if isinstance(p, dict) and p.get("type") == "text"]
        other = len(parts) - len(texts)
        text = " ".join(str(t) for t in texts if t)
        return text + (f" (+{other} more parts)" if other else "")
    return _text_of(parts)


def _everruns_held(p: dict[str, Any]) -> str:
    calls = [c for c in p.get("tool_calls", []) if isinstance(c, dict)]
    approvals = [c for c in calls if c.get("name") == "approve_tool_call"]
    if approvals:
        tools = ", ".join(str((c.get("arguments") or {}).get("tool", "?")) for c in approvals)
        plural = "s" if len(approvals) != 1 else ""
        return f"{len(approvals)} call{plural} held for approval: {tools}"
    names = ", ".join(str(c.get("name", "?")) for c in calls)
    plural = "s" if len(calls) != 1 else ""
    return f"waiting on {len(calls)} client tool call{plural}: {names}"


#: One line per Everruns event type the console shows often (``tool.started`` and
#: ``tool.completed`` share the reference server's names and its summaries).
_PLATFORM_SUMMARIES.update(
    {
        "input.message": lambda p: _everruns_text(p.get("message")),
        "output.message.completed": lambda p: _everruns_text(p.get("message")),
        "tool.call_requested": _everruns_held,
        "turn.started": lambda p: (
            "turn started"
            + (f": {_compact(p['input_content'], 120)}" if p.get("input_content") else "")
        ),
        "turn.completed": lambda p: "turn completed",
        "turn.cancelled": lambda p: "turn cancelled",
        "session.started": lambda p: "session started",
        "session.activated": lambda p: "session active",
        "session.idled": lambda p: "session idle",
    }
)


def _id_summary(event_type: str, payload: dict[str, Any]) -> str | None:
    known = _ID_SUMMARIES.get(event_type)
    if known is None:
        return None
    key, template = known
    subject = payload.get(key)
    if not isinstance(subject, str):
        return None
    text = template.format(subject)
    rest = {name: value for name, value in payload.items() if name != key}
    return f"{text} {_key_values(rest)}" if rest else text


def summarize(event: Event, limit: int = 200) -> str:
    """A neutralised single line describing ``event`` (no markup is ever parsed from it)."""
    payload = mask_secrets(event.payload) if isinstance(event.payload, dict) else {}
    kind = family(event.type)
    text: str
    visibility = _visibility_summary(event)
    by_id = _id_summary(event.type, payload)
    platform_summary = _PLATFORM_SUMMARIES.get(event.type)
    if visibility is not None:
        text = visibility
    elif by_id is not None:
        text = by_id
    elif platform_summary is not None:
        try:
            text = platform_summary(payload)
        except (TypeError, ValueError, KeyError, AttributeError):
            text = _compact(payload, limit)  # a payload not in the documented shape
    elif kind in ("user", "message", "thinking", "log"):
        body = _first(payload, _TEXT_KEYS)
        text = _compact(body, limit) if body is not None else _key_values(payload)
    elif kind == "tool" or event.type.startswith("tool"):
        tool = _first(payload, _TOOL_KEYS)
        detail = _first(payload, ("error", "result", "output"))
        pieces = [str(tool) if tool is not None else "tool"]
        if event.type.endswith(("started", "requested")):
            args = _arguments(payload)
            if args:
                pieces.append(args)
        elif detail is not None:
            pieces.append("→ " + _compact(detail, 120))
        text = " ".join(pieces)
    elif kind == "action" or event.type.startswith("action"):
        tool = _first(payload, _TOOL_KEYS)
        action_id = payload.get("action_id") or payload.get("id")
        pieces = [str(tool) if tool is not None else "action"]
        if action_id:
            pieces.append(f"({action_id})")
        detail = _first(payload, ("error", "reason", "outcome", "result"))
        if detail is not None:
            pieces.append("→ " + _compact(detail, 100))
        text = " ".join(pieces)
    elif kind == "session":
        status = payload.get("status")
        if status:
            text = f"status → {status}"
        elif event.type.startswith("variables") and isinstance(
            payload.get("context_variables", payload.get("variables")), dict
        ):
            keys = payload.get("context_variables", payload.get("variables")) or {}
            text = "variables: " + ", ".join(sorted(map(str, keys)))
        else:
            text = _key_values(payload)
    elif kind == "artifact":
        name = _first(payload, ("name", "filename", "artifact_id"))
        size = payload.get("size_bytes")
        text = f"{name}" + (f" ({size:,} bytes)" if isinstance(size, int) else "")
    elif kind == "error":
        body = _first(payload, _TEXT_KEYS)
        text = _compact(body, limit) if body is not None else _key_values(payload)
    else:
        # A type this console does not know: its raw JSON (secrets masked).
        text = _compact(payload, limit)
    if event.hidden:
        reason = f": {event.hide_reason}" if event.hide_reason else ""
        text = f"[hidden{reason}] {text}"
    return one_line(text, limit)


def event_json(event: Event, *, reveal_secrets: bool = False) -> str:
    """The event as indented JSON, secrets masked unless revealed."""
    data = event.model_dump(mode="json")
    if not reveal_secrets:
        data = mask_secrets(data)
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def matches(event: Event, needle: str) -> bool:
    """Case-insensitive text search over type, summary-relevant payload and ids (secrets masked,
    so a search cannot reveal a secret by probing)."""
    if not needle:
        return False
    needle = needle.casefold()
    if needle in event.type.casefold():
        return True
    haystack = _compact(mask_secrets(event.payload), 1_000_000)
    return needle in haystack.casefold()
