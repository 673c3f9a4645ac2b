"""Shared data models: what the server sends, what the client parses, what the console shows.

Pydantic v2 only; no Textual, FastAPI or SQLAlchemy imports, so any layer can use them.

Every model tolerates unknown fields (``extra="allow"``) so an older console keeps working against a
newer server, and serialises timestamps as ISO 8601 UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

T = TypeVar("T")

#: Context variable keys, per ag2trust-sessions.txt: UPPERCASE_SNAKE_CASE.
VARIABLE_KEY_PATTERN = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$")
MAX_CONTEXT_VARIABLES = 20
MAX_CONTEXT_VARIABLES_BYTES = 4096
#: The most a client reads of one reply (the native backend's default ``max_response_bytes``).
#: The reference server keeps every page of events under it.
MAX_REPLY_BYTES = 64 * 1024 * 1024
#: The largest request that becomes an event (an append, a batch of appends, a message) the
#: reference server accepts (413 above): well under ``MAX_REPLY_BYTES``, so a page always holds
#: at least the event that starts it.
MAX_EVENT_BYTES = 16 * 1024 * 1024
#: A media type as ``Content-Type`` carries it (RFC 9110 tokens, optional parameters).
MEDIA_TYPE_PATTERN = (
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
    r"(?:[ \t]*;[ \t]*[A-Za-z0-9!#$&^_.+-]+=(?:[A-Za-z0-9!#$&^_.+-]+|\"[ !#-\[\]-~]*\"))*$"
)
#: Standard base64 with padding, as the server decodes it.
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
#: The largest stream position (event sequence, organisation change id, events cursor) a
#: server keeps: a signed 64-bit integer. A larger one is a client error (400), not a position.
MAX_POSITION = 2**63 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class Model(BaseModel):
    """Base for all wire models: unknown fields are kept, not rejected."""

    # defer_build: a process imports every model but validates few of them; building all the
    # validators at import cost the console's start ~150 ms. Each is built on first use instead.
    model_config = ConfigDict(
        extra="allow", populate_by_name=True, use_enum_values=False, defer_build=True
    )


class SessionStatus(StrEnum):
    CREATED = "created"
    ACTIVE = "active"
    IDLE = "idle"
    PAUSED = "paused"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CLOSED = "closed"

    @property
    def is_terminal(self) -> bool:
        return self in (SessionStatus.COMPLETED, SessionStatus.FAILED, SessionStatus.CLOSED)


class EventType(StrEnum):
    """Event types the reference server emits. Other backends may send types outside this set:
    ``Event.type`` is a plain string so that they survive; use ``EventType`` for comparisons."""

    SESSION_CREATED = "session.created"
    SESSION_UPDATED = "session.updated"
    SESSION_STATUS = "session.status"
    SESSION_CLOSED = "session.closed"
    SESSION_COMPLETED = "session.completed"
    SESSION_FAILED = "session.failed"
    MESSAGE_USER = "message.user"
    MESSAGE_AGENT = "message.agent"
    THINKING = "thinking"
    TOOL_STARTED = "tool.started"
    TOOL_COMPLETED = "tool.completed"
    TOOL_FAILED = "tool.failed"
    TOOL_CALL_REQUESTED = "tool_call.requested"
    TOOL_CALL_RESULT = "tool_call.result"
    ARTIFACT_CREATED = "artifact.created"
    ACTION_PENDING = "action.pending"
    ACTION_CONFIRMED = "action.confirmed"
    ACTION_CANCELLED = "action.cancelled"
    ACTION_EXPIRED = "action.expired"
    ACTION_COMPLETED = "action.completed"
    ACTION_FAILED = "action.failed"
    VARIABLES_UPDATED = "variables.updated"
    ERROR = "error"
    LOG = "log"
    #: Bookkeeping: an operator changed an event's visibility; payload ``{event_id, sequence}``.
    #: They never appear in a timeline.
    EVENT_HIDDEN = "event.hidden"
    EVENT_UNHIDDEN = "event.unhidden"
    EVENT_DELETED = "event.deleted"
    #: Who decided, deleted or closed, through which key (its name, never the key) and role:
    #: payload ``{key, role, summary, ...}`` (``action_id``/``tool``/``confirmed``; ``event_id``/
    #: ``sequence``).
    AUDIT_DECIDED = "audit.decided"
    AUDIT_DELETED = "audit.deleted"
    AUDIT_CLOSED = "audit.closed"
    #: Not a session event: the organisation stream's ``OrgChange.kind`` when a client resumed
    #: from before the server's retention window (it should reload what it lists).
    STREAM_RESET = "stream.reset"


#: The bookkeeping types: an operator changed another event's visibility (payload ``{event_id,
#: sequence}``). Announcements for live viewers, not agent activity: never in a timeline.
VISIBILITY_TYPES: frozenset[EventType] = frozenset(
    {EventType.EVENT_HIDDEN, EventType.EVENT_UNHIDDEN, EventType.EVENT_DELETED}
)


class Usage(Model):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0


class Session(Model):
    id: str
    title: str = ""
    agent_id: str | None = None
    task_id: str | None = None
    model_id: str | None = None
    status: SessionStatus = SessionStatus.CREATED
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    context_variables: dict[str, str] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    last_active_at: datetime | None = None
    finished_at: datetime | None = None
    closed_at: datetime | None = None
    message_count: int = 0
    event_count: int = 0
    pending_action_count: int = 0
    #: Highest event sequence number in the session (0 when it has none).
    last_sequence: int = 0
    preview: str | None = None
    output_preview: str | None = None
    usage: Usage = Field(default_factory=Usage)
    billable: bool | None = None
    duration_seconds: int | None = None


#: The context variables' rule, stated in the OpenAPI document (the server enforces it with
#: ``validate_context_variables``).
_VARIABLES_SCHEMA: dict[str, Any] = {
    "propertyNames": {"pattern": VARIABLE_KEY_PATTERN.pattern},
    "maxProperties": MAX_CONTEXT_VARIABLES,
    "description": f"Keys UPPERCASE_SNAKE_CASE; at most {MAX_CONTEXT_VARIABLES} variables and "
    f"{MAX_CONTEXT_VARIABLES_BYTES} bytes of keys and values together.",
}


class SessionCreate(Model):
    title: str = ""
    agent_id: str | None = None
    task_id: str | None = None
    model_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    context_variables: dict[str, str] = Field(
        default_factory=dict, json_schema_extra=_VARIABLES_SCHEMA
    )
    #: Optional first user message.
    prompt: str | None = None


def validate_context_variables(variables: dict[str, str]) -> dict[str, str]:
    """Apply the API's rules; raises ValueError naming the offending key. Shared by server and
    console so both enforce the same limits."""
    if len(variables) > MAX_CONTEXT_VARIABLES:
        raise ValueError(f"at most {MAX_CONTEXT_VARIABLES} context variables are allowed")
    total = 0
    for key, value in variables.items():
        if not VARIABLE_KEY_PATTERN.match(key):
            raise ValueError(f"context variable key {key!r} must be UPPERCASE_SNAKE_CASE")
        total += len(key.encode()) + len(str(value).encode())
    if total > MAX_CONTEXT_VARIABLES_BYTES:
        raise ValueError(
            f"context variables take {total} bytes; "
            f"at most {MAX_CONTEXT_VARIABLES_BYTES} are allowed"
        )
    return variables


class SessionUpdate(Model):
    title: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    status: SessionStatus | None = None
    context_variables: dict[str, str] | None = Field(None, json_schema_extra=_VARIABLES_SCHEMA)

    @field_validator("context_variables")
    @classmethod
    def _check_variables(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else validate_context_variables(value)


class CloseResult(Model):
    id: str
    status: SessionStatus = SessionStatus.CLOSED
    closed_at: datetime
    duration_seconds: int
    billable: bool


class Event(Model):
    id: str
    session_id: str
    #: Per-session sequence number; only grows. The resume cursor for live streams.
    sequence: int
    type: str
    created_at: datetime = Field(default_factory=utcnow)
    payload: dict[str, Any] = Field(default_factory=dict)
    hidden: bool = False
    hide_reason: str | None = None


class EventCreate(Model):
    #: Something to name the event by: not empty, not only blanks.
    type: str = Field(pattern=r"\S")
    payload: dict[str, Any] = Field(default_factory=dict)


class Artifact(Model):
    """Artifact metadata; the content is fetched separately."""

    id: str
    session_id: str
    name: str
    mime_type: str = "application/octet-stream"
    size_bytes: int = 0
    checksum_sha256: str | None = None
    description: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)


class ArtifactCreate(Model):
    """An agent's upload (``POST /v1/sessions/{id}/artifacts``)."""

    name: str = Field(min_length=1)
    #: Served as the content's Content-Type: a media type, nothing else.
    mime_type: str = Field("application/octet-stream", pattern=MEDIA_TYPE_PATTERN)
    #: Base64 of the bytes (RFC 4648, padded).
    data: str = Field(pattern=BASE64_PATTERN)
    description: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ArtifactWithContent(Artifact):
    #: Base64 of the bytes.
    data: str


class ActionStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_resolved(self) -> bool:
        return self is not ActionStatus.PENDING


class DecisionChoice(Model):
    """One answer a platform accepts for a pending item: native and AG2Trust offer confirm /
    cancel, Everruns allow / allow always / reject / reject always."""

    #: The platform's wire value (``confirm``, ``allow_always``, ...).
    id: str
    label: str
    #: True when the choice lets the agent go ahead; ``decide_action(confirmed=...)`` maps onto
    #: the first choice whose ``confirms`` matches.
    confirms: bool
    #: Applies beyond this one call (e.g. "allow always"): the modal asks for more care.
    persistent: bool = False


CONFIRM = DecisionChoice(id="confirm", label="Confirm", confirms=True)
CANCEL = DecisionChoice(id="cancel", label="Cancel", confirms=False)


def confirm_cancel() -> list[DecisionChoice]:
    return [CONFIRM, CANCEL]


class PendingKind(StrEnum):
    #: An action the agent proposed and waits on a yes/no (or richer) decision for.
    ACTION = "action"
    #: A held tool call awaiting approval (Everruns); items sharing ``group_id`` are decided
    #: together.
    TOOL_APPROVAL = "tool_approval"
    #: Something the agent waits on that the operator can watch but not decide (AgentInbox
    #: waits: email, otp, magic link, password reset).
    WAIT = "wait"


