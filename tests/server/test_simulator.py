"""The agent simulator: seeded, complete in what it produces, and wired into the server."""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections import Counter

from PIL import Image

from sessionscope.server import sim_content as content
from sessionscope.server.simulator import StepKind, write_script

# ---------------------------------------------------------------------------------------------
# Content, without a server
# ---------------------------------------------------------------------------------------------


def test_png_is_a_real_png() -> None:
    data = content.make_png(random.Random(3), width=20, height=10)
    assert data.startswith(content.PNG_SIGNATURE)
    # Every chunk's CRC is right, and the image decodes with an independent decoder.
    position = len(content.PNG_SIGNATURE)
    kinds = []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        kinds.append(kind)
        position += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.size == (20, 10)
    assert image.mode == "RGB"


def test_each_artifact_kind_has_its_mime_type() -> None:
    rng = random.Random(1)
    mime_types = {
        kind: content.artifact(rng, "x", kind).mime_type for kind in content.ARTIFACT_KINDS
    }
    assert mime_types == {
        "text": "text/plain",
        "markdown": "text/markdown",
        "json": "application/json",
        "python": "text/x-python",
        "png": "image/png",
        "binary": "application/octet-stream",
    }


def _script_text(seed: int) -> str:
    rng = random.Random(seed)
    return repr([write_script(rng) for _ in range(20)])


def test_scripts_depend_only_on_the_seed() -> None:
    # Another user of the global random module must not change the story.
    first = _script_text(42)
    random.seed(0)
    random.random()
    assert _script_text(42) == first
    assert _script_text(43) != first


def test_scripts_cover_every_kind_of_step() -> None:
    rng = random.Random(7)
    steps = [step for _ in range(60) for step in write_script(rng)]
    kinds = Counter(step.kind for step in steps)
    assert set(kinds) == set(StepKind)
    event_types = {step.body["type"] for step in steps if step.kind is StepKind.EVENT}
    assert {"thinking", "message.agent", "tool.started", "tool.completed", "tool.failed"} <= (
        event_types
    )
    assert "error" in event_types
    statuses = {step.body["status"] for step in steps if step.kind is StepKind.STATUS}
    assert {"active", "idle", "failed"} <= statuses
    proposals = [step.body["proposal"] for step in steps if step.kind is StepKind.PROPOSE_ACTION]
    assert all(30 <= proposal.expires_in_seconds <= 600 for proposal in proposals)
    assert {proposal.tool for proposal in proposals} >= {"send_email", "run_shell", "deploy"}
    assert any(proposal.destructive for proposal in proposals)
    email = next(proposal for proposal in proposals if proposal.tool == "send_email")
    assert set(email.preview) >= {"to", "subject", "body"}
    tool_calls = [step.body for step in steps if step.kind is StepKind.TOOL_CALL]
    assert any(argument["secret"] for call in tool_calls for argument in call["arguments"])


def test_some_content_is_hostile() -> None:
    rng = random.Random(11)
    text = repr([write_script(rng, hostile_rate=0.5) for _ in range(40)])
    assert "[bold]not bold[/bold]" in text
    assert "[@click=app.quit]" in text
    assert "\\x1b[31m" in text
    assert "word299" in text  # a very long line
