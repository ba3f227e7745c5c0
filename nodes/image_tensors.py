"""The one place image bytes become ComfyUI ``IMAGE`` tensors.

An ``IMAGE`` is ``float32 [B, H, W, 3]`` in 0..1, contiguous, on the CPU. The policies, in one
place so every node behaves the same:

* **Orientation**: the EXIF orientation tag is applied, so the tensor looks the way a viewer shows
  the file.
* **Colour**: every mode becomes RGB. Alpha is *dropped*, not composited: the colour under a
  transparent pixel is kept as stored, which is what ComfyUI's own Load Image puts in its IMAGE
  output (alpha goes to a separate MASK there). ``1``/``L``/``LA``/``I;16*``/``I``/``F`` are
  grey, repeated on the three channels; ``I;16*`` and ``I`` are 16-bit samples (how Pillow opens
  16-bit PNG and TIFF) and scale by 1/65535; ``F`` is taken as already 0..1 and clipped; ``P``,
  ``PA``, ``CMYK``, ``YCbCr`` and the rest go through Pillow's RGB conversion. Animated images
  give their first frame.
* **Mixed sizes**: every image is fitted to the *first* image's size the way ComfyUI's
  ImageBatch node does it (centre crop to the first image's aspect ratio, then bilinear resize),
  so one batch never fails over a size mismatch.
* **Limits**: headers are read before any pixel is decoded; an image over ``max_pixels`` (or a
  batch over ``max_batch_pixels``) is refused with ``errors.TooLargeError`` before it can take
  the memory. Bytes Pillow cannot read raise ``errors.NotAnImageError``.

Speed: the output tensor is allocated once and each image is written into its slice in one
pass from its 8-bit (or 16-bit) pixels, with no intermediate float copy; several images are
decoded in a small thread pool (Pillow and NumPy release the GIL while they work). Peak extra
memory is one decoded image per worker on top of the final tensor.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from ..api import errors

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

ImageSource = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]"]
"""Encoded image bytes, or the path of an image file."""

DEFAULT_MAX_PIXELS = 64 * 1024 * 1024
"""Per image: 64 megapixels (8192 x 8192), a 768 MB IMAGE tensor. Grok returns ~1 MP."""

DEFAULT_MAX_BATCH_PIXELS = 256 * 1024 * 1024
"""Per batch (after the mixed-size fit): a 3 GB tensor."""

_MAX_WORKERS = 4
_ROTATING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION = 0x0112
_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_GREY_MODES = frozenset({"L", "F"}) | _SIXTEEN_BIT_MODES
_DIRECT_MODES = frozenset({"RGB", "RGBA", "RGBX"}) | _GREY_MODES
_BAND_BYTES = 256 * 1024


def images_to_tensor(
    sources: Sequence[ImageSource],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_batch_pixels: int = DEFAULT_MAX_BATCH_PIXELS,
) -> torch.Tensor:
    """Decode ``sources`` into one ``float32 [B, H, W, 3]`` IMAGE batch (see the module doc)."""
    import numpy as np
    import torch

    if not sources:
        raise errors.NotAnImageError("there are no images to load")
    headers: list[_Header] = []
    try:
        for position, source in enumerate(sources):
            headers.append(_open_header(source, position, len(sources), max_pixels))
        width, height = headers[0].size
        total = width * height * len(headers)
        if total > max_batch_pixels:
            raise errors.TooLargeError(
                f"{len(headers)} images of {width}x{height} make {total / 1e6:.0f} megapixels, "
                f"over the {max_batch_pixels / 1e6:.0f} megapixel limit for one IMAGE batch"
            )
        # NumPy's allocator asks for huge pages on big arrays, torch.empty does not: fewer page
        # faults. torch.from_numpy shares the memory, as ComfyUI's own Load Image does.
        out = np.empty((len(headers), height, width, 3), dtype=np.float32)
        pool = _pool()
        if len(headers) == 1:
            # Fault the output's pages in on a worker while this thread decodes.
            touched = pool.submit(_touch_pages, out)
            image = _decode(headers[0])
            touched.result()
            _write(headers[0], image, out[0])
        else:
            jobs = [pool.submit(_decode_and_write, h, o) for h, o in zip(headers, out, strict=True)]
            wait(jobs)  # every worker is done with its image before any is closed
            for job in jobs:
                job.result()
    finally:
        for header in headers:
            header.image.close()
    return torch.from_numpy(out)


def image_size(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) as the tensor will have it (orientation applied), from the header only."""
    header = _open_header(source, 0, 1, max_pixels)
    header.image.close()
    return header.size


# -- reading headers -------------------------------------------------------------------------------


@dataclass
class _Header:
    image: Image.Image
    size: tuple[int, int]
    """(width, height) after the EXIF orientation is applied."""
    orientation: int
    label: str


