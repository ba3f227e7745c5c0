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

Memory: the batch is allocated once, by torch, and each image is written into its own slot (no
float copy per image, no ``torch.cat``); a plain JPEG or PNG is even decoded into the last bytes
of its own slot (``_fill``), so the batch is all the memory the conversion takes. Pillow and
NumPy release the GIL, so ``submit`` decodes on a pool of one thread per core.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

from ..api import errors
from ..api.messages import Message, said
from ..api.what import What
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
Label = Message | str
"""How an image is named in an error: the pack's words, or a caller's text."""

DEFAULT_MAX_PIXELS = MAX_PIXELS
"""Per image: the limit a file is verified against before it is kept (``journal.verify``)."""
DEFAULT_MAX_BATCH_PIXELS = 256 * 1024 * 1024
"""Per batch (after the mixed-size fit): a 3 GB tensor."""

_SAMPLES: dict[str, tuple[str, str, float]] = {
    "RGB": ("RGB", "u1", 1 / 255),
    "RGBA": ("RGB", "u1", 1 / 255),
    "RGBX": ("RGB", "u1", 1 / 255),
    "L": ("L", "u1", 1 / 255),
    "I;16": ("I;16", "<u2", 1 / 65535),
    "I;16L": ("I;16L", "<u2", 1 / 65535),
    "I;16B": ("I;16B", ">u2", 1 / 65535),
    "I;16N": ("I;16N", "=u2", 1 / 65535),
    "I": ("I", "=i4", 1 / 65535),
    "F": ("F", "=f4", 1.0),
}
"""The modes written as they are -> (what Pillow packs them to: RGB or grey, alpha and padding
dropped; the NumPy type of a sample; the scale to 0..1). Every other mode is converted to RGB."""
_IN_PLACE = {"RGB": 4, "RGBA": 4, "L": 1}
"""The modes a fresh JPEG or PNG is decoded in place in -> bytes per pixel in Pillow's memory."""
_BAND_BYTES = 120 * 1024
"""Rows are widened a band at a time, this many packed bytes (40 rows of a 1024-wide RGB image):
below malloc's 128 KiB mmap threshold, so they come from the thread's heap, not fresh pages
(past it, one JPEG's peak memory rose by a tenth of its tensor), and their floats stay in a
core's L2. Each band lets go of the GIL twice, so bands are not smaller: with 16-row bands,
eight parallel tasks' 48 images took 0.98-1.31 s from the last task done to the node returned,
0.83-0.99 s with 48-row bands (their threads spent less time handing the GIL over)."""
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


