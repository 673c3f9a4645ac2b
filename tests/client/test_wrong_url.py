"""A console pointed at the wrong place says where it looked and what to check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sessionscope.backends import NotFound
from sessionscope.backends.native import NativeBackend


async def test_a_wrong_base_path_names_the_path_tried_and_asks_about_the_url(
    server: Any, backends: Callable[..., NativeBackend]
) -> None:
    backend = backends(f"{server.url}/api", server.api_key)
    with pytest.raises(NotFound) as caught:
        await backend.list_sessions()
    message = str(caught.value)
    assert "/api/v1/sessions" in message, message
    assert "is the URL right?" in message
    assert server.api_key not in message
