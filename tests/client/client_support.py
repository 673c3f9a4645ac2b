"""Helpers shared by the client tests (a plain module: conftest names collide across dirs)."""

from __future__ import annotations

from typing import Any

from sessionscope.backends import BackendConfig

#: Tiny backoffs so retry and reconnect paths run in milliseconds, not seconds.
FAST: dict[str, Any] = {
    "retry_attempts": 3,
    "retry_base": 0.001,
    "retry_max": 0.005,
    "reconnect_base": 0.001,
    "reconnect_max": 0.02,
    "seed": 7,
}

SECRET = "sk-live-SECRET-4f9a1c"


def fast_config(url: str, api_key: str | None = SECRET, **options: Any) -> BackendConfig:
    return BackendConfig(
        name="native", url=url, api_key=api_key, timeout=5.0, options={**FAST, **options}
    )