class PendingAction(Model):
    id: str
    session_id: str
    tool: str
    #: What the action will do, for a human to judge: e.g. {to, subject, body} or {command}.
    preview: dict[str, Any] = Field(default_factory=dict)
    status: ActionStatus = ActionStatus.PENDING
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    decided_at: datetime | None = None
    callback_id: str | None = None
    outcome: dict[str, Any] | None = None
    #: Filled in by list endpoints so an inbox can show where an action comes from.
    session_title: str | None = None
    destructive: bool = False
    kind: str = PendingKind.ACTION
    #: The answers the platform accepts; empty for items that cannot be decided (waits).
    choices: list[DecisionChoice] = Field(default_factory=confirm_cancel)
    #: Items of one pause (an Everruns ``tool.call_requested``) share it and are decided in one
    #: request.
    group_id: str | None = None
    #: Why the platform holds the item (e.g. the approval policy's reason), for the operator.
    reason: str | None = None

    @property
    def decidable(self) -> bool:
        return bool(self.choices)

    def choice_for(self, confirmed: bool) -> DecisionChoice | None:
        """The first choice that confirms (or refuses) once, not persistently."""
        for choice in self.choices:
            if choice.confirms is confirmed and not choice.persistent:
                return choice
        return None


class ActionCreate(Model):
    tool: str
    preview: dict[str, Any] = Field(default_factory=dict)
    #: An ISO 8601 date-time (a number is refused: seconds or milliseconds would be a guess).
    expires_at: datetime | None = None
    destructive: StrictBool = False

    @field_validator("expires_at", mode="before")
    @classmethod
    def _a_date_time_text(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str | datetime):
            raise ValueError("expires_at must be an ISO 8601 date-time")
        return value


class ActionDecision(Model):
    #: A JSON boolean: ``"yes"``, ``1`` or ``"false"`` are refused, never read as a decision.
    confirmed: StrictBool


