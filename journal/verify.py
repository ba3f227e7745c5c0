"""A kept file is a decodable file: every downloaded image is decoded once before it is kept.

The magic-byte sniff of the download only says what a file claims to be. A decompression bomb, a
header declaring 9000 x 9000, a JPEG cut short or PNG magic followed by garbage all pass it, and
kept as good they would fail the node's conversion on every re-queue. So each file is opened
(header only: the pixel count is checked before any pixel is decoded), then decoded in full. Pillow
refuses an image whose data stops early unless ``ImageFile.LOAD_TRUNCATED_IMAGES`` is set (a
process-wide switch another node pack may have flipped); then the format's end marker is checked
instead (JPEG's EOI, PNG's IEND), so a cut-short file is never kept as good either way.

``verify_image(data, keep_decoded=True)`` hands the decoded image back, for a caller that turns it
into a tensor next and should not decode it twice.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..api import errors
from ..api.messages import Message, said
from ..api.what import What

if TYPE_CHECKING:
    from PIL import Image

MAX_PIXELS = 64 * 1024 * 1024
"""Per image: 64 megapixels (8192 x 8192), a 768 MB IMAGE tensor. Grok returns ~1 MP."""


@dataclass(frozen=True)
class VerifiedImage:
    image_format: str
    size: tuple[int, int]
    """(width, height) as stored (before any EXIF orientation)."""
    image: Image.Image | None = field(default=None, repr=False, compare=False)
    """The decoded image, when asked for with ``keep_decoded``; the caller closes it."""


def verify_image(
    data: bytes, *, max_pixels: int = MAX_PIXELS, keep_decoded: bool = False
) -> VerifiedImage:
    """Decode ``data`` fully; ``NotAnImageError`` / ``TooLargeError`` (one line, why) if it
    cannot be an image the node can use."""
    from PIL import Image, ImageFile, UnidentifiedImageError

    if not data:
        raise errors.NotAnImageError(said(What.FILE_IS_EMPTY))
    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
            image_format = header.format or "unknown"
    except Image.DecompressionBombError as exc:
        raise _bomb(exc) from exc
    except UnidentifiedImageError as exc:
        raise errors.NotAnImageError(said(What.NOT_FOR_PILLOW)) from exc
    except (SyntaxError, ValueError, EOFError, OSError, struct.error) as exc:
        raise errors.NotAnImageError(
            said(What.UNREADABLE_IMAGE, subject=said(What.IT), reason=_first_line(exc))
        ) from exc
    check_pixel_count(width, height, max_pixels, said(What.IT))
    image = Image.open(io.BytesIO(data))
    try:
        image.load()
        if ImageFile.LOAD_TRUNCATED_IMAGES and not _ends_whole(data, image_format):
            raise OSError("the image data ends before the image does")
    except Image.DecompressionBombError as exc:
        image.close()
        raise _bomb(exc) from exc
    except MemoryError:
        image.close()
        raise errors.TooLargeError(said(What.NO_MEMORY_TO_DECODE)) from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        image.close()
        raise errors.NotAnImageError(said(What.DAMAGED_IMAGE, reason=_first_line(exc))) from exc
    if not keep_decoded:
        image.close()
        return VerifiedImage(image_format, (width, height))
    return VerifiedImage(image_format, (width, height), image)


def _bomb(exc: BaseException) -> errors.TooLargeError:
    return errors.TooLargeError(
        said(What.DECOMPRESSION_BOMB, subject=said(What.IT), reason=_first_line(exc))
    )


def _ends_whole(data: bytes, image_format: str) -> bool:
    """Does the file end the way its format says a whole file ends?"""
    if image_format == "JPEG":
        return data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")
    if image_format == "PNG":
        return b"IEND" in data[-64:]
    return True


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:160] or type(exc).__name__


def check_pixel_count(width: int, height: int, max_pixels: int, subject: Message | str) -> None:
    """The one pixel rule, read from a header before any pixel is decoded: some pixels, and no
    more than ``max_pixels`` (``subject`` names the image in the message: "it", "image 3")."""
    if width <= 0 or height <= 0:
        raise errors.NotAnImageError(
            said(What.NO_PIXELS, subject=subject, width=width, height=height)
        )
    if width * height > max_pixels:
        raise errors.TooLargeError(
            said(
                What.TOO_MANY_PIXELS,
                subject=subject,
                width=width,
                height=height,
                megapixels=f"{width * height / 1e6:.0f}",
                limit=f"{max_pixels / 1e6:.0f}",
            )
        )
