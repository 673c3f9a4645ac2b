"""The cyclic garbage collector around the console's start.

Starting the console allocates about 85,000 objects that live as long as the process (modules,
stylesheets, widgets) and next to no cyclic garbage. The collector's passes over them, full ones
included, were about 15% of the time from process start to the first page painted (140 ms of
930 in an A/B on the benchmark machine). So the console pauses the collector before its imports
(``pause_for_startup``) and, once the first page is painted, moves everything then alive to the
permanent generation and resumes it (``end_startup``): the long-lived startup heap is then never
walked again, which also keeps full collections short later (one took ~70 ms with it included,
landing between a key and its frame). A start that never paints (no server, an error) ends the
pause anyway: the app calls ``end_startup`` on a failed first page and after a time limit.

Only ``sessionscope``'s own command pauses the collector; an app built in a test or a library
never does, and ``end_startup`` then only freezes.
"""

from __future__ import annotations

import gc

_paused = False
_frozen = False


def pause_for_startup() -> None:
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def end_startup() -> None:
    """Freeze the startup heap and resume the collector if it was paused. Once per process: the
    freeze is process-wide, and later apps (tests) would only freeze their predecessors'
    garbage."""
    global _paused, _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()
    if _paused:
        _paused = False
        gc.enable()


def paused() -> bool:
    return _paused
