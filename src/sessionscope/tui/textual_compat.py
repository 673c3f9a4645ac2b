"""Every reach into Textual's private names, in one module.

The console goes below Textual's public API in three places, each for a measured cost (see the
callers' docstrings): the footer's key widget and its rebuild flag (``widgets/footer.py``), and a
Line API view's vertical scrollbar (``widgets/scrolling.py``). Each reach was verified on
``VERIFIED_TEXTUAL`` and has a public fallback, taken when the private name is gone: the console
then looks and works the same, only without that optimisation. ``tests/tui/test_textual_compat.py``
fails when the installed Textual is another version, so an upgrade re-verifies these first.
"""

from __future__ import annotations

from importlib.metadata import version
from threading import get_ident
from typing import TYPE_CHECKING, Any

from textual.notifications import Notification
from textual.scrollbar import ScrollBar
from textual.widget import Widget
from textual.widgets import Footer

if TYPE_CHECKING:
    from collections.abc import Callable

    from textual.scroll_view import ScrollView

VERIFIED_TEXTUAL = "8.2.8"

try:
    # Footer composes one FooterKey per binding; only the private module names the class.
    from textual.widgets._footer import FooterKey as _FooterKey

    FOOTER_KEY: type[Widget] | None = _FooterKey
except ImportError:  # pragma: no cover - only on an unverified Textual
    FOOTER_KEY = None


def installed_textual() -> str:
    return version("textual")


def mark_footer_bindings_ready(footer: Footer) -> None:
    """What ``Footer.bindings_changed`` does before it schedules a rebuild (8.2: a private flag
    that ``Footer.compose`` waits for). An override of ``bindings_changed`` must do it too."""
    if hasattr(footer, "_bindings_ready"):
        footer._bindings_ready = True


def start_footer_key_like_footer(footer: Footer, widget: Widget) -> None:
    """A FooterKey starts compact and is then bound to the footer's setting: two restyles per key
    when they differ. Start it with the footer's setting instead. Without the class (an unverified
    Textual) the key keeps Textual's own behaviour."""
    if FOOTER_KEY is None or not isinstance(widget, FOOTER_KEY):
        return
    compact = getattr(FOOTER_KEY, "compact", None)
    if compact is None:
        return
    widget.set_reactive(compact, footer.compact)
    widget.set_class(footer.compact, "-compact", update=False)


def write_to_terminal(app: Any, data: str) -> None:
    """Raw bytes to the terminal through the app's driver (``App.bell`` uses the same private
    driver, but writes nothing when headless; the console's attention sequences are written
    either way, so a test captures them from the driver). Nothing without a driver."""
    driver = getattr(app, "_driver", None)
    if driver is not None:
        driver.write(data)


def notification_showing(app: Any, notification: Any) -> bool:
    """Whether the notification's toast is still up: neither expired nor dismissed (8.2: the
    app's private ``_notifications``). Without it, whether it has expired."""
    shown = getattr(app, "_notifications", None)
    if shown is not None and notification not in shown:
        return False
    return not notification.has_expired


def show_notification_now(app: Any, notification: Notification) -> bool:
    """Add the toast at once rather than through a ``Notify`` message (what ``App._on_notify``
    does, 8.2), so a notice given twice in a row finds the first one to fold into. Only on the
    app's thread; False (nothing done) elsewhere or without those names."""
    shown = getattr(app, "_notifications", None)
    refresh = getattr(app, "_refresh_notifications", None)
    if shown is None or refresh is None or getattr(app, "_thread_id", None) != get_ident():
        return False
    shown.add(notification)
    refresh()
    return True


def drop_notification(app: Any, notification: Any) -> None:
    """Take a toast down before its time (8.2: ``App._unnotify``, what a click on it does).
    Without it the toast stays until it expires: two toasts instead of one, nothing lost."""
    unnotify = getattr(app, "_unnotify", None)
    if unnotify is not None and notification_showing(app, notification):
        unnotify(notification, refresh=False)


def custom_vertical_scrollbar(view: ScrollView, make: Callable[[], ScrollBar]) -> ScrollBar:
    """For a view's ``vertical_scrollbar`` property: Textual's own (8.2: created on first use,
    kept in ``_vertical_scrollbar`` and started with ``App._start_widget``), except that the
    scrollbar is ``make()``. Without those names, Textual's own scrollbar (the public property)."""
    app: Any = view.app
    if not hasattr(view, "_vertical_scrollbar") or not hasattr(app, "_start_widget"):
        stock: ScrollBar = Widget.vertical_scrollbar.__get__(view)
        return stock
    if view._vertical_scrollbar is None:
        scrollbar = make()
        view._vertical_scrollbar = scrollbar
        app._start_widget(view, scrollbar)
    return view._vertical_scrollbar
