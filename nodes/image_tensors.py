"""The one place image bytes become ComfyUI ``IMAGE`` tensors: ``ImageBatch``, for every caller
(a node's files as they arrive, files kept from an earlier run, Load Task, the benchmark).

An ``IMAGE`` is ``float32 [B, H, W, 3]`` in 0..1, contiguous, on the CPU. The rules:

* **Orientation**: the EXIF orientation tag is applied, as a viewer shows the file.
* **Colour**: every mode becomes RGB. Alpha is *dropped*, not composited (the colour under a
  transparent pixel is kept, as ComfyUI's Load Image does; alpha is a MASK there). ``L``,
  ``I;16*``, ``I`` and ``F`` are grey on three channels; ``I;16*`` and ``I`` are 16-bit samples
  (Pillow's 16-bit PNG and TIFF) scaled by 1/65535; ``F`` is 0..1, clipped; every other mode
  goes through Pillow's RGB conversion. An animation gives its first frame.
* **Mixed sizes**: each image is fitted to the *first* image's size as ComfyUI's ImageBatch node
  does it (centre crop to that aspect ratio, then bilinear resize).
* **Limits**: headers are read before any pixel is decoded; an image over ``max_pixels`` (or a
  batch over ``max_batch_pixels``) is ``errors.TooLargeError`` before it takes the memory; bytes
  Pillow cannot read are ``errors.NotAnImageError``. One bad file never costs the others.

The batch is allocated once; each image is decoded, written into its own slot and released (no
float copy per image, no ``torch.cat``). A plain JPEG or PNG is decoded by Pillow into the last
bytes of its own slot and widened there, so the batch is all the memory it takes. Pillow and
NumPy release the GIL, so ``submit`` decodes on a pool of one thread per core.
"""

from __future__ import annotations

import io
import itertools
import os
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from ..api import errors
from ..journal.verify import MAX_PIXELS, check_pixel_count

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

ImageSource = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]"]
"""Encoded image bytes, or the path of an image file."""
Key = Hashable
"""Names one image of a batch, e.g. ``(task position, file index)``."""
Skipped = list[tuple[Key, errors.GrokError]]

DEFAULT_MAX_PIXELS = MAX_PIXELS
"""Per image: the limit a file is verified against before it is kept (``journal.verify``)."""
DEFAULT_MAX_BATCH_PIXELS = 256 * 1024 * 1024
"""Per batch (after the mixed-size fit): a 3 GB tensor."""

_SIXTEEN_BIT = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_PACKED = {"RGB": 4, "RGBA": 4, "RGBX": 4, "L": 1}
"""8-bit modes Pillow packs to RGB (or grey) bands -> bytes per pixel in Pillow's memory."""
_BAND_BYTES = 64 * 1024
"""Rows are widened a band at a time: small enough to stay in cache, and for a band's packed
samples to come from the thread's heap, below malloc's 128 KiB mmap threshold, instead of from
fresh pages (1 JPEG: 1.09x the tensor at its peak in a fresh process, 1.19x with 256 KiB)."""
_TRANSPOSE = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_270",
    7: "TRANSVERSE",
    8: "ROTATE_90",
}
"""EXIF orientation -> ``PIL.Image.Transpose``, the table ``ImageOps.exif_transpose`` uses."""


