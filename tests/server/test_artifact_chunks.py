"""Artifacts stored in chunks: ranges across chunk boundaries, metadata-only reads, old rows."""

from __future__ import annotations

import base64
import hashlib
import random
import sqlite3
import tracemalloc
from pathlib import Path

import httpx

from sessionscope.models import Artifact, ArtifactWithContent
from sessionscope.server.db import ARTIFACT_CHUNK_BYTES
from sessionscope.server.store import ARTIFACT_CHUNKS_PER_READ


def _upload(api: httpx.Client, session_id: str, name: str, data: bytes) -> Artifact:
    body = {"name": name, "mime_type": "application/octet-stream"}
    body["data"] = base64.b64encode(data).decode()
    response = api.post(f"/v1/sessions/{session_id}/artifacts", json=body)
    assert response.status_code == 201, response.text
    return Artifact.model_validate(response.json())


def _upload_legacy(api: httpx.Client, db_path: Path, session_id: str, data: bytes) -> str:
    """Upload an artifact, then put its row back the way the first schema stored it (bytes
    inline in ``artifacts.content``, no chunks); returns its content URL."""
    artifact = _upload(api, session_id, "old.bin", b"placeholder")
    with sqlite3.connect(db_path) as connection:
        connection.execute("DELETE FROM artifact_chunks WHERE artifact_id = ?", (artifact.id,))
        connection.execute(
            "UPDATE artifacts SET content = ?, size_bytes = ? WHERE id = ?",
            (data, len(data), artifact.id),
        )
    return f"/v1/sessions/{session_id}/artifacts/{artifact.id}/content"


def test_ranges_across_chunk_boundaries_and_metadata_only(api: httpx.Client) -> None:
    session_id = api.post("/v1/sessions", json={"title": "chunks"}).json()["id"]
    blob = random.Random(7).randbytes(ARTIFACT_CHUNK_BYTES * 5 + 123)
    artifact = _upload(api, session_id, "big.bin", blob)
    content = f"/v1/sessions/{session_id}/artifacts/{artifact.id}/content"

    whole = api.get(content)
    assert whole.status_code == 200 and whole.content == blob
    assert whole.headers["content-length"] == str(len(blob))
    step = ARTIFACT_CHUNK_BYTES
    for first, last in [
        (0, 0),
        (step - 1, step),  # the last byte of one chunk and the first of the next
        (step * 2 - 10, step * 4 + 10),  # spans several chunks (and more than one read)
        (len(blob) - 5, len(blob) - 1),
    ]:
        part = api.get(content, headers={"Range": f"bytes={first}-{last}"})
        assert part.status_code == 206, (first, last)
        assert part.content == blob[first : last + 1], (first, last)
        assert part.headers["content-range"] == f"bytes {first}-{last}/{len(blob)}"
    suffix = api.get(content, headers={"Range": "bytes=-300"})
    assert suffix.status_code == 206 and suffix.content == blob[-300:]

    single = f"/v1/sessions/{session_id}/artifacts/{artifact.id}"
    with_content = ArtifactWithContent.model_validate(api.get(single).json())
    assert base64.b64decode(with_content.data) == blob
    metadata = api.get(single, params={"content": "false"})
    assert metadata.status_code == 200 and "data" not in metadata.json()
    assert Artifact.model_validate(metadata.json()) == artifact
    assert artifact.checksum_sha256 == hashlib.sha256(blob).hexdigest()

    empty = _upload(api, session_id, "empty.bin", b"")
    empty_content = api.get(f"/v1/sessions/{session_id}/artifacts/{empty.id}/content")
    assert empty_content.status_code == 200 and empty_content.content == b""


def test_artifacts_stored_before_chunking_still_read(make_server) -> None:
    server = make_server()
    with httpx.Client(base_url=server.url, headers={"X-API-Key": server.api_key}) as api:
        session_id = api.post("/v1/sessions", json={"title": "legacy"}).json()["id"]
        legacy = b"stored inline by an older server"
        content = _upload_legacy(api, server.db_path, session_id, legacy)
        assert api.get(content).content == legacy
        ranged = api.get(content, headers={"Range": "bytes=7-12"})
        assert ranged.status_code == 206 and ranged.content == legacy[7:13]
        assert api.delete(f"/v1/sessions/{session_id}").status_code == 204
        with sqlite3.connect(server.db_path) as connection:
            (left,) = connection.execute("SELECT COUNT(*) FROM artifact_chunks").fetchone()
        assert left == 0


def test_ranges_past_the_first_chunk_of_an_artifact_stored_before_chunking(make_server) -> None:
    server = make_server()
    with httpx.Client(base_url=server.url, headers={"X-API-Key": server.api_key}) as api:
        session_id = api.post("/v1/sessions", json={"title": "legacy, large"}).json()["id"]
        # Larger than one chunk, so that a range can start in what would be a later chunk.
        legacy = random.Random(11).randbytes(ARTIFACT_CHUNK_BYTES * 2 + 999)
        content = _upload_legacy(api, server.db_path, session_id, legacy)
        step = ARTIFACT_CHUNK_BYTES
        for first, last in [
            (step + 5, step + 20),  # inside the second chunk's span
            (step * 2 - 3, len(legacy) - 1),  # across a chunk boundary to the end
        ]:
            part = api.get(content, headers={"Range": f"bytes={first}-{last}"})
            assert part.status_code == 206, (first, last)
            assert part.headers["content-length"] == str(last - first + 1)
            assert part.content == legacy[first : last + 1], (first, last)
        suffix = api.get(content, headers={"Range": "bytes=-100"})
        assert suffix.status_code == 206 and suffix.content == legacy[-100:]


def test_a_range_of_an_artifact_stored_before_chunking_reads_only_its_slice(make_server) -> None:
    """Memory stays at a few chunks for old rows too: a short range of a large inline artifact
    does not fetch the whole column, and a range longer than one read arrives whole, in order."""
    server = make_server()
    with httpx.Client(base_url=server.url, headers={"X-API-Key": server.api_key}) as api:
        session_id = api.post("/v1/sessions", json={"title": "legacy, huge"}).json()["id"]
        size = 24 * 1024 * 1024
        legacy = random.Random(13).randbytes(size)
        content = _upload_legacy(api, server.db_path, session_id, legacy)
        per_read = ARTIFACT_CHUNK_BYTES * ARTIFACT_CHUNKS_PER_READ
        first, last = per_read - 10, per_read * 2 + 10  # longer than one read: two
        part = api.get(content, headers={"Range": f"bytes={first}-{last}"})
        assert part.status_code == 206 and part.content == legacy[first : last + 1]

        middle = size // 2
        tracemalloc.start()  # every thread's allocations, the server's included
        try:
            small = api.get(content, headers={"Range": f"bytes={middle}-{middle + 99}"})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert small.status_code == 206 and small.content == legacy[middle : middle + 100]
        # Fetching the whole column would allocate at least its 24 MB.
        assert peak < size // 4, f"peak {peak:,} bytes to read 100"
