"""Artifacts: list, upload, metadata, and content (whole or by byte range)."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse

from sessionscope.models import (
    MEDIA_TYPE_PATTERN,
    Artifact,
    ArtifactCreate,
    ArtifactWithContent,
    Page,
)
from sessionscope.server.api.deps import AGENT, API_PREFIX, READ, Org, StoreDep, json_reply
from sessionscope.server.errors import ApiError
from sessionscope.server.wire import StrictJsonRoute

router = APIRouter(prefix=API_PREFIX, route_class=StrictJsonRoute)


@router.get("/sessions/{session_id}/artifacts", response_model=Page[Artifact], dependencies=[READ])
async def list_artifacts(
    org: Org,
    store: StoreDep,
    session_id: str,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[Artifact]:
    return await store.list_artifacts(org, session_id, cursor=cursor, limit=limit)


@router.post(
    "/sessions/{session_id}/artifacts",
    status_code=201,
    response_model=Artifact,
    dependencies=[AGENT],
)
async def create_artifact(
    org: Org, store: StoreDep, session_id: str, spec: ArtifactCreate
) -> Artifact:
    return await store.create_artifact(org, session_id, spec)


@router.get(
    "/sessions/{session_id}/artifacts/{artifact_id}",
    response_model=ArtifactWithContent | Artifact,
    dependencies=[READ],
)
async def get_artifact(
    org: Org,
    store: StoreDep,
    session_id: str,
    artifact_id: str,
    content: Annotated[
        bool, Query(description="false: metadata only, without the base64 `data`")
    ] = True,
) -> Response:
    if not content:
        return json_reply(await store.get_artifact_metadata(org, session_id, artifact_id))
    return json_reply(await store.get_artifact_with_content(org, session_id, artifact_id))


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single ``Range``; None means serve everything (RFC 9110 lets a
    server ignore ranges it does not support, e.g. several at once)."""
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match[1] and not match[2]):
        return None
    if not match[1]:
        suffix = int(match[2])
        if suffix == 0:
            raise _unsatisfiable(size)
        return max(0, size - suffix), size - 1
    first = int(match[1])
    last = min(int(match[2]), size - 1) if match[2] else size - 1
    if first >= size or first > last:
        raise _unsatisfiable(size)
    return first, last


def _unsatisfiable(size: int) -> ApiError:
    return ApiError(
        416,
        "the requested range is outside the content",
        headers={"Content-Range": f"bytes */{size}"},
    )


@router.get("/sessions/{session_id}/artifacts/{artifact_id}/content", dependencies=[READ])
async def artifact_content(
    org: Org,
    store: StoreDep,
    session_id: str,
    artifact_id: str,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    artifact = await store.get_artifact_metadata(org, session_id, artifact_id)
    size = artifact.size_bytes
    headers = {
        "Accept-Ranges": "bytes",
        # The name comes from an agent: percent-encode it rather than trust it in a header.
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(artifact.name, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "ETag": f'"{artifact.checksum_sha256}"',
    }
    chosen = _byte_range(range_header, size) if range_header else None
    status_code = 200
    if chosen is None:
        first, last = 0, size - 1
    else:
        first, last = chosen
        status_code = 206
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    headers["Content-Length"] = str(last - first + 1)
    # Checked at upload; one stored before that is served as bytes, not as what it claims.
    media_type = artifact.mime_type
    if not re.fullmatch(MEDIA_TYPE_PATTERN, media_type):
        media_type = "application/octet-stream"
    if size == 0:
        return Response(b"", media_type=media_type, headers=headers)
    # Streamed chunk by chunk from the database: a preview of a huge artifact costs its range.
    return StreamingResponse(
        store.read_artifact_range(artifact, first, last),
        status_code=status_code,
        media_type=media_type,
        headers=headers,
    )