class ImageBatch:
    """One IMAGE batch of up to ``slots`` images, filled from any thread in any order.

    ``add``/``submit`` never raise: an image that cannot be read is reported by ``finish``. The
    batch is allocated at the size of the first image to arrive; if that is not the first one
    *in order* and the sizes differ, or an image had no free slot, ``finish`` decodes the batch
    once more at the right size (rare: a task's files share a size). Calls after ``finish``, or
    while ``cancelled()``, are ignored, so a late download never writes into a returned batch.
    """

    def __init__(
        self,
        slots: int,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_batch_pixels: int = DEFAULT_MAX_BATCH_PIXELS,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        self._capacity = max(1, int(slots))
        self._max_pixels = max_pixels
        self._max_batch_pixels = max_batch_pixels
        self._cancelled = cancelled
        self._out: np.ndarray | None = None
        self._size: tuple[int, int] | None = None
        self._lock = threading.Condition()
        self._busy = 0
        self._closed = False
        self._jobs: list[Future[None]] = []
        self._sources: dict[Key, tuple[ImageSource, str]] = {}
        self._slot_of: dict[Key, int] = {}
        self._written: dict[Key, tuple[int, int]] = {}
        """key -> the image's own size (orientation applied), for every image in its slot."""
        self._unplaced: set[Key] = set()
        self._failed: dict[Key, errors.GrokError] = {}

    def add(
        self,
        key: Key,
        source: ImageSource,
        *,
        slot: int | None = None,
        label: str | None = None,
        decoded: Image.Image | None = None,
    ) -> None:
        """Decode ``source`` into slot ``slot`` on this thread, or write the image already
        ``decoded`` from it (which stays the caller's to close)."""
        label = label or _label(source, 0, 1)
        if self._cancelled is not None and self._cancelled():
            return
        with self._lock:
            if self._closed or key in self._sources:
                return
            self._sources[key] = (source, label)
            self._busy += 1
        try:
            self._add(key, source, slot, label, decoded)
        except errors.GrokError as exc:
            self._fail(key, exc)
        except Exception as exc:  # a decoder bug must not cost the other images
            line = errors.exception_line(exc)
            self._fail(key, errors.NotAnImageError(f"{label} could not be read: {line}"))
        finally:
            with self._lock:
                self._busy -= 1
                self._lock.notify_all()

    def submit(
        self, key: Key, source: ImageSource, *, slot: int | None = None, label: str | None = None
    ) -> None:
        """``add`` on the decode pool; returns at once, ``finish`` waits for it."""
        job = decode_pool().submit(self.add, key, source, slot=slot, label=label)
        with self._lock:
            self._jobs.append(job)

    def finish(self, order: Sequence[Key]) -> tuple[torch.Tensor, Skipped]:
        """The images of ``order`` as one batch, and (key, error) for each one left out;
        raises the first image's error if none could be read."""
        import torch

        with self._lock:
            jobs = list(self._jobs)
        wait(jobs)
        with self._lock:
            self._closed = True
            while self._busy:
                self._lock.wait()
        for key in order:
            if key not in self._sources:
                self._failed[key] = errors.NotAnImageError("the image never arrived")
        good = [key for key in order if key in self._written or key in self._unplaced]
        if good and not self._fits(good):
            return self._second_pass(order)
        skipped = [(key, self._failed[key]) for key in order if key in self._failed]
        if not good:
            if skipped:
                raise skipped[0][1]
            raise errors.NotAnImageError("there are no images to load")
        assert self._out is not None
        out, self._out = self._out, None
        for rank, key in enumerate(good):  # slots only ever move down: nothing is overwritten
            if self._slot_of[key] != rank:
                out[rank] = out[self._slot_of[key]]
        if len(good) < len(out):  # untouched room costs nothing, unless most of it is empty
            out = out[: len(good)]
            if 2 * len(good) <= self._capacity:
                out = out.copy()
        return torch.from_numpy(out), skipped

    def _add(
        self, key: Key, source: ImageSource, slot: int | None, label: str, decoded: Any
    ) -> None:
        fresh = decoded is None
        if fresh:
            header = _open_header(source, label, self._max_pixels)
        else:
            header = _decoded_header(decoded, label)
        try:
            with self._lock:
                target = self._claim(key, slot, header.size)
            if target is not None:
                _fill(header, target, fresh=fresh)
                with self._lock:
                    self._written[key] = header.size
        finally:
            if fresh:
                header.image.close()

    def _claim(self, key: Key, slot: int | None, size: tuple[int, int]) -> np.ndarray | None:
        """The slot's array (the batch is allocated on first use), or None: no free slot, so the
        image waits for the second pass. Called with the lock held."""
        if self._out is None:
            self._out, self._size = self._allocate(size), size
        if slot is None or not 0 <= slot < self._capacity or slot in self._slot_of.values():
            self._unplaced.add(key)
            return None
        self._slot_of[key] = slot
        return self._out[slot]

    def _allocate(self, size: tuple[int, int]) -> np.ndarray:
        import numpy as np

        width, height = size
        pixels = width * height * self._capacity
        if pixels > self._max_batch_pixels:
            raise errors.TooLargeError(
                f"{self._capacity} images of {width}x{height} make {pixels / 1e6:.0f} "
                f"megapixels, over the {self._max_batch_pixels / 1e6:.0f} megapixel limit for "
                "one IMAGE batch"
            )
        return np.empty((self._capacity, height, width, 3), np.float32)

    def _fail(self, key: Key, exc: errors.GrokError) -> None:
        with self._lock:
            self._failed[key] = exc
            self._written.pop(key, None)
            self._unplaced.discard(key)

    def _fits(self, good: Sequence[Key]) -> bool:
        """Is every good image in its slot, slots rising in order, at the first image's size?"""
        if self._unplaced.intersection(good) or self._written[good[0]] != self._size:
            return False
        return all(self._slot_of[a] < self._slot_of[b] for a, b in itertools.pairwise(good))

    def _second_pass(self, order: Sequence[Key]) -> tuple[torch.Tensor, Skipped]:
        """Decode every image again, from its source, into a batch laid out for ``order``."""
        self._out = None  # the first attempt's memory goes before the second's is taken
        known = [key for key in order if key in self._sources and key not in self._failed]
        again = ImageBatch(
            len(known), max_pixels=self._max_pixels, max_batch_pixels=self._max_batch_pixels
        )
        for slot, key in enumerate(known):  # the first on this thread: it sets the size
            source, label = self._sources[key]
            (again.submit if slot else again.add)(key, source, slot=slot, label=label)
        images, skipped = again.finish(known)
        failed = dict(skipped) | self._failed
        return images, [(key, failed[key]) for key in order if key in failed]


# -- headers ---------------------------------------------------------------------------------------


@dataclass
class _Header:
    image: Image.Image
    size: tuple[int, int]
    """(width, height) after the EXIF orientation is applied."""
    orientation: int
    label: str


def _open_header(source: ImageSource, label: str, max_pixels: int) -> _Header:
    """``Image.open`` reads only the header: the pixel count is checked before any decoding."""
    from PIL import Image, UnidentifiedImageError

    # Pillow warns above ~89 MP and refuses above twice that, both over our own limit.
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            image = Image.open(io.BytesIO(source))
        else:
            image = Image.open(Path(source))
    except Image.DecompressionBombError as exc:
        line = errors.exception_line(exc)
        raise errors.TooLargeError(f"{label} is too large to decode safely ({line})") from exc
    except (UnidentifiedImageError, SyntaxError, ValueError, EOFError) as exc:
        line = errors.exception_line(exc)
        raise errors.NotAnImageError(
            f"{label} is not an image this pack can read ({line})"
        ) from exc
    except OSError as exc:
        line = errors.exception_line(exc)
        raise errors.NotAnImageError(f"{label} could not be read: {line}") from exc
    try:
        check_pixel_count(*image.size, max_pixels, label)
        return _header(image, label)
    except BaseException:
        image.close()
        raise


def _header(image: Image.Image, label: str) -> _Header:
    width, height = image.size
    orientation = _orientation(image)
    size = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    return _Header(image, size, orientation, label)


_decoded_header = _header
"""The header of an image the journal's check already decoded (a name of its own to spy on)."""


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation, read without decoding pixels. (A PNG's ``getexif()`` decodes the
    whole image to look for an eXIf chunk after the pixels; the spec puts it before them.)"""
    from PIL import Image

    try:
        if image.format == "PNG":
            exif = Image.Exif()
            exif.load(image.info.get("exif") or b"")
        else:
            exif = image.getexif()
        value = int(exif.get(0x0112, 1))
    except Exception:  # a damaged EXIF block must not cost the image
        return 1
    return value if 1 <= value <= 8 else 1


# -- pixels ----------------------------------------------------------------------------------------


def _fill(header: _Header, out: np.ndarray, *, fresh: bool) -> None:
    """Decode ``header``'s image into ``out`` ([H, W, 3] float32): oriented, fitted, 0..1.

    A ``fresh`` (not yet decoded) plain JPEG or PNG at ``out``'s size is decoded into the last
    bytes of ``out`` itself: widening its rows front to back never overwrites a row not yet read
    (after ``r`` of ``H`` rows the floats end at ``12 W r`` bytes, the unread rows start at
    ``(12 - p) W H + p W r`` for ``p`` bytes per pixel, and ``12 W r`` is never past that).
    """
    from PIL import Image

    image = header.image
    height, width = out.shape[:2]
    if (
        fresh
        and image.mode in _PACKED
        and header.orientation == 1
        and image.size == (width, height)
        and image.format in ("JPEG", "PNG")
        and not getattr(image, "is_animated", False)
    ):
        flat = out.reshape(-1).view("uint8")
        tail = flat[flat.size - width * height * _PACKED[image.mode] :]
        try:  # ImageFile.load decodes into an image core that is already there
            image.im = Image.core.map_buffer(tail, image.size, "raw", 0, (image.mode, 0, 1))
        except Exception:  # a Pillow without this: the image decodes into its own memory
            pass
    opened: list[Image.Image] = []
    try:
        _write(header, _decode(header, opened), out)
    finally:
        for extra in opened:
            extra.close()


def _decode(header: _Header, opened: list[Image.Image]) -> Image.Image:
    """The pixels, oriented, in a mode ``_write`` reads; new images go on ``opened``."""
    from PIL import Image

    try:
        image = header.image
        image.load()
        if header.orientation in _TRANSPOSE:
            image = image.transpose(Image.Transpose[_TRANSPOSE[header.orientation]])
            opened.append(image)
        if image.mode not in _PACKED and image.mode not in _SIXTEEN_BIT and image.mode != "F":
            image = image.convert("RGB")
            opened.append(image)
        return image
    except MemoryError:
        raise errors.TooLargeError(f"{header.label} does not fit in memory") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        line = errors.exception_line(exc)
        raise errors.NotAnImageError(f"{header.label} could not be decoded: {line}") from exc


def _write(header: _Header, image: Image.Image, out: np.ndarray) -> None:
    """Fit ``image`` to ``out`` and write it there scaled to 0..1, a band of rows at a time:
    Pillow packs each band to plain samples, NumPy widens them while they are still in cache."""
    import numpy as np
    from PIL import Image, ImageOps

    height, width = out.shape[:2]
    source = image
    if image.size != (width, height):
        try:
            image = ImageOps.fit(image, (width, height), Image.Resampling.BILINEAR)
        except (OSError, ValueError) as exc:
            raise errors.NotAnImageError(
                f"{header.label} could not be resized to {width}x{height}: "
                f"{errors.exception_line(exc)}"
            ) from exc
    mode = image.mode
    scale = np.float32(1 / 65535 if mode in _SIXTEEN_BIT else 1 / 255)
    try:
        for top, pixels in _bands(image, max(1, _BAND_BYTES // (width * 4))):
            target = out[top : top + len(pixels)]
            if mode == "F":
                np.clip(pixels, 0.0, 1.0, out=target)
                continue
            target[...] = pixels
            target *= scale
            if mode == "I":  # 32-bit samples may lie outside 16 bits
                np.clip(target, 0.0, 1.0, out=target)
    finally:
        if image is not source:
            image.close()


def _bands(image: Image.Image, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, samples) for each band of ``rows`` rows. 8-bit modes are packed to RGB (or
    grey), alpha and padding dropped, by Pillow's raw encoder (what ``tobytes`` runs) straight
    from the image's memory: one pass over the pixels, where ``crop(box).tobytes()`` takes two
    (20-25 % more CPU per JPEG). Other modes come as arrays of a crop."""
    import numpy as np
    from PIL import Image

    width, height = image.size
    if image.mode not in _PACKED:
        for top in range(0, height, rows):
            with image.crop((0, top, width, min(height, top + rows))) as band:
                yield top, np.asarray(band)[..., np.newaxis]
        return
    raw_mode = "L" if image.mode == "L" else "RGB"
    encoder = Image._getencoder(image.mode, "raw", raw_mode)
    try:
        encoder.setimage(image.im, (0, 0, width, height))
        for top in range(0, height, rows):  # the encoder packs whole rows, as many as fit
            samples = encoder.encode(min(rows, height - top) * width * len(raw_mode))[2]
            yield top, np.frombuffer(samples, np.uint8).reshape(-1, width, len(raw_mode))
    finally:
        encoder.cleanup()


# -- helpers ---------------------------------------------------------------------------------------


_pool_lock = threading.Lock()
_pool: list[ThreadPoolExecutor] = []


def decode_pool() -> ThreadPoolExecutor:
    """One small pool for the process, made on first use (importing starts no threads): one
    decoder per core, 2 to 4. Its jobs must never wait on the pool themselves."""
    with _pool_lock:
        if not _pool:
            workers = min(4, max(2, os.cpu_count() or 1))
            _pool.append(ThreadPoolExecutor(workers, thread_name_prefix="grok-imagine-decode"))
        return _pool[0]


def _label(source: Any, position: int, count: int) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"image file {Path(source).name}"
    return f"image {position + 1} of {count}" if count > 1 else "the image"
