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
    "everruns": "sessionscope.backends.everruns:EverrunsBackend",
    "vectara": "sessionscope.backends.vectara:VectaraBackend",
    "agentinbox": "sessionscope.backends.agentinbox:AgentInboxBackend",
    "ag2trust": "sessionscope.backends.ag2trust:AG2TrustBackend",
    "viben": "sessionscope.backends.viben:VibenBackend",
}

#: Each platform's public base URL as its documents give it, used when none is configured.
#: Paths are appended below it: Everruns ``/v1/...`` (its spec's server is ``.../api``), Vectara
#: ``/v2/...``, AgentInbox (base already ``/api/v1``), AG2Trust ``/api/v1/...``, Viben ``/api/...``.
DEFAULT_URLS: dict[str, str] = {
    "native": "http://127.0.0.1:8765",
    "everruns": "https://app.everruns.com/api",
    "vectara": "https://api.vectara.io",
    "agentinbox": "https://agentinbox.in/api/v1",
    "ag2trust": "https://api.ag2trust.com",
    "viben": "http://127.0.0.1:18790",
}
_registered: dict[str, BackendFactory] = {}


def register(name: str, factory: BackendFactory) -> None:
    _registered[name] = factory


def available() -> list[str]:
    return sorted({*_BUILTIN, *_registered})


def default_url(name: str) -> str:
    """The platform's public base URL (native: the reference server on loopback)."""
    return DEFAULT_URLS.get(name, DEFAULT_URLS["native"])


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
