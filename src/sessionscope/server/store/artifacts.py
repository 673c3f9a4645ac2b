"""Artifacts: content stored in chunks, read whole or by byte range."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import AsyncIterator

from sqlalchemy import (
    LargeBinary,
    func,
    select,
    tuple_,
)

from sessionscope.models import (
    Artifact,
    ArtifactCreate,
    ArtifactWithContent,
    EventType,
    Page,
)
from sessionscope.server import db
from sessionscope.server.errors import field_error, not_found
from sessionscope.server.store.codecs import (
    _keyset,
    artifact_from_row,
    decode_cursor,
    encode_cursor,
    new_id,
)
from sessionscope.server.store.core import StoreCore, _refuse_closed

#: Artifact chunks fetched per query when streaming a range (1 MiB).
ARTIFACT_CHUNKS_PER_READ = 4


class ArtifactStore(StoreCore):
    # -- artifacts ------------------------------------------------------------------------------

    async def create_artifact(self, org: str, session_id: str, spec: ArtifactCreate) -> Artifact:
        try:
            content = base64.b64decode(spec.data, validate=True)
        except (binascii.Error, ValueError):
            raise field_error("data", "data must be base64") from None
        async with self.write() as tx:
            session = await self._load_session(tx, org, session_id)
            _refuse_closed(session)
            artifact = Artifact(
                id=new_id("art"),
                session_id=session_id,
                name=spec.name,
                mime_type=spec.mime_type,
                size_bytes=len(content),
                checksum_sha256=hashlib.sha256(content).hexdigest(),
                description=spec.description,
                metadata=spec.metadata,
                created_at=tx.now,
            )
            await tx.conn.execute(
                db.artifacts.insert().values(**artifact.model_dump(), org=org, content=b"")
            )
            step = db.ARTIFACT_CHUNK_BYTES
            chunks = [
                {
                    "artifact_id": artifact.id,
                    "chunk_index": index,
                    "data": content[start : start + step],
                }
                for index, start in enumerate(range(0, len(content), step))
            ]
            if chunks:
                await tx.conn.execute(db.artifact_chunks.insert(), chunks)
            await self._append_event(
                tx,
                session,
                EventType.ARTIFACT_CREATED.value,
                {
                    "artifact_id": artifact.id,
                    "name": artifact.name,
                    "mime_type": artifact.mime_type,
                    "size_bytes": artifact.size_bytes,
                },
            )
        return artifact

    async def list_artifacts(
        self, org: str, session_id: str, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Artifact]:
        a = db.artifacts.c
        columns = [column for column in db.artifacts.c if column.name != "content"]
        query = select(*columns).where(a.session_id == session_id, a.org == org)
        if cursor:
            micros, last_id = decode_cursor(cursor)
            query = query.where(tuple_(a.created_at, a.id) > _keyset(micros, last_id))
        query = query.order_by(a.created_at, a.id).limit(limit + 1)
        async with self.engine.connect() as conn:
            await self._require_session(conn, org, session_id)
            rows = (await conn.execute(query)).all()
            total = (
                await conn.execute(
                    select(func.count()).select_from(db.artifacts).where(a.session_id == session_id)
                )
            ).scalar_one()
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = None
        if more and rows:
            next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
        return Page[Artifact](
            data=[artifact_from_row(row) for row in rows], next_cursor=next_cursor, total=total
        )

    async def get_artifact_metadata(self, org: str, session_id: str, artifact_id: str) -> Artifact:
        a = db.artifacts.c
        columns = [column for column in db.artifacts.c if column.name != "content"]
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(*columns).where(
                        a.id == artifact_id, a.session_id == session_id, a.org == org
                    )
                )
            ).first()
        if row is None:
            raise not_found("artifact")
        return artifact_from_row(row)

    async def read_artifact_range(
        self, artifact: Artifact, first: int, last: int
    ) -> AsyncIterator[bytes]:
        """The bytes ``first..last`` (inclusive) of an artifact, a few chunks per query, so
        memory stays at a few chunks whatever the artifact's size or the range's length."""
        step = db.ARTIFACT_CHUNK_BYTES
        k = db.artifact_chunks.c
        first_index = index = first // step
        last_index = last // step
        while index <= last_index:
            upto = min(last_index, index + ARTIFACT_CHUNKS_PER_READ - 1)
            async with self.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        select(k.chunk_index, k.data)
                        .where(
                            k.artifact_id == artifact.id,
                            k.chunk_index >= index,
                            k.chunk_index <= upto,
                        )
                        .order_by(k.chunk_index)
                    )
                ).all()
            if not rows and index == first_index:
                # No chunk where the range starts: stored before chunking, so the bytes are
                # still in artifacts.content (wherever the range starts in them).
                async for part in self._read_legacy_artifact_range(artifact.id, first, last):
                    yield part
                return
            for chunk_index, data in rows:
                start = chunk_index * step
                yield bytes(data[max(0, first - start) : last + 1 - start])
            index = upto + 1

    async def _read_legacy_artifact_range(
        self, artifact_id: str, first: int, last: int
    ) -> AsyncIterator[bytes]:
        """``read_artifact_range`` for an artifact stored before chunking, whose bytes are
        inline in ``artifacts.content``: the range is sliced in SQL, as many chunks' worth per
        query as a chunked read takes, so the column is never loaded whole. ``substr`` counts
        bytes in a BLOB (SQLite) or a BYTEA (PostgreSQL), from 1."""
        content = db.artifacts.c.content
        most = db.ARTIFACT_CHUNK_BYTES * ARTIFACT_CHUNKS_PER_READ
        offset = first
        while offset <= last:
            length = min(most, last + 1 - offset)
            piece = func.substr(content, offset + 1, length, type_=LargeBinary)
            async with self.engine.connect() as conn:
                data = (
                    await conn.execute(select(piece).where(db.artifacts.c.id == artifact_id))
                ).scalar()
            part = bytes(data or b"")
            if part:
                yield part
            if len(part) < length:
                return  # the stored bytes end before the range does
            offset += length

    async def get_artifact(
        self, org: str, session_id: str, artifact_id: str
    ) -> tuple[Artifact, bytes]:
        artifact = await self.get_artifact_metadata(org, session_id, artifact_id)
        if artifact.size_bytes == 0:
            return artifact, b""
        parts = [
            part async for part in self.read_artifact_range(artifact, 0, artifact.size_bytes - 1)
        ]
        return artifact, b"".join(parts)

    async def get_artifact_with_content(
        self, org: str, session_id: str, artifact_id: str
    ) -> ArtifactWithContent:
        artifact, content = await self.get_artifact(org, session_id, artifact_id)
        return ArtifactWithContent(**artifact.model_dump(), data=base64.b64encode(content).decode())
