"""Session lifecycle: create, edit, close, complete, delete; hide/unhide/delete an event.

Screens dismiss with what they produced (or ``None``), so the sessions and session screens push
them with one line. The destructive flows (close, complete, delete, delete event) always pass
through :class:`ConfirmationModal`, which names the session in plain text.

The ``*_flow`` coroutines wait for modals and so must run in a worker; the functions without the
suffix start that worker on the app (so it outlives the screen that asked, e.g. after a delete).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from textual import on
from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea
from textual.worker import Worker

from sessionscope.backends.base import Backend, BackendError, ValidationFailed
from sessionscope.models import CloseResult, Event, Session, SessionCreate, SessionUpdate
from sessionscope.tui.context import console_of
from sessionscope.tui.durations import format_duration
from sessionscope.tui.feedback import READ_ONLY_MESSAGE, describe_error, notify_plain
from sessionscope.tui.keys import bindings
from sessionscope.tui.safe import one_line, plain
from sessionscope.tui.screens.confirm import ConfirmationModal, InfoModal
from sessionscope.tui.screens.forms import FormScreen
from sessionscope.tui.styles import stylesheet

T = TypeVar("T")
R = TypeVar("R")


def _backend(app: App[Any]) -> Backend:
    return console_of(app).backend


def session_label(session: Session) -> str:
    """How a confirmation names a session: its title (neutralised, one line) and id."""
    title = one_line(session.title, 80) if session.title else "untitled session"
    return f"“{title}” ({session.id})"


def parse_tags(text: str) -> list[str]:
    return [tag.strip() for tag in text.split(",") if tag.strip()]


def parse_metadata(area: TextArea, error_line: Static) -> dict[str, Any] | None:
    """A metadata field parsed (empty: ``{}``), or ``None`` with the reason shown beside it."""
    text = area.text.strip() or "{}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        error_line.update(plain(f"Metadata is not valid JSON: {error}"))
        return None
    if not isinstance(value, dict):
        error_line.update("Metadata must be a JSON object ({…}).")
        return None
    error_line.update("")
    return value


# ---------------------------------------------------------------------------------------------
# Create
# ---------------------------------------------------------------------------------------------


class CreateSessionScreen(FormScreen[Session | None]):
    """``n`` on the sessions screen. Dismisses with the new session."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("create")

    def compose(self) -> ComposeResult:
        # Only the fields the platform takes (``Backend.create_fields``).
        fields = self.backend.create_fields
        with Vertical(id="create-dialog", classes="dialog -wide"):
            yield Static("New session", classes="dialog-title")
            yield self.read_only_notice()
            if "agent_id" in fields:
                yield Label("Agent", classes="form-label")
                yield Input(placeholder="agent id", id="create-agent")
                yield Static("", id="create-agent_id-error", classes="form-error")
            if "title" in fields:
                yield Label("Title", classes="form-label")
                yield Input(placeholder="what this session is for", id="create-title")
            if "task_id" in fields:
                yield Label("Task (optional)", classes="form-label")
                yield Input(placeholder="task id", id="create-task")
            if "tags" in fields:
                yield Label("Tags (comma separated)", classes="form-label")
                yield Input(placeholder="billing, urgent", id="create-tags")
            if "model_id" in fields:
                yield Label("Model (optional; overrides the agent's)", classes="form-label")
                yield Input(placeholder="model id", id="create-model")
                yield Static("", id="create-model_id-error", classes="form-error")
            if "capabilities" in fields:
                yield Label(
                    "Capabilities (comma separated refs; added to the agent's)",
                    classes="form-label",
                )
                yield Input(placeholder="tool_approval, current_time", id="create-capabilities")
                yield Static("", id="create-capabilities-error", classes="form-error")
            if "metadata" in fields:
                yield Label("Metadata (a JSON object, optional)", classes="form-label")
                yield TextArea(id="create-metadata", language=None, soft_wrap=True)
                yield Static("", id="create-metadata-error", classes="form-error")
            if "prompt" in fields:
                yield Label(
                    "First prompt" + ("" if self.backend.prompt_required else " (optional)"),
                    classes="form-label",
                )
                yield TextArea(id="create-prompt", soft_wrap=True)
            yield self.status_line()
            with Horizontal(classes="dialog-buttons"):
                yield Button("Create (ctrl+s)", id="create-submit", variant="primary")
                yield Button("Cancel (esc)", id="create-cancel")

    def on_mount(self) -> None:
        self.query(Input).first().focus()

    def _value(self, selector: str) -> str:
        found = self.query(selector)
        if not found:
            return ""
        widget = found.first()
        if isinstance(widget, TextArea):
            return widget.text
        return widget.value if isinstance(widget, Input) else ""

    def spec(self) -> SessionCreate:
        prompt = self._value("#create-prompt")
        extra: dict[str, Any] = {}
        capabilities = parse_tags(self._value("#create-capabilities"))
        if capabilities:
            # Everruns' session-level capabilities ({ref, config}); carried as an extra field.
            extra["capabilities"] = [{"ref": ref} for ref in capabilities]
        return SessionCreate(
            agent_id=self._value("#create-agent").strip() or None,
            task_id=self._value("#create-task").strip() or None,
            title=self._value("#create-title").strip(),
            tags=parse_tags(self._value("#create-tags")),
            prompt=prompt if prompt.strip() else None,
            model_id=self._value("#create-model").strip() or None,
            **extra,
        )

    def show_field_errors(self, error: ValidationFailed) -> None:
        """The platform's (or the backend's own) verdict on a field, under that field."""
        for widget in self.query(".form-error"):
            if isinstance(widget, Static) and (widget.id or "").endswith("-error"):
                if widget.id != "create-metadata-error":
                    widget.update("")
        named = [e for e in error.errors if isinstance(e.get("field"), str)]
        if not named and "agent" in error.message.lower() and self.query("#create-agent_id-error"):
            named = [{"field": "agent_id", "message": error.message}]
        for item in named:
            found = self.query(f"#create-{item['field']}-error")
            if found:
                message = str(item.get("message") or error.message)
                found.first(Static).update(plain(message))

    def action_create(self) -> None:
        spec = self.spec()
        if self.query("#create-metadata"):
            metadata = parse_metadata(
                self.query_one("#create-metadata", TextArea),
                self.query_one("#create-metadata-error", Static),
            )
            if metadata is None:
                return
            spec.metadata = metadata

        async def create() -> None:
            self.show_status("Creating…")
            try:
                session = await self.backend.create_session(spec)
            except ValidationFailed as error:
                self.show_field_errors(error)
                raise
            notify_plain(
                self.app, f"Created session {session_label(session)}", title="Session created"
            )
            self.dismiss(session)

        self.submit(create)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#create-submit")
    def _submit_pressed(self, pressed: Button.Pressed) -> None:
        pressed.stop()
        self.action_create()

    @on(Button.Pressed, "#create-cancel")
    def _cancel_pressed(self, pressed: Button.Pressed) -> None:
        pressed.stop()
        self.action_cancel()


