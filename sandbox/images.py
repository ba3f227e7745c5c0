"""Real, decodable result images that visibly come from their prompt and their task.

The colours follow the prompt's hash and the prompt text is drawn on, so a workflow run against
the sandbox shows which prompt made which picture; the pattern and a caption follow the task id,
so two tasks of one prompt never return the same bytes. An upscale is its source image at twice
the size with a banner naming the source task. Pillow is imported inside the functions:
rendering only happens when a file is first asked for.
"""

from __future__ import annotations

import functools
import hashlib
import io
import random
import struct
import textwrap
import zlib


def _palette(
    prompt: str, index: int, task_id: str
) -> tuple[random.Random, tuple[int, ...], tuple[int, ...]]:
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    rng = random.Random(digest + task_id.encode("utf-8") + index.to_bytes(4, "big"))
    background = tuple(digest[0:3])
    accent = tuple(255 - c for c in digest[3:6])
    return rng, background, accent


@functools.lru_cache(maxsize=8)
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def render(
    prompt: str, index: int, size: tuple[int, int], image_format: str, task_id: str = ""
) -> bytes:
    """Image ``index`` of task ``task_id`` for ``prompt``, encoded as ``image_format``."""
    from PIL import Image, ImageDraw

    width, height = size
    rng, background, accent = _palette(prompt, index, task_id)
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    pattern = rng.randrange(3)
    step = rng.randrange(48, 160)
    if pattern == 0:  # diagonal stripes
        for x in range(-height, width, step):
            draw.line([(x, 0), (x + height, height)], fill=accent, width=step // 3)
    elif pattern == 1:  # circles
        for _ in range(12):
            cx, cy, r = rng.randrange(width), rng.randrange(height), rng.randrange(40, 260)
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=accent, width=max(4, r // 8))
    else:  # checker
        for y in range(0, height, step):
            for x in range((y // step) % 2 * step, width, 2 * step):
                draw.rectangle([x, y, x + step - 1, y + step - 1], fill=accent)

    margin = width // 16
    panel_top = height * 2 // 3
    panel = [margin, panel_top - margin // 2, width - margin, height - margin]
    draw.rectangle(panel, fill=(0, 0, 0))
    font = _font(max(16, width // 36))
    lines = textwrap.wrap(prompt, width=44, max_lines=4, placeholder=" ...") or [""]
    lines.append(f"sandbox task {task_id} \u00b7 image {index + 1}" if task_id else "sandbox")
    y = panel_top
    line_height = max(20, width // 28)
    for line in lines:
        draw.text((margin * 3 // 2, y), line, fill=(255, 255, 255), font=font)
        y += line_height
    return encode(image, image_format)


def encode(image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    if image_format == "JPEG":
        image.save(buffer, "JPEG", quality=88)
    else:
        image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def upscale(source: bytes, image_format: str, source_task_id: str = "") -> bytes:
    """The source image at twice its width and height, under a banner that says so."""
    from PIL import Image, ImageDraw

    with Image.open(io.BytesIO(source)) as original:
        original.load()
        bigger = original.convert("RGB").resize(
            (original.width * 2, original.height * 2), Image.Resampling.BICUBIC
        )
    draw = ImageDraw.Draw(bigger)
    font_size = max(16, bigger.width // 56)
    band = font_size * 2
    draw.rectangle([0, 0, bigger.width, band], fill=(255, 255, 255))
    label = f"UPSCALE 2x of task {source_task_id}, image 1" if source_task_id else "UPSCALE 2x"
    draw.text((font_size, font_size // 2), label, fill=(0, 0, 0), font=_font(font_size))
    return encode(bigger, image_format)


BOMB_SIDE = 24_000  # 576 megapixels: far past Pillow's decompression-bomb limit


@functools.lru_cache(maxsize=1)
def decompression_bomb() -> bytes:
    """A valid 1-bit PNG of BOMB_SIDE x BOMB_SIDE black pixels, about 100 KB on the wire.

    Written by hand (not with Pillow) so making it never allocates the pixels it claims.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", BOMB_SIDE, BOMB_SIDE, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\x00" * (1 + (BOMB_SIDE + 7) // 8)  # filter byte + packed pixels
    compressor = zlib.compressobj(9)
    rows_per_block = 1000
    parts = []
    for start in range(0, BOMB_SIDE, rows_per_block):
        parts.append(compressor.compress(row * min(rows_per_block, BOMB_SIDE - start)))
    parts.append(compressor.flush())
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )


NOT_AN_IMAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Access denied</title></head>"
    b"<body><h1>Access denied</h1><p>This object is not available.</p></body></html>\n"
)
