"""The command palette (``ctrl+p``): screens, actions and the sessions already loaded."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.markup import escape

from sessionscope.models import SessionStatus
from sessionscope.tui.keys import KEYS
from sessionscope.tui.safe import one_line

if TYPE_CHECKING:
    from sessionscope.tui.app import SessionScopeApp

#: Loaded sessions offered by title; more would make the palette slow to search.
MAX_SESSION_HITS = 500


class SessionScopeCommands(Provider):
    def _app(self) -> SessionScopeApp:
        return cast("SessionScopeApp", self.app)

    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app = self._app()
        commands: list[tuple[str, str, Callable[[], object]]] = [
            ("Sessions", "Go to the sessions list", app.action_home),
            ("Actions inbox", "Every pending action of the organisation", app.open_inbox),
            ("Refresh", "Reload the list and reconnect the live stream", app.action_retry),
            ("Keys", "Show every key binding", app.action_help),
            (
                "Toggle theme",
                "Switch between the dark and the light theme",
                app.action_toggle_theme,
            ),
            ("Sort sessions", "Cycle the sessions list's order", app.action_cycle_sort),
            (
                "Show all statuses",
                "Clear the status filter",
                partial(app.action_status_filter, None),
            ),
        ]
        for status in SessionStatus:
            commands.append(
                (
                    f"Show {status.value} sessions",
                    f"Filter the sessions list to status {status.value}",
                    partial(app.action_status_filter, status),
                )
            )
        commands.append(("Quit", "Leave sessionscope", app.exit))
        return self._session_commands() + commands

    def _session_commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        """The session screen's own keys, when the palette was opened on one; those it would
        refuse (read-only, unsupported by the backend) are left out."""
        from sessionscope.tui.screens.session import SessionScreen

        screen = self.screen
        if not isinstance(screen, SessionScreen):
            return []
        keys_now = {
            active.binding.id: active.binding.key for active in screen.active_bindings.values()
        }
        commands: list[tuple[str, str, Callable[[], object]]] = []
        for key in KEYS["session"]:
            if key.palette is None or screen.check_action(key.action, ()) is not True:
                continue
            name, help_text = key.palette
            shown = keys_now.get(key.id, key.key)
            commands.append(
                (name, f"{help_text} ({shown})", getattr(screen, f"action_{key.action}"))
            )
        return commands

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
        app = self._app()
        for session in app.console_context.loaded_sessions(MAX_SESSION_HITS):
            # Agent-chosen text: matched as plain text, displayed without markup parsing.
            title = one_line(session.title or session.id, 80)
            score = matcher.match(title)
            if score > 0:
                yield Hit(
                    score * 0.9,
                    Content(f"Open: {title}"),
                    partial(app.open_session, session.id),
                    text=f"Open: {title}",
                    # The palette parses help as markup: escape the agent id.
                    help=escape(
                        one_line(f"{session.status.value} · {session.agent_id or '—'}", 80)
                    ),
                )