@dataclass
class _Entry:
    """One image added to a batch."""

    source: ImageSource
    label: Label
    size: tuple[int, int] | None = None
    """Its own size (orientation applied), once its header is read."""
    slot: int | None = None
    """Where it was written; None if it had no free slot (it waits for the second pass)."""
    error: errors.GrokError | None = None


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
        self._entries: dict[Key, _Entry] = {}
        self._taken: set[int] = set()

    def add(
        self,
        key: Key,
        source: ImageSource,
        *,
        slot: int | None = None,
        label: Label | None = None,
        decoded: Image.Image | None = None,
    ) -> None:
        """Decode ``source`` into slot ``slot`` on this thread, or write the image already
        ``decoded`` from it (which stays the caller's to close)."""
        if self._cancelled is not None and self._cancelled():
            return
        entry = _Entry(source, label or _label(source, 0, 1))
        with self._lock:
            if self._closed or key in self._entries:
                return
            self._entries[key] = entry
            self._busy += 1
        try:
            self._add(entry, slot, decoded)
        except errors.GrokError as exc:
            entry.error = exc
        except Exception as exc:  # a decoder bug must not cost the other images
            entry.error = errors.NotAnImageError(_could_not_read(entry.label, exc))
        finally:
            with self._lock:
                self._busy -= 1
                self._lock.notify_all()

    def submit(
        self, key: Key, source: ImageSource, *, slot: int | None = None, label: Label | None = None
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
        good = [key for key in order if self._error(key) is None]
        if good and not self._fits(good):
            return self._second_pass(order)
        skipped = [(key, error) for key in order if (error := self._error(key)) is not None]
        if not good:
            if skipped:
                raise skipped[0][1]
            raise errors.NotAnImageError(said(What.NO_IMAGES_TO_LOAD))
        assert self._out is not None
        out, self._out = self._out, None
        for rank, key in enumerate(good):  # slots only ever move down: nothing is overwritten
            slot = self._entries[key].slot
            if slot != rank:
                out[rank] = out[slot]
        images = torch.from_numpy(out[: len(good)])
        if 2 * len(good) <= self._capacity:  # untouched room costs nothing, unless most is empty
            images = images.clone()
        return images, skipped

    def _add(self, entry: _Entry, slot: int | None, decoded: Image.Image | None) -> None:
        if decoded is None:
            header = _open_header(entry.source, entry.label, self._max_pixels)
        else:
            header = _decoded_header(decoded, entry.label)
        try:
            with self._lock:
                target = self._claim(entry, slot, header.size)
            if target is not None:
                _fill(header, target, fresh=decoded is None)
        finally:
            if decoded is None:
                header.image.close()

    def _claim(self, entry: _Entry, slot: int | None, size: tuple[int, int]) -> np.ndarray | None:
        """The slot's array (the batch is allocated on first use), or None: no free slot, so the
        image waits for the second pass. Called with the lock held."""
        if self._out is None:
            self._out, self._size = self._allocate(size), size
        entry.size = size
        if slot is None or not 0 <= slot < self._capacity or slot in self._taken:
            return None
        self._taken.add(slot)
        entry.slot = slot
        return self._out[slot]

    def _allocate(self, size: tuple[int, int]) -> np.ndarray:
        import torch

        width, height = size
        pixels = width * height * self._capacity
        if pixels > self._max_batch_pixels:
            made = said(
                What.BATCH_TOO_LARGE,
                count=self._capacity,
                size=f"{width}x{height}",
                megapixels=f"{pixels / 1e6:.0f}",
                limit=f"{self._max_batch_pixels / 1e6:.0f}",
            )
            raise errors.TooLargeError(made)
        # torch's allocator, as for any tensor ComfyUI makes, not NumPy's: NumPy asks the kernel
        # for transparent huge pages for large arrays, and their first touch swings with the
        # machine's memory state (on the benchmark VM, 10 ms to 1 s for 72 MiB; normal pages
        # took a steady 40 ms), which every node run pays, its batch being new memory.
        batch = torch.empty((self._capacity, height, width, 3), dtype=torch.float32)
        return batch.numpy()

    def _error(self, key: Key) -> errors.GrokError | None:
        entry = self._entries.get(key)
        if entry is None:
            return errors.NotAnImageError(said(What.IMAGE_NEVER_ARRIVED))
        return entry.error

    def _fits(self, good: Sequence[Key]) -> bool:
        """Is every good image in its slot, slots rising in order, at the first image's size?"""
        slots = [self._entries[key].slot for key in good]
        placed = [slot for slot in slots if slot is not None]
        first_size = self._entries[good[0]].size
        return len(placed) == len(slots) and placed == sorted(placed) and first_size == self._size

    def _second_pass(self, order: Sequence[Key]) -> tuple[torch.Tensor, Skipped]:
        """Decode every image again, from its source, into a batch laid out for ``order``."""
        self._out = None  # the first attempt's memory goes before the second's is taken
        known = [key for key in order if self._error(key) is None]
        again = ImageBatch(
            len(known), max_pixels=self._max_pixels, max_batch_pixels=self._max_batch_pixels
        )
        for slot, key in enumerate(known):  # the first on this thread: it sets the size
            entry = self._entries[key]
            (again.submit if slot else again.add)(key, entry.source, slot=slot, label=entry.label)
        images, skipped = again.finish(known)
        failed = dict(skipped)
        return images, [
            (key, error)
            for key in order
            if (error := failed.get(key) or self._error(key)) is not None
        ]


# -- headers ---------------------------------------------------------------------------------------


@dataclass
class _Header:
    image: Image.Image
    size: tuple[int, int]
    """(width, height) after the EXIF orientation is applied."""
    orientation: int
    label: Label


def _open_header(source: ImageSource, label: Label, max_pixels: int) -> _Header:
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
        raise errors.TooLargeError(
            said(What.DECOMPRESSION_BOMB, subject=label, reason=line)
        ) from exc
    except (UnidentifiedImageError, SyntaxError, ValueError, EOFError) as exc:
        line = errors.exception_line(exc)
        unread = said(What.UNREADABLE_IMAGE, subject=label, reason=line)
        raise errors.NotAnImageError(unread) from exc
    except OSError as exc:
        raise errors.NotAnImageError(_could_not_read(label, exc)) from exc
    try:
        check_pixel_count(*image.size, max_pixels, label)
        return _header(image, label)
    except BaseException:
        image.close()
        raise


def _header(image: Image.Image, label: Label) -> _Header:
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
    bytes of ``out`` itself, so it takes no memory of its own (one JPEG peaks at 1.02x its
    tensor, 1.33x when Pillow decodes it into its own memory). Widening its rows front to back never
    overwrites a row not yet read: after ``r`` of ``H`` rows the floats end at ``12 W r`` bytes,
    the unread rows start at ``(12 - p) W H + p W r`` for ``p`` bytes per pixel, and ``12 W r``
    is never past that.
    """
    from PIL import Image

    image = header.image
    height, width = out.shape[:2]
    if (
        fresh
        and image.mode in _IN_PLACE
        and header.orientation == 1
        and image.size == (width, height)
        and image.format in ("JPEG", "PNG")
        and not getattr(image, "is_animated", False)
    ):
        flat = out.reshape(-1).view("uint8")
        tail = flat[flat.size - width * height * _IN_PLACE[image.mode] :]
        try:  # ImageFile.load decodes into an image core that is already there
            image.im = Image.core.map_buffer(tail, image.size, "raw", 0, (image.mode, 0, 1))
        except Exception:  # a Pillow without this: the image decodes into its own memory
            pass
    _write(_pixels(header, (width, height)), out)


def _pixels(header: _Header, size: tuple[int, int]) -> Image.Image:
    """``header``'s image decoded, oriented, in a mode of ``_SAMPLES`` and fitted to ``size``.
    Each step makes a new image; the one before it is freed as ``image`` moves on."""
    from PIL import Image, ImageOps

    image = header.image
    try:
        image.load()
        if header.orientation in _TRANSPOSE:
            image = image.transpose(Image.Transpose[_TRANSPOSE[header.orientation]])
        if image.mode not in _SAMPLES:
            image = image.convert("RGB")
    except MemoryError:
        raise errors.TooLargeError(said(What.DOES_NOT_FIT, subject=header.label)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        line = errors.exception_line(exc)
        damaged = said(What.COULD_NOT_DECODE, subject=header.label, reason=line)
        raise errors.NotAnImageError(damaged) from exc
    if image.size == size:
        return image
    try:
        return ImageOps.fit(image, size, Image.Resampling.BILINEAR)
    except (OSError, ValueError) as exc:
        line, shown = errors.exception_line(exc), f"{size[0]}x{size[1]}"
        unfit = said(What.COULD_NOT_RESIZE, subject=header.label, size=shown, reason=line)
        raise errors.NotAnImageError(unfit) from exc


def _write(image: Image.Image, out: np.ndarray) -> None:
    """Write ``image``'s samples into ``out`` scaled to 0..1, a band of rows at a time: Pillow's
    raw encoder (what ``tobytes`` runs) packs each band straight from the image's memory, and
    NumPy widens it while it is still in cache. One pass over the pixels and no copy of the
    image: ``crop`` + ``np.asarray`` per band takes twice the time, ``np.asarray`` of the whole
    image a quarter of its slot more memory."""
    import numpy as np
    from PIL import Image

    raw_mode, sample, scale = _SAMPLES[image.mode]
    dtype = np.dtype(sample)
    channels = 3 if raw_mode == "RGB" else 1
    height, width = out.shape[:2]
    rows = max(1, _BAND_BYTES // (width * channels * dtype.itemsize))
    encoder = Image._getencoder(image.mode, "raw", raw_mode)
    try:
        encoder.setimage(image.im, (0, 0, width, height))
        for top in range(0, height, rows):  # the encoder packs whole rows, as many as fit
            band = out[top : top + rows]
            packed = encoder.encode(len(band) * width * channels * dtype.itemsize)[2]
            band[...] = np.frombuffer(packed, dtype).reshape(len(band), width, channels)
            band *= np.float32(scale)
            if dtype.kind != "u":  # 32-bit and float samples may lie outside 0..1
                np.clip(band, 0.0, 1.0, out=band)
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


def _label(source: object, position: int, count: int) -> Message:
    if isinstance(source, (str, os.PathLike)):
        return said(What.IMAGE_FILE, name=Path(source).name)
    if count > 1:
        return said(What.IMAGE_NUMBER, number=position + 1, count=count)
    return said(What.THE_IMAGE)


def _could_not_read(label: Label, exc: BaseException) -> Message:
    return said(What.COULD_NOT_READ, subject=label, reason=errors.exception_line(exc))
