"""One event's full JSON: pretty, highlighted, scrollable and copyable."""

from __future__ import annotations

import json
import re
from typing import ClassVar

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from sessionscope.models import Event, Session
from sessionscope.tui import event_summary
from sessionscope.tui.keys import bindings
from sessionscope.tui.safe import SECRET_MASK, neutralise, one_line, plain, plain_line
from sessionscope.tui.styles import stylesheet
from sessionscope.tui.widgets.footer import AppFooter
from sessionscope.tui.widgets.status import AppHeader


class EventDetailScreen(Screen[None]):
    CSS_PATH: ClassVar = [stylesheet("session.tcss")]

    BINDINGS: ClassVar[list[BindingType]] = bindings("event")
    help_title = "Event JSON"

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event
        self.reveal_secrets = False

    def compose(self) -> ComposeResult:
        title = Text(end="")
        title.append(f"Event #{self.event.sequence}  ", style="bold")
        title.append(one_line(self.event.type, 60), style="bold")
        title.append("  ")
        title.append(one_line(self.event.id, 60), style="dim")
        if self.event.hidden:
            title.append("  hidden", style="italic dim")
        yield AppHeader("Event")
        yield Static(title, id="event-title")
        with VerticalScroll(id="event-json-scroll"):
            yield Static(id="event-json")
        yield AppFooter()

    def on_mount(self) -> None:
        self._render_json()
        self.query_one("#event-json-scroll").focus()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._render_json())

    def _json(self) -> str:
        return event_summary.event_json(self.event, reveal_secrets=self.reveal_secrets)

    def _render_json(self) -> None:
        # JSON already escapes C0 controls; neutralising catches C1 and bidi characters, and
        # clipping keeps a 1 MB string from turning into thousands of wrapped rows.
        code = plain(self._json()).plain
        dark = self.app.current_theme.dark if self.app.current_theme else True
        syntax = Syntax(
            code,
            "json",
            theme="ansi_dark" if dark else "ansi_light",
            word_wrap=True,
            line_numbers=True,
            background_color="default",
        )
        self.query_one("#event-json", Static).update(syntax)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_copy(self) -> None:
        text = neutralise(self._json())
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied the event's JSON ({len(text):,} characters).", timeout=2)

    def action_toggle_secrets(self) -> None:
        self.reveal_secrets = not self.reveal_secrets
        self._render_json()
        self.notify(self._reveal_note(), timeout=3)

    def _reveal_note(self) -> str:
        """What the toggle really did: a server may have stored the values masked already."""
        if not self.reveal_secrets:
            return "Secrets masked."
        values = event_summary.secret_values(self.event.payload)
        if not values:
            return "This event has no secret values."
        masked = sum(1 for value in values if event_summary.looks_masked(value))
        if masked == len(values):
            return "Nothing to reveal: the server stored these secret values masked."
        if masked:
            return f"Secrets revealed; {masked} of {len(values)} the server stored masked."
        return "Secrets revealed."


#: Context variables whose names say they hold a secret: masked in ``describe``.
_SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|PRIVATE|CREDENTIAL|AUTH", re.I)


def session_json(session: Session) -> str:
    """The whole session object as indented JSON, secrets masked: secret-flagged arguments and
    context variables whose names say they are secrets."""
    data = event_summary.mask_secrets(session.model_dump(mode="json"))
    variables = data.get("context_variables")
    if isinstance(variables, dict):
        data["context_variables"] = {
            key: SECRET_MASK if _SECRET_NAME.search(key) else value
            for key, value in variables.items()
        }
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


class DescribeScreen(Screen[None]):
    """``d`` on a session: its whole object as plain-text JSON (server text, never markup)."""

    CSS_PATH: ClassVar = [stylesheet("session.tcss")]
    BINDINGS: ClassVar[list[BindingType]] = bindings("describe")
    help_title = "Describe session"

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session

    def compose(self) -> ComposeResult:
        title = Text("Session ", style="bold", end="")
        title.append_text(plain_line(self.session.title or self.session.id, "bold", limit=80))
        title.append(f"  {one_line(self.session.id, 60)}", style="dim")
        yield AppHeader("Describe")
        yield Static(title, id="event-title")
        with VerticalScroll(id="event-json-scroll"):
            yield Static(plain(session_json(self.session)), id="describe-json")
        yield AppFooter()

    def on_mount(self) -> None:
        self.query_one("#event-json-scroll").focus()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_copy(self) -> None:
        text = neutralise(session_json(self.session))
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied the session's JSON ({len(text):,} characters).", timeout=2)
