"""The console's one key table: every key binding once, with its id (what a ``[keymap]`` entry in
the profile file remaps), its default key, its label and tooltip, whether it changes something on
the server, the backend capability it needs and its command-palette entry.

Each screen and widget takes its ``BINDINGS`` from here (``bindings(owner)``); read-only gating,
capability gating, ``?`` help and the palette read the same entries:

* a key whose capability the backend lacks is disabled, left out of the footer, and listed in ``?``
  as "not offered by <platform>";
* a key that mutates is disabled in read-only mode but stays in the footer, and pressing it says
  why in one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from textual.binding import ActiveBinding, Binding, BindingType

from sessionscope.backends import Capability
from sessionscope.tui.context import ConsoleContext, find_console
from sessionscope.tui.safe import one_line

if TYPE_CHECKING:
    from textual.dom import DOMNode

READ_ONLY_REASON = "read-only mode"


@dataclass(frozen=True)
class Key:
    id: str
    key: str
    action: str
    label: str
    tooltip: str
    show: bool = True
    priority: bool = False
    #: Changes something on the server: off in read-only mode.
    mutates: bool = False
    #: What the backend must support for the key to be offered at all.
    needs: Capability | None = None
    #: (name, help) in the command palette, offered while the key's screen is showing.
    palette: tuple[str, str] | None = None

    def binding(self) -> Binding:
        return Binding(
            self.key,
            self.action,
            self.label,
            show=self.show,
            priority=self.priority,
            tooltip=self.tooltip,
            id=self.id,
        )


# Owners are the screens and widgets that hold the keys; ids keep the prefixes they have always
# had (a remap in a profile file names them).
KEYS: dict[str, tuple[Key, ...]] = {
    # SessionScopeApp (app)
    "app": (
        Key("app.quit", "q", "quit", "Quit", "Leave sessionscope"),
        Key("app.help", "question_mark", "help", "Keys", "Show every key binding"),
        Key(
            "app.theme",
            "ctrl+t",
            "toggle_theme",
            "Theme",
            "Switch between dark and light themes",
            show=False,
        ),
        Key(
            "app.command_line",
            "colon",
            "command_line",
            "Command",
            "A command: ctx [NAME], inbox, sessions [status=S]",
            show=False,
        ),
        Key(
            "app.next_waiting",
            "J",
            "next_waiting",
            "Next waiting",
            "Open the next item that waits for a decision (soonest deadline first)",
            show=False,
        ),
    ),
    # CommandLine (screens.command_line)
    "command_line": (
        Key("command_line.close", "escape", "close", "Close", "Close the command line"),
    ),
    # BatchDecisionModal (screens.batch)
    "batch": (
        Key("batch.send", "ctrl+s", "send", "Send", "Send every decision listed", mutates=True),
        Key("batch.cancel", "escape", "refuse", "Don't send", "Close without sending"),
    ),
    # HelpScreen (help)
    "help": (Key("help.close", "escape,question_mark,q", "dismiss", "Close", "Close"),),
    # ActionModal (screens.action)
    "action": (
        Key("action.confirm", "y", "confirm", "Confirm", "Let the agent do this", mutates=True),
        Key("action.cancel", "n", "cancel_action", "Cancel action", "Refuse it", mutates=True),
        Key("action.close", "escape", "close", "Close", "Close without deciding"),
    ),
    # DecisionScreen (screens.decision): a platform's own choices for held calls (Everruns);
    # a choice the items do not offer is not shown.
    "decision": (
        Key("decision.allow", "a", "choose('allow')", "Allow once", "Let this call run once"),
        Key(
            "decision.allow_always",
            "A",
            "choose('allow_always')",
            "Allow always",
            "Let every call of this tool run in this session",
        ),
        Key("decision.reject", "r", "choose('reject')", "Reject", "Refuse this call"),
        Key(
            "decision.reject_always",
            "R",
            "choose('reject_always')",
            "Reject always",
            "Refuse every call of this tool in this session",
        ),
        Key("decision.confirm", "y", "choose('confirm')", "Confirm", "Confirm", show=False),
        Key("decision.cancel", "n", "choose('cancel')", "Cancel", "Refuse", show=False),
        Key(
            "decision.send",
            "ctrl+s",
            "send",
            "Send decisions",
            "Send every call's decision in one request",
            priority=True,
            mutates=True,
        ),
        Key("decision.close", "escape", "close", "Close", "Close without deciding"),
    ),
    # SaveArtifactScreen (screens.artifact_save)
    "artifact_save": (Key("artifact_save.cancel", "escape", "cancel", "Cancel", "Do not save"),),
    # ArtifactsScreen (screens.artifacts)
    "artifacts_screen": (Key("artifacts.back", "escape", "app.pop_screen", "Back", "Go back"),),
    # ConfirmationModal (screens.confirm)
    "confirm": (
        Key("confirm.yes", "y", "confirm", "Yes", "Go ahead"),
        Key("confirm.no", "n", "refuse", "No", "Do nothing"),
        Key("confirm.cancel", "escape", "refuse", "Cancel", "Do nothing"),
        Key("confirm.switch", "left,right", "switch_focus", "Switch", "", show=False),
    ),
    # InfoModal (screens.confirm)
    "info": (Key("info.close", "escape,enter", "close", "Close", "Close this message"),),
    # DescribeScreen (screens.event_detail)
    "describe": (
        Key("describe.back", "escape,q", "back", "Back", "Return to the session"),
        Key("describe.copy", "y", "copy", "Copy JSON", "Copy the JSON (secrets masked)"),
    ),
    # EventDetailScreen (screens.event_detail)
    "event": (
        Key("event.back", "escape,q", "back", "Back", "Return to the timeline"),
        Key("event.copy", "y", "copy", "Copy JSON", "Copy the event's JSON"),
        Key(
            "event.reveal",
            "s",
            "toggle_secrets",
            "Reveal secrets",
            "Show or mask secret tool arguments",
        ),
    ),
    # ExportScreen (screens.export)
    "export": (
        Key("export.start", "ctrl+s", "start", "Export", "Start or resume"),
        Key("export.close", "escape", "stop_or_close", "Stop/Close", "Stop or close"),
    ),
    # InboxScreen (screens.inbox)
    "inbox": (
        Key("inbox.back", "escape", "back", "Back", "Return to the previous screen"),
        Key("inbox.open", "enter", "open", "Decide", "Open the selected action", priority=True),
        Key("inbox.refresh", "r", "reload", "Refresh", "Fetch the inbox again"),
        Key("inbox.mark", "space", "toggle_mark", "Mark", "Mark or unmark the row (its group too)"),
        Key("inbox.mark_all", "asterisk", "mark_all", "Mark all", "Mark every row shown"),
        Key(
            "inbox.confirm_marked",
            "y",
            "decide_marked(True)",
            "Confirm marked",
            "Confirm the marked items (or the selected one), asking once",
            mutates=True,
        ),
        Key(
            "inbox.cancel_marked",
            "n",
            "decide_marked(False)",
            "Cancel marked",
            "Refuse the marked items (or the selected one), asking once",
            mutates=True,
        ),
        Key("inbox.filter", "slash", "filter", "Filter", "Filter by profile, tool or session"),
    ),
    # CreateSessionScreen (screens.lifecycle)
    "create": (
        Key("create.submit", "ctrl+s", "create", "Create", "Create the session", mutates=True),
        Key("create.cancel", "escape", "cancel", "Cancel", "Close without creating"),
    ),
    # EditSessionScreen (screens.lifecycle)
    "edit": (
        Key("edit.save", "ctrl+s", "save", "Save", "Send the changes", mutates=True),
        Key("edit.cancel", "escape", "cancel", "Cancel", "Close without saving"),
    ),
    # EventVisibilityModal (screens.lifecycle)
    "event_visibility": (
        Key("event_visibility.hide", "h", "choose('hide')", "Hide", "Hide event", mutates=True),
        Key(
            "event_visibility.unhide", "u", "choose('unhide')", "Unhide", "Show again", mutates=True
        ),
        Key(
            "event_visibility.delete",
            "d",
            "choose('delete')",
            "Delete",
            "Delete event",
            mutates=True,
        ),
        Key("event_visibility.cancel", "escape", "choose('')", "Cancel", "Back"),
    ),
    # MessageScreen (screens.message)
    "message": (
        Key(
            "message.send",
            "ctrl+s",
            "send",
            "Send",
            "Send the message",
            priority=True,
            mutates=True,
        ),
        Key("message.cancel", "escape", "cancel", "Cancel", "Close without sending"),
        Key(
            "message.interrupt",
            "ctrl+t",
            "interrupt",
            "Interrupt",
            "Stop the agent's current turn (platforms that offer it)",
            priority=True,
            mutates=True,
            needs=Capability.CANCEL_TURN,
        ),
    ),
    # ReplayScreen (screens.replay)
    "replay": (
        Key("replay.back", "escape", "back", "Back", "Return to the session"),
        Key("replay.reload", "r", "reload", "Reload", "Load the replay again"),
    ),
    # SessionScreen (screens.session)
    "session": (
        Key("session.back", "escape", "back", "Back", "Return to the previous screen"),
        Key(
            "session.tab_timeline",
            "1",
            "show_timeline",
            "Timeline",
            "Show the timeline of events",
            show=False,
            palette=("Session: timeline tab", "Show the timeline of events"),
        ),
        Key(
            "session.tab_artifacts",
            "2",
            "show_artifacts",
            "Artifacts",
            "Show the session's artifacts",
            show=False,
            needs=Capability.ARTIFACTS,
            palette=("Session: artifacts tab", "Show the session's artifacts"),
        ),
        Key(
            "session.tab_tool_calls",
            "3",
            "show_tool_calls",
            "Tool calls",
            "Show the outstanding client tool calls",
            show=False,
            needs=Capability.TOOL_CALLS,
            palette=("Session: tool calls tab", "Show the outstanding client tool calls"),
        ),
        Key(
            "session.tab_variables",
            "4",
            "show_variables",
            "Variables",
            "Show the context variables",
            show=False,
            palette=("Session: variables tab", "Show the context variables"),
        ),
        Key("session.follow", "f", "toggle_follow", "Follow", "Follow new events (tail -f)"),
        Key("session.search", "/", "search", "Search", "Search the timeline's text"),
        Key(
            "session.search_next", "n", "search_next", "Next match", "Next search match", show=False
        ),
        Key(
            "session.search_previous",
            "N",
            "search_previous",
            "Previous match",
            "Previous search match",
            show=False,
        ),
        Key("session.filter_type", "t", "filter_type", "Type", "Show one event type"),
        Key(
            "session.toggle_hidden",
            "h",
            "toggle_hidden",
            "Hidden",
            "Show or collapse hidden events",
        ),
        Key(
            "session.event_visibility",
            "x",
            "event_visibility",
            "Hide/delete event",
            "Hide, unhide or delete the selected event",
            show=False,
            mutates=True,
            needs=Capability.HIDE_EVENTS,
        ),
        Key(
            "session.actions",
            "p",
            "focus_actions",
            "Actions",
            "Select one of this session's pending actions",
            needs=Capability.PENDING_ACTIONS,
        ),
        Key(
            "session.message",
            "m",
            "message",
            "Message",
            "Send a message to the session",
            mutates=True,
            needs=Capability.MESSAGES,
            palette=("Session: send a message", "Send a message to this session"),
        ),
        Key(
            "session.edit",
            "e",
            "edit",
            "Edit",
            "Edit the title, tags and metadata",
            show=False,
            mutates=True,
            needs=Capability.UPDATE_SESSION,
            palette=("Session: edit", "Edit the title, tags and metadata"),
        ),
        Key(
            "session.edit_variables",
            "V",
            "edit_variables",
            "Edit variables",
            "Edit the context variables",
            show=False,
            mutates=True,
            needs=Capability.VARIABLES,
            palette=("Session: edit variables", "Edit the context variables"),
        ),
        Key(
            "session.close",
            "c",
            "close_session",
            "Close",
            "Close the session (asks first)",
            show=False,
            mutates=True,
            needs=Capability.CLOSE,
            palette=("Session: close", "Close this session, asks first"),
        ),
        Key(
            "session.complete",
            "C",
            "complete_session",
            "Complete",
            "Mark the session completed (asks first)",
            show=False,
            mutates=True,
            needs=Capability.COMPLETE,
            palette=("Session: complete", "Mark this session completed, asks first"),
        ),
        Key(
            "session.delete",
            "D",
            "delete_session",
            "Delete",
            "Delete the session with its events and artifacts (asks first)",
            show=False,
            mutates=True,
            needs=Capability.DELETE,
            palette=("Session: delete", "Delete this session, asks first"),
        ),
        Key(
            "session.pause",
            "P",
            "pause_session",
            "Pause",
            "Pause the session: the agent stops until it is resumed",
            show=False,
            mutates=True,
            needs=Capability.PAUSE,
        ),
        Key(
            "session.resume",
            "U",
            "resume_session",
            "Resume",
            "Resume the paused session",
            show=False,
            mutates=True,
            needs=Capability.PAUSE,
        ),
        Key(
            "session.replay",
            "R",
            "replay",
            "Replay",
            "Show the session's replay as a waterfall",
            show=False,
            needs=Capability.REPLAY,
            palette=("Session: replay", "The session's replay as a waterfall"),
        ),
        Key(
            "session.export",
            "E",
            "export",
            "Export",
            "Export the session, its events and artifacts to a folder",
            show=False,
            needs=Capability.EVENTS,
            palette=("Session: export", "Export the session, events and artifacts to a folder"),
        ),
        Key("session.refresh", "r", "refresh", "Refresh", "Reload the session and retry"),
        Key(
            "session.describe",
            "d",
            "describe",
            "Describe",
            "The whole session object as JSON (secrets masked)",
            show=False,
            palette=("Session: describe", "The whole session object as JSON"),
        ),
    ),
    # TypeFilterModal (screens.session)
    "type_filter": (
        Key("type_filter.close", "escape", "dismiss_filter", "Close", "Keep the filter"),
    ),
    # SessionsScreen (screens.sessions)
    "sessions": (
        Key("sessions.filter", "slash", "filter", "Filter", "Filter by text"),
        Key("sessions.status", "s", "cycle_status", "Status", "Cycle the status filter"),
        Key("sessions.sort", "o", "cycle_sort", "Sort", "Change the order"),
        Key("sessions.refresh", "r", "refresh", "Refresh", "Reload and reconnect"),
        Key("sessions.inbox", "a", "inbox", "Inbox", "Pending actions inbox"),
        Key(
            "sessions.close",
            "c",
            "close_session",
            "Close",
            "Close the selected session (asks first)",
            mutates=True,
            needs=Capability.CLOSE,
        ),
        Key(
            "sessions.new",
            "n",
            "new_session",
            "New",
            "Create a session",
            mutates=True,
            needs=Capability.CREATE_SESSION,
        ),
        Key(
            "sessions.rate",
            "R",
            "toggle_rate",
            "Rate",
            "Show or hide the event-rate column",
            show=False,
        ),
        Key(
            "sessions.clear_filter",
            "escape",
            "clear_filter",
            "Clear filter",
            "Clear the text filter and return to the list",
            show=False,
        ),
    ),
    # ToolResultScreen (screens.tool_call)
    "tool_result": (
        Key("tool_result.reveal", "v", "reveal", "Reveal", "Show secrets briefly"),
        Key(
            "tool_result.submit",
            "ctrl+s",
            "submit_result",
            "Submit",
            "Send as result",
            priority=True,
            mutates=True,
        ),
        Key(
            "tool_result.error",
            "ctrl+e",
            "submit_error",
            "Error",
            "Send as an error",
            priority=True,
            mutates=True,
        ),
        Key("tool_result.cancel", "escape", "cancel", "Cancel", "Close"),
    ),
    # VariablesScreen (screens.variables)
    "variables": (
        Key("variables.save", "ctrl+s", "save", "Save", "Send the variables", mutates=True),
        Key("variables.add", "ctrl+n", "add_row", "Add", "Add a variable"),
        Key("variables.remove", "ctrl+d", "remove_row", "Remove", "Remove this variable"),
        Key("variables.close", "escape", "cancel", "Close", "Close without saving"),
    ),
    # ArtifactsPane (widgets.artifacts)
    "artifacts": (
        Key("artifacts.save", "s", "save", "Save", "Save the artifact to a file"),
        Key(
            "artifacts.open", "o", "open", "Open", "Open with the system opener, or $PAGER for text"
        ),
        Key("artifacts.copy", "y", "copy", "Copy text", "Copy the previewed text"),
        Key("artifacts.reload", "r", "reload", "Reload", "Reload the list"),
    ),
    # SessionTable (widgets.session_table)
    "session_table": (
        Key("sessions.up", "up,k", "cursor(-1)", "Up", "Previous row", show=False),
        Key("sessions.down", "down,j", "cursor(1)", "Down", "Next row", show=False),
        Key("sessions.page_up", "pageup", "page(-1)", "Page up", "One page up", show=False),
        Key("sessions.page_down", "pagedown", "page(1)", "Page down", "One page down", show=False),
        Key("sessions.first", "home,g", "first", "First", "First row", show=False),
        Key("sessions.last", "end,G", "last", "Last", "Last row (the oldest session)", show=False),
        Key("sessions.open", "enter", "select", "Open", "Open the session"),
    ),
    # Timeline (widgets.timeline)
    "timeline": (
        Key("timeline.up", "up,k", "cursor_up", "Up", "Previous event", show=False),
        Key("timeline.down", "down,j", "cursor_down", "Down", "Next event", show=False),
        Key("timeline.page_up", "pageup", "page_up", "Page up", "One screen up", show=False),
        Key(
            "timeline.page_down",
            "pagedown",
            "page_down",
            "Page down",
            "One screen down",
            show=False,
        ),
        Key("timeline.start", "home,g", "first", "Start", "Jump to the first event"),
        Key("timeline.end", "end,G", "last", "End", "Jump to the newest event"),
        Key("timeline.open", "enter", "open", "Open", "Show the event's full JSON"),
    ),
    # ToolCallTable (widgets.tool_calls)
    "tool_call_table": (
        Key(
            "tool_calls.answer",
            "enter",
            "answer",
            "Answer",
            "Submit a result or an error for the highlighted tool call",
            mutates=True,
            needs=Capability.TOOL_CALLS,
        ),
    ),
    # ToolCallsPane (widgets.tool_calls)
    "tool_calls": (
        Key(
            "tool_calls.reveal",
            "v",
            "reveal",
            "Reveal",
            "Show secret argument values for 10 seconds",
        ),
        Key("tool_calls.reload", "r", "reload", "Reload", "Reload the tool calls"),
    ),
}

KEYS_BY_ID: dict[str, Key] = {key.id: key for keys in KEYS.values() for key in keys}
MUTATING_BINDING_IDS: frozenset[str] = frozenset(
    key.id for key in KEYS_BY_ID.values() if key.mutates
)


def bindings(owner: str) -> list[BindingType]:
    """The ``BINDINGS`` of ``owner``, in the table's order."""
    return [key.binding() for key in KEYS[owner]]