class ActionDecisionResult(Model):
    session_id: str
    action_id: str
    status: ActionStatus
    callback_id: str | None = None
    message: str = ""


class ToolCallArgument(Model):
    name: str
    value: Any = None
    #: Derived from a secret: mask on screen and in logs until revealed.
    secret: bool = False


#: What a secret value shows as until an operator reveals it (screens, exports).
SECRET_MASK = "••••••••"


def mask_secret_arguments(value: Any, mask: str = SECRET_MASK) -> Any:
    """Copy of ``value`` with every secret-flagged tool argument's value masked.

    A tool argument is ``{"name": ..., "value": ..., "secret": true}`` (``ToolCallArgument``);
    masking walks any nesting so it also covers arguments inside event payloads."""
    if isinstance(value, dict):
        if value.get("secret") is True and "value" in value:
            return {**value, "value": mask}
        return {key: mask_secret_arguments(item, mask) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_secret_arguments(item, mask) for item in value]
    return value


class ToolCall(Model):
    """An outstanding client tool call: the agent waits for the client to run a tool."""

    id: str
    session_id: str
    tool: str
    arguments: list[ToolCallArgument] = Field(default_factory=list)
    status: Literal["pending", "succeeded", "failed"] = "pending"
    created_at: datetime = Field(default_factory=utcnow)
    result: Any = None
    error: str | None = None


class ToolCallArgumentSpec(ToolCallArgument):
    """An argument as an agent sends it: ``secret`` must be a JSON boolean."""

    secret: StrictBool = False


class ToolCallCreate(Model):
    tool: str
    arguments: list[ToolCallArgumentSpec] = Field(default_factory=list)


class ToolResult(Model):
    """The client's answer to a tool call: an output or an error."""

    output: Any = None
    error: str | None = None


class MessageCreate(Model):
    content: str = Field(min_length=1)


class ReplayStep(Model):
    index: int
    timestamp: datetime
    action: str
    input: Any = None
    output: Any = None
    duration_ms: int = 0


class Replay(Model):
    session_id: str
    steps: list[ReplayStep] = Field(default_factory=list)


class TimelineEntry(Model):
    """A condensed, human-oriented view of one or more events."""

    sequence: int
    timestamp: datetime
    kind: str
    summary: str = ""
    event_id: str | None = None
    duration_ms: int | None = None


class Page(Model, Generic[T]):
    """A cursor page. ``next_cursor`` is opaque; ``None`` means the last page."""

    data: list[T] = Field(default_factory=list)
    next_cursor: str | None = None
    total: int | None = None
    #: Sessions listings, first page only: the organisation stream's position (``OrgChange.id``)
    #: the page's snapshot includes, so following ``GET /v1/stream`` from it misses nothing the
    #: page does not show. It may be behind the snapshot (a change is then both listed and
    #: streamed), never ahead; the reference server reads it in the page's own snapshot, so
    #: there it is exact. ``None`` from servers or backends that do not say.
    stream_position: int | None = None


class OrgChange(Model):
    """One frame of the organisation-wide stream (``GET /v1/stream``)."""

    #: Monotonic id of the frame within the organisation's stream; the resume cursor.
    id: int
    #: session.created | session.updated | session.deleted | action.pending | action.resolved;
    #: a plain string so kinds added by newer servers do not break older consoles.
    kind: str
    session_id: str
    created_at: datetime = Field(default_factory=utcnow)
    session: Session | None = None
    action: PendingAction | None = None


class Problem(Model):
    """RFC 9457 problem details, as the reference server sends them."""

    type: str = "about:blank"
    title: str = ""
    status: int = 0
    detail: str | None = None
    errors: list[dict[str, Any]] = Field(default_factory=list)


class KeyIdentity(Model):
    """``GET /v1/whoami``: what the presented key is allowed to do."""

    organisation: str
    #: The key's name in audit records (a fingerprint, never the key).
    key: str
    #: agent | operator | viewer; None for a key with every right.
    role: str | None = None

    @property
    def read_only(self) -> bool:
        return self.role == "viewer"


class Health(Model):
    status: str = "ok"
    name: str = "sessionscope"
    version: str = ""
