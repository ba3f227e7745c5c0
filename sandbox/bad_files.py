"""Result files that pass a magic-byte sniff but are not images anyone can use.

Each is what a CDN or a broken upstream has been seen to hand out: a header declaring far more
pixels than the bytes hold, a JPEG cut short (served whole, with a matching Content-Length, so
the transfer itself looks fine), or an image's magic bytes followed by garbage. Written by hand
where Pillow would have to allocate the pixels to make them.
"""

from __future__ import annotations

import functools
import random
import struct
import zlib

HUGE_SIDE = 9000  # 81 megapixels: under Pillow's own bomb limit, over the pack's 64 MP


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + data))
    return struct.pack(">I", len(data)) + kind + data + crc


@functools.lru_cache(maxsize=1)
def huge_header_png() -> bytes:
    """A valid 1-bit PNG of HUGE_SIDE x HUGE_SIDE black pixels (about 10 KB on the wire)."""
    header = struct.pack(">IIBBBBB", HUGE_SIDE, HUGE_SIDE, 1, 0, 0, 0, 0)
    row = b"\x00" * (1 + (HUGE_SIDE + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row * 1000) for _ in range(HUGE_SIDE // 1000))
    body += compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", body)
        + _png_chunk(b"IEND", b"")
    )


def truncated(image: bytes) -> bytes:
    """The first 60 % of a real image: its header is whole, its pixels stop part way."""
    return image[: len(image) * 3 // 5]


def garbage_after_magic(kind: str, length: int = 4096) -> bytes:
    """An image format's magic bytes followed by noise."""
    noise = random.Random(f"garbage-{kind}").randbytes(length)
    if kind == "png":
        return b"\x89PNG\r\n\x1a\n" + noise
    if kind == "gif":
        return b"GIF89a" + noise
    if kind == "webp":
        return b"RIFF" + struct.pack("<I", length + 4) + b"WEBP" + noise
    return b"\xff\xd8\xff\xe0" + noise  # jpeg
