"""Which key bindings change something on the server: off (and labelled so) in read-only mode."""

from __future__ import annotations

MUTATING_BINDING_IDS: frozenset[str] = frozenset(
    {
        "sessions.close",
        "sessions.new",
        "session.message",
        "session.edit",
        "session.edit_variables",
        "session.close",
        "session.complete",
        "session.delete",
        "session.event_visibility",
        "session.pause",
        "session.resume",
        "tool_calls.answer",
        "action.confirm",
        "action.cancel",
        "create.submit",
        "edit.save",
        "variables.save",
        "message.send",
        "tool_result.submit",
        "tool_result.error",
        "event_visibility.hide",
        "event_visibility.unhide",
        "event_visibility.delete",
    }
)