def _open_header(source: ImageSource, position: int, count: int, max_pixels: int) -> _Header:
    """``Image.open`` reads only the header: the pixel count is checked before any decoding."""
    from PIL import Image, UnidentifiedImageError

    label = _label(source, position, count)
    # Pillow itself warns above ~89 MP and refuses above twice that; both are over our own
    # limit, checked right below, so its warning is left alone (filters are process-global).
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            image = Image.open(io.BytesIO(source))
        else:
            image = Image.open(Path(source))
    except Image.DecompressionBombError as exc:
        raise errors.TooLargeError(
            f"{label} is too large to decode safely ({_first_line(exc)})"
        ) from exc
    except (UnidentifiedImageError, SyntaxError, ValueError, EOFError) as exc:
        raise errors.NotAnImageError(
            f"{label} is not an image this pack can read ({_first_line(exc)})"
        ) from exc
    except OSError as exc:
        raise errors.NotAnImageError(f"{label} could not be read: {_first_line(exc)}") from exc
    try:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise errors.NotAnImageError(f"{label} has no pixels ({width}x{height})")
        if width * height > max_pixels:
            raise errors.TooLargeError(
                f"{label} is {width}x{height} ({width * height / 1e6:.0f} megapixels), over the "
                f"{max_pixels / 1e6:.0f} megapixel limit; it was not decoded"
            )
        orientation = _orientation(image)
        if orientation in _ROTATING_ORIENTATIONS:
            width, height = height, width
    except BaseException:
        image.close()
        raise
    return _Header(image, (width, height), orientation, label)


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation, read without decoding pixels.

    A PNG's ``getexif()`` decodes the whole image to look for an eXIf chunk after the pixel data;
    the PNG spec places eXIf before it, so only that one is honoured.
    """
    from PIL import Image

    try:
        if image.format == "PNG":
            raw = image.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
        else:
            exif = image.getexif()
        value = int(exif.get(_EXIF_ORIENTATION, 1))
    except Exception:  # a damaged EXIF block must not cost the image
        return 1
    return value if 1 <= value <= 8 else 1


# -- decoding into the batch -----------------------------------------------------------------------


def _decode_and_write(header: _Header, out: np.ndarray) -> None:
    _write(header, _decode(header), out)


def _decode(header: _Header) -> Image.Image:
    """The pixels, oriented, in a mode ``_write`` knows."""
    from PIL import Image

    try:
        image = header.image
        image.load()
        method = _TRANSPOSE.get(header.orientation)
        if method is not None:
            image = image.transpose(Image.Transpose[method])
        return _array_friendly(image)
    except errors.GrokError:
        raise
    except MemoryError:
        raise errors.TooLargeError(f"{header.label} does not fit in memory") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise errors.NotAnImageError(
            f"{header.label} could not be decoded: {_first_line(exc)}"
        ) from exc


def _array_friendly(image: Image.Image) -> Image.Image:
    """A mode NumPy can view and ``_write`` knows: RGB(A/X), L, I;16*, I or F."""
    mode = image.mode
    if mode in _DIRECT_MODES:
        return image
    if mode == "1":
        return image.convert("L")
    if mode == "LA":
        return image.getchannel("L")
    if mode in ("P", "PA"):
        return image.convert("RGBA" if "transparency" in image.info or mode == "PA" else "RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise errors.NotAnImageError(
            f"images in colour mode {mode} cannot be converted to RGB ({_first_line(exc)})"
        ) from exc


def _write(header: _Header, image: Image.Image, out: np.ndarray) -> None:
    """Fit ``image`` to ``out`` ([H, W, 3] float32) and write it there scaled to 0..1.

    Rows go through a small, cache-sized band at a time: ``np.asarray`` of a whole image makes
    a full-size copy (and its page faults), a band costs almost nothing and stays in cache for
    the scaling.
    """
    import numpy as np
    from PIL import Image, ImageOps

    height, width = out.shape[:2]
    try:
        if image.size != (width, height):
            image = ImageOps.fit(
                image, (width, height), method=Image.Resampling.BILINEAR, centering=(0.5, 0.5)
            )
    except (OSError, ValueError) as exc:
        raise errors.NotAnImageError(
            f"{header.label} could not be resized to {width}x{height}: {_first_line(exc)}"
        ) from exc
    mode = image.mode
    grey = mode in _GREY_MODES
    scale = np.float32(1 / 65535 if mode in _SIXTEEN_BIT_MODES else 1 / 255)
    rows = max(1, _BAND_BYTES // (width * 4))
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        band = np.asarray(image.crop((0, top, width, bottom)))
        band = band[..., np.newaxis] if grey else band[..., :3]
        target = out[top:bottom]
        if mode == "F":
            np.clip(band, 0.0, 1.0, out=target)
            continue
        # A casting copy, then a multiply while the band is still in cache: faster than one
        # mixed-type np.multiply, which casts through a small buffer.
        target[...] = band
        target *= scale
        if mode == "I":  # 32-bit samples may lie outside 16 bits
            np.clip(target, 0.0, 1.0, out=target)


def _touch_pages(array: np.ndarray) -> None:
    """Write one value per 4 KiB page so the kernel maps the memory now, off the caller's path."""
    array.reshape(-1)[:: 4096 // array.itemsize] = 0


_TRANSPOSE = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_270",
    7: "TRANSVERSE",
    8: "ROTATE_90",
}
"""EXIF orientation -> ``PIL.Image.Transpose`` member, the table ``ImageOps.exif_transpose`` uses
(applied here by hand so a PNG's late eXIf chunk cannot disagree with the header's size)."""

# -- helpers ---------------------------------------------------------------------------------------

_pool_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """One small pool for the process, made on first use (importing starts no threads)."""
    global _executor
    with _pool_lock:
        if _executor is None:
            # At least two, so one image's decode overlaps another's conversion whenever a
            # second core is free (Pillow and NumPy release the GIL while they work).
            workers = min(_MAX_WORKERS, max(2, os.cpu_count() or 1))
            _executor = ThreadPoolExecutor(workers, thread_name_prefix="grok-imagine-decode")
        return _executor


def _label(source: Any, position: int, count: int) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"image file {Path(source).name}"
    return f"image {position + 1} of {count}" if count > 1 else "the image"


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__
