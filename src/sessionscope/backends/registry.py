"""Build a backend from a dialect name, a URL and credentials.

Dialects register a factory under their name; modules are imported only when asked for, so that
listing dialects or starting the console does not pay for every adapter.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from sessionscope.backends.base import Backend, BackendConfig, BackendError

BackendFactory = Callable[[BackendConfig], Backend]

#: dialect name -> "module:attribute" of a factory taking a BackendConfig.
_BUILTIN: dict[str, str] = {
    "native": "sessionscope.backends.native:NativeBackend",
}
_registered: dict[str, BackendFactory] = {}


def register(name: str, factory: BackendFactory) -> None:
    _registered[name] = factory


def available() -> list[str]:
    return sorted({*_BUILTIN, *_registered})


def create_backend(config: BackendConfig) -> Backend:
    factory = _registered.get(config.name)
    if factory is None:
        target = _BUILTIN.get(config.name)
        if target is None:
            raise BackendError(
                f"unknown backend {config.name!r}; available: {', '.join(available())}"
            )
        module_name, _, attribute = target.partition(":")
        factory = getattr(importlib.import_module(module_name), attribute)
    return factory(config)
