"""Fixtures for the AG2Trust backend tests: the fake platform on loopback, backends on a record
in the test's temporary folder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.ag2trust import API_KEY, ENDPOINT, FakeAG2Trust

from sessionscope.backends import BackendConfig, create_backend
from sessionscope.backends.ag2trust import AG2TrustBackend


def ag2trust_config(url: str, record: Path, **options: Any) -> BackendConfig:
    return BackendConfig(
        name="ag2trust",
        url=url,
        api_key=API_KEY,
        timeout=5.0,
        options={
            "endpoint": ENDPOINT,
            "record": str(record),
            "record_poll": 0.02,
            "retry_base": 0.01,
            "retry_max": 0.05,
            **options,
        },
    )


@pytest.fixture
def fake() -> Iterator[FakeAG2Trust]:
    with FakeAG2Trust() as running:
        yield running


@pytest.fixture
async def ag2trust(
    fake: FakeAG2Trust, tmp_path: Path
) -> AsyncIterator[Callable[..., AG2TrustBackend]]:
    made: list[AG2TrustBackend] = []

    def build(record: Path | None = None, **options: Any) -> AG2TrustBackend:
        backend = create_backend(
            ag2trust_config(fake.url, record or tmp_path / "record.sqlite3", **options)
        )
        assert isinstance(backend, AG2TrustBackend)
        made.append(backend)
        return backend

    yield build
    for backend in made:
        await backend.aclose()
