"""The dialogs widgets ask their screen for (``messages``): a screen that hosts such widgets
inherits ``HostsDialogs`` and opens them."""

from __future__ import annotations

from pathlib import Path

from textual.screen import Screen

from sessionscope.models import ToolCall
from sessionscope.tui.messages import ConfirmRequested, SavePathRequested, ToolResultRequested


class HostsDialogs:
    """Mixed into a ``Screen``: handlers found by name, as Textual dispatches along the MRO."""

    def on_confirm_requested(self, request: ConfirmRequested) -> None:
        from sessionscope.tui.screens.confirm import ConfirmationModal

        request.stop()
        question = request.question
        modal = ConfirmationModal(
            question.title,
            question.body,
            confirm_label=question.confirm_label,
            refuse_label=question.refuse_label,
            destructive=question.destructive,
        )

        def answered(answer: bool | None) -> None:
            request.answer(bool(answer))

        self._screen().app.push_screen(modal, answered)

    def on_save_path_requested(self, request: SavePathRequested) -> None:
        from sessionscope.tui.screens.artifact_save import SaveArtifactScreen

        request.stop()

        def chosen(path: Path | None) -> None:
            request.chosen(path)

        self._screen().app.push_screen(
            SaveArtifactScreen(request.name, request.default_path), chosen
        )

    def on_tool_result_requested(self, request: ToolResultRequested) -> None:
        from sessionscope.tui.screens.tool_call import ToolResultScreen

        request.stop()

        def answered(call: ToolCall | None) -> None:
            request.answered(call)

        self._screen().app.push_screen(ToolResultScreen(request.session_id, request.call), answered)

    def _screen(self) -> Screen[object]:
        assert isinstance(self, Screen)
        return self