# ---------------------------------------------------------------------------------------------
# Edit
# ---------------------------------------------------------------------------------------------


class EditSessionScreen(FormScreen[Session | None]):
    """Edit title, tags and metadata (a JSON object). Dismisses with the updated session."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("edit")

    def __init__(self, session_id: str) -> None:
        super().__init__()
        self.session_id = session_id
        self.session: Session | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="edit-dialog", classes="dialog -wide"):
            yield Static(plain(f"Edit session {self.session_id}"), classes="dialog-title")
            yield self.read_only_notice()
            yield Label("Title", classes="form-label")
            yield Input(id="edit-title")
            yield Label("Tags (comma separated)", classes="form-label")
            yield Input(id="edit-tags")
            yield Label("Metadata (a JSON object)", classes="form-label")
            yield TextArea(id="edit-metadata", language=None, soft_wrap=True)
            yield Static("", id="edit-metadata-error", classes="form-error")
            yield self.status_line()
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (ctrl+s)", id="edit-save", variant="primary")
                yield Button("Cancel (esc)", id="edit-cancel")

    async def load(self) -> Session:
        return await self.backend.get_session(self.session_id)

    async def fill(self, loaded: Any) -> None:
        session: Session = loaded
        self.session = session
        self.query_one("#edit-title", Input).value = session.title
        self.query_one("#edit-tags", Input).value = ", ".join(session.tags)
        self.query_one("#edit-metadata", TextArea).text = json.dumps(
            session.metadata, indent=2, ensure_ascii=False
        )
        self.query_one("#edit-title", Input).focus()

    def metadata(self) -> dict[str, Any] | None:
        """The metadata field parsed, or ``None`` with the reason shown beside it."""
        return parse_metadata(
            self.query_one("#edit-metadata", TextArea),
            self.query_one("#edit-metadata-error", Static),
        )

    def action_save(self) -> None:
        if self.session is None:
            self.show_status("The session has not loaded yet.", error=True)
            return
        metadata = self.metadata()
        if metadata is None:
            return
        update = SessionUpdate(
            title=self.query_one("#edit-title", Input).value.strip(),
            tags=parse_tags(self.query_one("#edit-tags", Input).value),
            metadata=metadata,
        )

        async def save() -> None:
            self.show_status("Saving…")
            session = await self.backend.update_session(self.session_id, update)
            notify_plain(self.app, "Session saved", title=one_line(session.title or session.id, 60))
            self.dismiss(session)

        self.submit(save)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#edit-save")
    def _save_pressed(self, pressed: Button.Pressed) -> None:
        pressed.stop()
        self.action_save()

    @on(Button.Pressed, "#edit-cancel")
    def _cancel_pressed(self, pressed: Button.Pressed) -> None:
        pressed.stop()
        self.action_cancel()


# ---------------------------------------------------------------------------------------------
# Close, complete, delete
# ---------------------------------------------------------------------------------------------


def _refuse_read_only(app: App[Any]) -> bool:
    if console_of(app).read_only:
        notify_plain(app, READ_ONLY_MESSAGE, severity="warning", title="Read-only")
        return True
    return False


async def _load_for_confirmation(app: App[Any], session_id: str) -> Session | None:
    try:
        return await _backend(app).get_session(session_id)
    except Exception as error:
        notify_plain(
            app, describe_error(error), severity="error", title="Could not load the session"
        )
        return None


@dataclass(frozen=True)
class SessionOperation(Generic[R]):
    """One destructive operation on a session, as ``run_session_operation`` drives it: ask (the
    question names the session), do, then tell. ``refused`` is what the flow returns when it did
    nothing (read-only, the session would not load, the operator said no, the server refused)."""

    title: str
    #: The question; ``{session}`` becomes the session's label.
    question: str
    confirm_label: str
    failure_title: str
    run: Callable[[Backend, str], Awaitable[R]]
    #: Tell the operator what happened; returns what the flow returns.
    report: Callable[[App[Any], Session, R], Awaitable[Any]]
    refused: Any = None
    #: What the platform adds to the question (``Backend.close_note``: "stops billing").
    note: Callable[[Backend], str | None] | None = None
    #: What the operator types to confirm (deleting: the title), instead of pressing y.
    typed: Callable[[Session], str] | None = None


async def run_session_operation(
    app: App[Any], session_id: str, operation: SessionOperation[R]
) -> Any:
    """Refuse in read-only mode; load the session; confirm; run; report. Run in a worker."""
    if _refuse_read_only(app):
        return operation.refused
    session = await _load_for_confirmation(app, session_id)
    if session is None:
        return operation.refused
    question = operation.question.format(session=session_label(session))
    note = operation.note(_backend(app)) if operation.note is not None else None
    if note:
        question += f"\n{note}"
    typed = operation.typed(session) if operation.typed is not None else None
    confirmed = await app.push_screen_wait(
        ConfirmationModal(
            operation.title,
            question,
            confirm_label=operation.confirm_label,
            type_to_confirm=typed,
        )
    )
    if not confirmed:
        return operation.refused
    try:
        result = await operation.run(_backend(app), session_id)
    except Exception as error:
        notify_plain(app, describe_error(error), severity="error", title=operation.failure_title)
        return operation.refused
    return await operation.report(app, session, result)


async def _report_closed(app: App[Any], session: Session, result: CloseResult) -> CloseResult:
    await app.push_screen_wait(
        InfoModal(
            "Session closed",
            f"Session {session_label(session)} is closed.\n"
            f"Duration: {format_duration(result.duration_seconds, 'long')}\n"
            f"Billable: {'yes' if result.billable else 'no'}",
        )
    )
    return result


async def _report_completed(app: App[Any], session: Session, completed: Session) -> Session:
    notify_plain(app, f"Session {session_label(completed)} completed", title="Session completed")
    return completed


async def _report_deleted(app: App[Any], session: Session, _result: None) -> bool:
    notify_plain(app, f"Session {session_label(session)} deleted", title="Session deleted")
    return True


CLOSE = SessionOperation[CloseResult](
    title="Close session?",
    question="Close session {session}?\nThe agent stops and the session cannot be resumed.",
    confirm_label="Close",
    failure_title="Could not close the session",
    run=lambda backend, session_id: backend.close_session(session_id),
    report=_report_closed,
    note=lambda backend: backend.close_note,
)
COMPLETE = SessionOperation[Session](
    title="Complete session?",
    question="Mark session {session} as completed?\nThe session ends; this cannot be undone.",
    confirm_label="Complete",
    failure_title="Could not complete the session",
    run=lambda backend, session_id: backend.complete_session(session_id),
    report=_report_completed,
)
DELETE = SessionOperation[None](
    title="Delete session?",
    question="Delete session {session} with all its events and artifacts?\nThis cannot be undone.",
    confirm_label="Delete",
    failure_title="Could not delete the session",
    run=lambda backend, session_id: backend.delete_session(session_id),
    report=_report_deleted,
    refused=False,
    # A title is what the operator recognises; a session without one has its id.
    typed=lambda session: one_line(session.title, 80) or session.id,
)


async def close_session_flow(app: App[Any], session_id: str) -> CloseResult | None:
    """Confirm, close, then show the duration and whether it was billable."""
    result: CloseResult | None = await run_session_operation(app, session_id, CLOSE)
    return result


async def complete_session_flow(app: App[Any], session_id: str) -> Session | None:
    completed: Session | None = await run_session_operation(app, session_id, COMPLETE)
    return completed


async def delete_session_flow(app: App[Any], session_id: str) -> bool:
    """``True`` when the session was deleted (the caller should leave its screen)."""
    return bool(await run_session_operation(app, session_id, DELETE))


def _start(
    app: App[Any],
    flow: Coroutine[Any, Any, T],
    on_done: Callable[[T], object] | None,
    name: str,
) -> Worker[T | None]:
    async def run() -> T | None:
        result = await flow
        if on_done is not None:
            on_done(result)
        return result

    return app.run_worker(run(), name=name, group="lifecycle", exclusive=False)


def close_session(
    app: App[Any], session_id: str, on_done: Callable[[CloseResult | None], object] | None = None
) -> Worker[Any]:
    return _start(app, close_session_flow(app, session_id), on_done, "close-session")


def complete_session(
    app: App[Any], session_id: str, on_done: Callable[[Session | None], object] | None = None
) -> Worker[Any]:
    return _start(app, complete_session_flow(app, session_id), on_done, "complete-session")


def delete_session(
    app: App[Any], session_id: str, on_done: Callable[[bool], object] | None = None
) -> Worker[Any]:
    return _start(app, delete_session_flow(app, session_id), on_done, "delete-session")


# ---------------------------------------------------------------------------------------------
# Event visibility
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VisibilityOutcome:
    #: "hidden", "unhidden" or "deleted".
    action: str
    #: The event as the server now has it; ``None`` after a delete.
    event: Event | None


class EventVisibilityModal(ModalScreen[str | None]):
    """Asks what to do with one event: hide (or unhide) or delete. Dismisses with the choice."""

    CSS_PATH: ClassVar = [stylesheet("forms.tcss")]
    BINDINGS: ClassVar[list[BindingType]] = bindings("event_visibility")

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event_record = event

    def compose(self) -> ComposeResult:
        event = self.event_record
        state = "hidden" if event.hidden else "visible"
        with Vertical(id="event-visibility-dialog", classes="dialog"):
            yield Static(
                plain(f"Event #{event.sequence} · {one_line(event.type, 60)} · {state}"),
                classes="dialog-title",
            )
            with Horizontal(classes="dialog-buttons"):
                if event.hidden:
                    yield Button("Unhide (u)", id="visibility-unhide", variant="primary")
                else:
                    yield Button("Hide (h)", id="visibility-hide", variant="primary")
                yield Button("Delete (d)", id="visibility-delete", variant="error")
                yield Button("Cancel (esc)", id="visibility-cancel")

    def on_mount(self) -> None:
        self.query_one("#visibility-cancel", Button).focus()

    def action_choose(self, choice: str) -> None:
        if choice == "hide" and self.event_record.hidden:
            return
        if choice == "unhide" and not self.event_record.hidden:
            return
        self.dismiss(choice or None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        choice = (event.button.id or "").removeprefix("visibility-")
        self.action_choose("" if choice == "cancel" else choice)


async def decide_event_visibility(
    app: App[Any], session_id: str, event: Event
) -> VisibilityOutcome | None:
    """Ask, then hide, unhide or (after a confirmation) delete ``event``. Run in a worker."""
    if _refuse_read_only(app):
        return None
    choice = await app.push_screen_wait(EventVisibilityModal(event))
    if choice is None:
        return None
    backend = _backend(app)
    try:
        if choice == "hide":
            return VisibilityOutcome("hidden", await backend.hide_event(session_id, event.id))
        if choice == "unhide":
            return VisibilityOutcome("unhidden", await backend.unhide_event(session_id, event.id))
        confirmed = await app.push_screen_wait(
            ConfirmationModal(
                "Delete event?",
                f"Delete event #{event.sequence} ({one_line(event.type, 60)}) "
                f"of session {session_id}?\nThis cannot be undone.",
                confirm_label="Delete",
            )
        )
        if not confirmed:
            return None
        await backend.delete_event(session_id, event.id)
        return VisibilityOutcome("deleted", None)
    except BackendError as error:
        notify_plain(
            app, describe_error(error), severity="error", title="Could not change the event"
        )
        return None