def key_for_action(owner: str, action: str) -> Key | None:
    for key in KEYS[owner]:
        if key.action == action:
            return key
    return None


def unavailable(key: Key, console: ConsoleContext) -> str | None:
    """Why ``key`` is off with this backend and mode (for its tooltip and ``?``), or ``None``."""
    if key.needs is not None and not console.supports(key.needs):
        return f"not supported by {one_line(console.platform, 40)}"
    if key.mutates and console.read_only:
        return READ_ONLY_REASON
    return None


def not_offered(key: Key, console: ConsoleContext) -> bool:
    return key.needs is not None and not console.supports(key.needs)


def palette_keys(owner: str, console: ConsoleContext) -> Iterator[Key]:
    """``owner``'s keys with a palette entry that this backend and mode allow."""
    for key in KEYS[owner]:
        if key.palette is not None and unavailable(key, console) is None:
            yield key


class GatedKeys:
    """Mixed into a screen or widget whose ``BINDINGS`` are ``bindings(KEY_OWNER)``: its actions
    are refused as the table says (call ``key_unavailable`` from ``check_action``), and
    ``gate_active_bindings`` gives the footer and ``?`` the reason, hiding what the backend
    does not offer."""

    KEY_OWNER: ClassVar[str]

    def key_unavailable(self, action: str) -> str | None:
        key = key_for_action(self.KEY_OWNER, action)
        if key is None:
            return None
        console = find_console(self._gated_node())
        return None if console is None else unavailable(key, console)

    def gate_active_bindings(self, bindings: dict[str, ActiveBinding]) -> dict[str, ActiveBinding]:
        node = self._gated_node()
        console = find_console(node)
        if console is None:
            return bindings
        for name, active in bindings.items():
            if active.node is not node or active.binding.id not in KEYS_BY_ID:
                continue
            key = KEYS_BY_ID[active.binding.id]
            reason = unavailable(key, console)
            if reason is None:
                continue
            binding = active.binding
            if not_offered(key, console):
                # Not in the footer at all; `?` still lists it, saying why.
                binding = replace(binding, show=False)
            bindings[name] = active._replace(
                binding=binding, enabled=False, tooltip=f"{active.binding.tooltip} ({reason})"
            )
        return bindings

    def _gated_node(self) -> DOMNode:
        from textual.dom import DOMNode

        assert isinstance(self, DOMNode)
        return self
