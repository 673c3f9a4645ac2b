"""Images drawn with half-block cells: each cell is "▀" with the upper pixel as foreground and
the lower pixel as background, so a cell shows two square-ish pixels.

Pillow is imported lazily: the console starts without paying for it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.events import Resize
from textual.strip import Strip
from textual.widget import Widget

from sessionscope.tui.preview.sniff import IMAGE_MAX_PIXELS

if TYPE_CHECKING:
    from PIL.Image import Image

HALF_BLOCK = "▀"
#: The decoded picture kept in memory is at most this many pixels a side; a terminal shows less.
KEEP_MAX_SIDE = 400
#: Transparent pixels are drawn over this colour.
MATTE = (24, 24, 24)


class ImageTooLarge(ValueError):
    pass


@dataclass(frozen=True)
class DecodedImage:
    image: Image
    format: str
    width: int
    height: int


def decode_image(data: bytes) -> DecodedImage:
    """Decode PNG/JPEG/GIF (first frame) bytes into a small RGB image.

    The pixel count is checked from the header before any pixel is decoded: a few hundred bytes
    of PNG can declare a picture that needs gigabytes.
    """
    from PIL import Image as PILImage

    try:
        opened = PILImage.open(io.BytesIO(data), formats=("PNG", "JPEG", "GIF"))
    except PILImage.DecompressionBombError as exc:
        raise ImageTooLarge("the image declares too many pixels to draw") from exc
    with opened:
        width, height = opened.size
        if width * height > IMAGE_MAX_PIXELS:
            raise ImageTooLarge(f"{width}x{height} pixels is too large to draw")
        fmt = opened.format or "image"
        if fmt == "JPEG":
            # JPEG can decode straight at a fraction of the size.
            opened.draft("RGB", (KEEP_MAX_SIDE, KEEP_MAX_SIDE))
        opened.seek(0)
        frame = opened.convert("RGBA")
    frame.thumbnail((KEEP_MAX_SIDE, KEEP_MAX_SIDE), PILImage.Resampling.LANCZOS)
    background = PILImage.new("RGBA", frame.size, (*MATTE, 255))
    background.alpha_composite(frame)
    return DecodedImage(background.convert("RGB"), fmt, width, height)


def fit(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int]:
    """Largest size with the same aspect ratio inside the box, never upscaled, at least 1x1."""
    if width <= 0 or height <= 0 or max_width <= 0 or max_height <= 0:
        return (0, 0)
    scale = min(max_width / width, max_height / height, 1.0)
    return (max(1, round(width * scale)), max(1, round(height * scale)))


def halfblock_rows(image: Image, columns: int, rows: int) -> list[list[Segment]]:
    """The image scaled to fit ``columns`` x ``rows`` cells, as rows of half-block segments."""
    from PIL import Image as PILImage

    pixel_width, pixel_height = fit(image.width, image.height, columns, rows * 2)
    if pixel_width == 0:
        return []
    scaled = image.resize((pixel_width, pixel_height), PILImage.Resampling.LANCZOS)
    pixels = scaled.load()
    assert pixels is not None
    lines: list[list[Segment]] = []
    for top in range(0, pixel_height, 2):
        segments: list[Segment] = []
        for x in range(pixel_width):
            upper = pixels[x, top]
            style = Style(color=Color.from_rgb(*upper[:3]))  # type: ignore[index]
            if top + 1 < pixel_height:
                lower = pixels[x, top + 1]
                style += Style(bgcolor=Color.from_rgb(*lower[:3]))  # type: ignore[index]
            segments.append(Segment(HALF_BLOCK, style))
        lines.append(list(Segment.simplify(segments)))
    return lines


class ImageView(Widget):
    """Draws a decoded image scaled to the widget's size; rescaled on resize."""

    DEFAULT_CSS = """
    ImageView {
        width: 1fr;
        height: 1fr;
    }
    """

    def __init__(self, decoded: DecodedImage, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.decoded = decoded
        self._rows: list[list[Segment]] = []
        self._rows_for: tuple[int, int] | None = None

    def on_resize(self, event: Resize) -> None:
        self._rows_for = None
        self.refresh()

    def _ensure_rows(self) -> None:
        size = (self.size.width, self.size.height)
        if self._rows_for != size:
            self._rows = halfblock_rows(self.decoded.image, *size)
            self._rows_for = size

    def render_line(self, y: int) -> Strip:
        self._ensure_rows()
        width = self.size.width
        if y >= len(self._rows):
            return Strip.blank(width, self.rich_style)
        return Strip(self._rows[y]).extend_cell_length(width, self.rich_style)
