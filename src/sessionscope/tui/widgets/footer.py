"""A key-binding footer that rebuilds its keys only when what it shows changes.

Textual's ``Footer`` queues a full recompose (unmount, mount and restyle every key) for each
``refresh_bindings`` a screen publishes, and a screen publishes several while it mounts (the
screen stack, each focus change, ...): startup profiles showed five rebuilds of the same keys. Here
the rebuilds asked for before the next refresh collapse into one, which is skipped when the keys
are the ones already shown.
"""

from __future__ import annotations

from collections.abc import Hashable

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from sessionscope.tui.textual_compat import mark_footer_bindings_ready, start_footer_key_like_footer


class AppFooter(Footer):
    def __init__(
        self,
        *,
        id: str | None = None,
        classes: str | None = None,
        show_command_palette: bool = True,
        compact: bool = False,
    ) -> None:
        super().__init__(
            id=id, classes=classes, show_command_palette=show_command_palette, compact=compact
        )
        self._rebuild_pending = False
        self._shown: Hashable | None = None

    def bindings_changed(self, screen: Screen[object]) -> None:
        # Same conditions as Footer.bindings_changed; only the scheduling differs.
        mark_footer_bindings_ready(self)
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen and not self._rebuild_pending:
            self._rebuild_pending = True
            self.call_after_refresh(self._rebuild)

    async def _rebuild(self) -> None:
        self._rebuild_pending = False
        if not self.is_attached:
            return
        shown = self._what_is_shown()
        if shown == self._shown:
            return
        self._shown = shown
        await self.recompose()

    def _what_is_shown(self) -> Hashable:
        """What ``Footer.compose`` reads: the shown bindings and the palette's binding."""
        app = self.app
        active = self.screen.active_bindings
        palette = active.get(app.COMMAND_PALETTE_BINDING)
        return (
            self.show_command_palette,
            self.combine_groups,
            palette[1:] if palette is not None else None,
            tuple(
                (binding, enabled, tooltip, app.get_key_display(binding))
                for _node, binding, enabled, tooltip in active.values()
                if binding.show
            ),
        )

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            # The palette key is not bound to the footer's compact setting and keeps its own.
            if not widget.has_class("-command-palette"):
                start_footer_key_like_footer(self, widget)
            yield widget
