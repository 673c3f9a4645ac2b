"""What a batch of live events means for the session screen, apart from the rows it adds: the
newest sequence, the event types seen, whether the header (session, variables, actions) or the
tool calls are stale, and the visibility notices to apply once the batch is in the store."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sessionscope.models import VISIBILITY_TYPES, Event

#: Event kinds after which the session's header (status, usage, variables, actions) is refetched.
META_PREFIXES = ("session.", "variables.", "action.", "wait.", "turn.")
TOOL_CALL_PREFIX = "tool_call."
#: Platform event types (Vectara's) that add or answer an outstanding client tool call.
TOOL_CALL_CHANGES = frozenset({"client_tool_pending", "tool_output"})
#: Everruns holds calls (approvals, client tools) with one event: the session now waits, with new
#: pending items and tool calls.
HELD_CALLS = "tool.call_requested"


@dataclass
class LiveBatch:
    last_sequence: int
    types: set[str] = field(default_factory=set)
    meta_stale: bool = False
    tool_calls_changed: bool = False
    #: Hide / unhide / delete notices, in arrival order.
    visibility_notices: list[Event] = field(default_factory=list)


def classify(events: Iterable[Event], last_sequence: int) -> LiveBatch:
    """``last_sequence`` is the newest sequence seen before this batch."""
    batch = LiveBatch(last_sequence)
    for event in events:
        if event.sequence > batch.last_sequence:
            batch.last_sequence = event.sequence
        kind = event.type
        batch.types.add(kind)
        if kind == HELD_CALLS:
            batch.meta_stale = batch.tool_calls_changed = True
        elif kind.startswith(META_PREFIXES):
            batch.meta_stale = True
        elif kind.startswith(TOOL_CALL_PREFIX) or kind in TOOL_CALL_CHANGES:
            batch.tool_calls_changed = True
        elif kind in VISIBILITY_TYPES:
            batch.visibility_notices.append(event)
    return batch
