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

Speed and memory: the batch is allocated once and each image is written into its slot in one
pass, with no intermediate float copy and no second full-size copy (no ``torch.cat``). A plain
8-bit JPEG or PNG is decoded straight into the last third of its own float32 slot and widened in
place, front to back, so decoding it costs no memory beyond the batch; other images are decoded
in Pillow's memory, fitted, written and closed at once. ``ImageBatch`` fills a batch as images
arrive, from any thread and in any order (the node decodes each result file the moment it is
kept, while other tasks still run); ``images_to_tensor`` fills one from a list on a small
thread pool (Pillow and NumPy release the GIL while they work), after mapping the batch's pages
on one thread: fresh memory faulted by several threads at once costs several times the system
time (see ``ImageBatch.fault_in``).
"""

from __future__ import annotations

import io
import itertools
import os
import threading
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
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

DEFAULT_MAX_PIXELS = MAX_PIXELS
"""Per image: the limit a file is verified against before it is kept (``journal.verify``)."""

DEFAULT_MAX_BATCH_PIXELS = 256 * 1024 * 1024
"""Per batch (after the mixed-size fit): a 3 GB tensor."""

_MAX_WORKERS = 4
_ROTATING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION = 0x0112
_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_GREY_MODES = frozenset({"L", "F"}) | _SIXTEEN_BIT_MODES
_DIRECT_MODES = frozenset({"RGB", "RGBA", "RGBX"}) | _GREY_MODES
_PACKED_MODES = {"RGB": "RGB", "RGBA": "RGB", "RGBX": "RGB", "L": "L"}
"""Modes Pillow's raw encoder packs to 8-bit RGB (or grey) rows: image mode -> raw mode."""
_IN_PLACE_FORMATS = frozenset({"JPEG", "PNG"})
"""Formats decoded straight into the output slot (their plugins decode into the image we give)."""
_IN_PLACE_BYTES = {"RGB": 4, "RGBA": 4, "RGBX": 4, "L": 1}
"""Bytes per pixel of Pillow's storage for the modes decoded in place."""
_BAND_BYTES = 256 * 1024

Key = Hashable
"""Names one image of a batch, e.g. ``(task position, file index)``."""


def images_to_tensor(
    sources: Sequence[ImageSource],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_batch_pixels: int = DEFAULT_MAX_BATCH_PIXELS,
) -> torch.Tensor:
    """Decode ``sources`` into one ``float32 [B, H, W, 3]`` IMAGE batch (see the module doc).

    Strict: an image that cannot be read raises (``NotAnImageError`` / ``TooLargeError``).
    """
    if not sources:
        raise errors.NotAnImageError("there are no images to load")
    count = len(sources)
    first = _open_header(sources[0], _label(sources[0], 0, count), max_pixels)
    first.image.close()
    width, height = first.size
    if width * height * count > max_batch_pixels:
        raise _batch_too_large(count, first.size, max_batch_pixels)
    batch = ImageBatch(
        slots=count, size=first.size, max_pixels=max_pixels, max_batch_pixels=max_batch_pixels
    )
    keys = list(range(count))
    if count == 1:
        batch.add(0, sources[0], slot=0, label=_label(sources[0], 0, count), prefault=True)
    else:
        batch.fault_in()
        # The pool's workers and this thread take the images in turn: the caller decodes too
        # instead of waiting, and with it one thread per core (up to the pool's size), since a
        # third thread on two cores only adds switches between them.
        claim = itertools.count()
        claim_lock = threading.Lock()

        def work() -> None:
            while True:
                with claim_lock:
                    i = next(claim)
                if i >= count:
                    return
                batch.add(i, sources[i], slot=i, label=_label(sources[i], i, count))

        pool = decode_pool()
        helpers = [pool.submit(work) for _ in range(min(count - 1, max(1, _workers() - 1)))]
        work()
        wait(helpers)
        for helper in helpers:
            helper.result()
    images, skipped = batch.finish(keys)
    if skipped:
        raise skipped[0][1]
    return images


# -- a batch filled as its images arrive -----------------------------------------------------------


class ImageBatch:
    """One IMAGE batch, filled image by image as they arrive, from any thread, in any order.

    ``add`` decodes one image into its slot right away (on the calling thread) and never raises:
    an image that cannot be read is reported by ``finish`` instead, so one bad file never costs
    the others. The batch is allocated on the first ``add`` with room for ``slots`` images of
    that image's size (or of ``size``, when the caller knows it). ``finish(order)`` returns the
    images in ``order`` and the ones left out with the reason.

    The first image *in order* defines the batch size (the mixed-size rule). Images arriving out
    of order are written at the first arrival's size, and a key with no slot (more images than
    ``slots``) is kept as its source; in the rare case that either guess was wrong, ``finish``
    decodes the batch again from the sources, once, at the right size. Released as it goes: each
    decoded image is closed right after its write.
    """

    def __init__(
        self,
        slots: int,
        *,
        size: tuple[int, int] | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_batch_pixels: int = DEFAULT_MAX_BATCH_PIXELS,
    ) -> None:
        self._capacity = max(1, int(slots))
        self._size = size
        self._max_pixels = max_pixels
        self._max_batch_pixels = max_batch_pixels
        self._out: np.ndarray | None = None
        self._lock = threading.Condition()
        self._busy = 0
        self._closed = False
        self._sources: dict[Key, tuple[ImageSource, str]] = {}
        self._slot_of: dict[Key, int] = {}
        self._taken: set[int] = set()
        self._written: dict[Key, tuple[int, int]] = {}
        """key -> the image's own size (orientation applied), for every image in its slot."""
        self._unplaced: set[Key] = set()
        self._failed: dict[Key, errors.GrokError] = {}
        self._guessed = False
        """The batch was allocated from ``reserve``'s guess, before any image arrived."""
        self._prefaulting = False
        self._touching: int | None = None
        """The slot whose pages ``reserve``'s thread is faulting in right now."""

    def reserve(self, size: tuple[int, int]) -> None:
        """Allocate the batch now, at a guessed image size, and fault its pages in on a thread
        of its own while the tasks still generate (fresh memory is slow to map; a node has
        seconds to spare before its first image arrives). A wrong guess costs only that: the
        first image's real size replaces it before anything is written."""
        with self._lock:
            if self._out is not None or self._closed:
                return
            try:
                self._allocate(size)
            except errors.GrokError:
                return
            self._guessed = self._prefaulting = True
        threading.Thread(target=self._prefault, name="grok-imagine-prefault", daemon=True).start()

    def fault_in(self) -> None:
        """Allocate the batch at its known size and map every page of it on this thread, before
        any image is written there.

        Two decoders writing into fresh memory fault it in side by side, and on a 2-core VM that
        cost six 1 MP slots 22-48 ms of system time (median) against 8 ms for one thread mapping
        them first; the six decodes then ran no slower. A single image keeps its own overlap
        instead (``_fill``'s ``prefault``): one helper maps the front while the image decodes.
        """
        with self._lock:
            if self._out is None and not self._closed and self._size is not None:
                try:
                    self._allocate(self._size)
                except (errors.GrokError, MemoryError):
                    return  # the first ``add`` allocates again and reports it as always
            out = self._out
        if out is not None:
            _touch_pages(out)

    def _prefault(self) -> None:
        for slot in range(self._capacity):
            with self._lock:
                out = self._out
                if out is None or not self._prefaulting or self._closed:
                    break
                if slot in self._taken:  # an image got there first
                    continue
                self._touching = slot
            try:
                _touch_pages(out[slot])
            finally:
                with self._lock:
                    self._touching = None
                    self._lock.notify_all()

    def add(
        self,
        key: Key,
        source: ImageSource,
        *,
        slot: int | None = None,
        label: str | None = None,
        decoded: Image.Image | None = None,
        again: ImageSource | None = None,
        prefault: bool = False,
    ) -> None:
        """Decode ``source`` (or the already ``decoded`` image of it) into slot ``slot``.

        ``again`` (default ``source``) is kept for a possible second pass: a path costs nothing,
        bytes their size. ``decoded`` stays the caller's to close. Late calls (after ``finish``)
        are ignored, so a download that outlives its node never writes into a returned batch.
        """
        label = label or _label(source, 0, 1)
        with self._lock:
            if self._closed or key in self._sources:
                return
            self._sources[key] = (source if again is None else again, label)
            self._busy += 1
        try:
            self._add(key, source, slot, label, decoded, prefault)
        except errors.GrokError as exc:
            self._fail(key, exc)
        except Exception as exc:  # a decoder bug must not cost the other images
            self._fail(
                key, errors.NotAnImageError(f"{label} could not be read: {_first_line(exc)}")
            )
        finally:
            with self._lock:
                self._busy -= 1
                self._lock.notify_all()

    def finish(
        self, order: Sequence[Key]
    ) -> tuple[torch.Tensor, list[tuple[Key, errors.GrokError]]]:
        """The images of ``order`` (every key added), as one batch, and those left out.

        Raises the first image's error if none could be read. Waits for ``add`` calls still
        writing; later ones are ignored.
        """
        import torch

        with self._lock:
            self._closed = True
            while self._busy or self._touching is not None:
                self._lock.wait()
        missing = [key for key in order if key not in self._sources]
        for key in missing:
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
            slot = self._slot_of[key]
            if slot != rank:
                out[rank] = out[slot]
        if len(good) < len(out):
            # Unused room at the end: keep it (untouched pages cost nothing) unless most of the
            # batch is empty, where a copy of the good part gives the memory back.
            out = out[: len(good)]
            if 2 * len(good) <= self._capacity:
                out = out.copy()
        return torch.from_numpy(out), skipped

    # -- inside -----------------------------------------------------------------------------------

    def _add(
        self,
        key: Key,
        source: ImageSource,
        slot: int | None,
        label: str,
        decoded: Image.Image | None,
        prefault: bool,
    ) -> None:
        header = (
            _decoded_header(decoded, label)
            if decoded is not None
            else _open_header(source, label, self._max_pixels)
        )
        try:
            with self._lock:
                target = self._claim(key, slot, header.size)
            if target is None:
                return
            _fill(header, target, prefault=prefault)
            with self._lock:
                self._written[key] = header.size
        finally:
            if decoded is None:
                header.image.close()

    def _claim(self, key: Key, slot: int | None, size: tuple[int, int]) -> np.ndarray | None:
        """The slot's array (allocating the batch on first use), or None: no slot, keep the
        source for the second pass. Called with the lock held."""
        if self._guessed:  # the first image: is the reserved batch the right size?
            self._guessed = False
            if self._size != size:
                self._prefaulting = False
                while self._touching is not None:
                    self._lock.wait()
                self._out = self._size = None
        if self._out is None:
            self._allocate(self._size or size)
        assert self._out is not None
        if slot is None or not 0 <= slot < self._capacity or slot in self._taken:
            self._unplaced.add(key)
            return None
        self._taken.add(slot)
        while self._touching == slot:  # its zeros must land before the pixels do
            self._lock.wait()
        self._slot_of[key] = slot
        return self._out[slot]

    def _allocate(self, size: tuple[int, int]) -> None:
        import numpy as np

        width, height = size
        if width * height * self._capacity > self._max_batch_pixels:
            raise _batch_too_large(self._capacity, (width, height), self._max_batch_pixels)
        # NumPy's allocator asks for huge pages on big arrays, torch.empty does not: fewer
        # page faults. torch.from_numpy shares the memory, as ComfyUI's own Load Image does.
        self._out = np.empty((self._capacity, height, width, 3), dtype=np.float32)
        self._size = (width, height)

    def _fail(self, key: Key, exc: errors.GrokError) -> None:
        with self._lock:
            self._failed[key] = exc
            self._written.pop(key, None)
            self._unplaced.discard(key)

    def _fits(self, good: Sequence[Key]) -> bool:
        """Is every good image in its slot, slots rising in order, at the first image's size?"""
        if any(key in self._unplaced for key in good):
            return False
        if self._written[good[0]] != self._size:
            return False
        slots = [self._slot_of[key] for key in good]
        return all(a < b for a, b in itertools.pairwise(slots))

    def _second_pass(
        self, order: Sequence[Key]
    ) -> tuple[torch.Tensor, list[tuple[Key, errors.GrokError]]]:
        """Decode every image again, from its source, into a batch laid out for ``order``."""
        self._out = None  # the first attempt's memory goes before the second's is taken
        first = next(key for key in order if key in self._written or key in self._unplaced)
        known = [key for key in order if key in self._sources and key not in self._failed]
        size = self._written.get(first)
        again = ImageBatch(
            len(known),
            size=size,
            max_pixels=self._max_pixels,
            max_batch_pixels=self._max_batch_pixels,
        )
        for slot, key in enumerate(known):
            source, label = self._sources[key]
            again.add(key, source, slot=slot, label=label)
        images, skipped = again.finish(known)
        earlier = [(key, self._failed[key]) for key in order if key in self._failed]
        return images, sorted(earlier + skipped, key=lambda item: list(order).index(item[0]))


def _batch_too_large(count: int, size: tuple[int, int], limit: int) -> errors.TooLargeError:
    width, height = size
    return errors.TooLargeError(
        f"{count} images of {width}x{height} make {width * height * count / 1e6:.0f} "
        f"megapixels, over the {limit / 1e6:.0f} megapixel limit for one IMAGE batch"
    )


# -- reading headers -------------------------------------------------------------------------------


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
        check_pixel_count(*image.size, max_pixels, label)
        return _header(image, label)
    except BaseException:
        image.close()
        raise


def _decoded_header(image: Image.Image, label: str) -> _Header:
    """The header of an image someone else already decoded (the journal's check of a file)."""
    return _header(image, label)


def _header(image: Image.Image, label: str) -> _Header:
    width, height = image.size
    orientation = _orientation(image)
    if orientation in _ROTATING_ORIENTATIONS:
        width, height = height, width
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


def _fill(header: _Header, out: np.ndarray, *, prefault: bool = False) -> None:
    """Decode ``header``'s image into ``out`` ([H, W, 3] float32), fitted, scaled to 0..1."""
    height, width = out.shape[:2]
    touched: threading.Thread | None = None
    if _decodes_in_place(header, (width, height)):
        tail = _tail(out, _IN_PLACE_BYTES[header.image.mode])
        if prefault:
            # Fault the slot's front pages in on a worker while this thread decodes into its
            # tail (the two parts do not overlap, so the zeros never land on pixels).
            # (A thread of its own, not the pool: a pool worker waiting here on the pool could
            # wait forever.)
            front = out.reshape(-1)[: (out.nbytes - tail.size) // 4]
            touched = threading.Thread(target=_touch_pages, args=(front,), daemon=True)
            touched.start()
        _map_into(header.image, tail)
    intermediate: list[Image.Image] = []
    try:
        image = _decode(header, intermediate)
        if touched is not None:
            touched.join()
        _write(header, image, out)
    finally:
        if touched is not None:
            touched.join()
        for extra in intermediate:
            extra.close()


def _decodes_in_place(header: _Header, size: tuple[int, int]) -> bool:
    image = header.image
    return (
        header.orientation == 1
        and image.size == size
        and image.mode in _IN_PLACE_BYTES
        and image.format in _IN_PLACE_FORMATS
        and not getattr(image, "is_animated", False)
        and getattr(image, "_im", None) is None  # not decoded yet
    )


def _tail(out: np.ndarray, pixel_bytes: int) -> np.ndarray:
    """The last ``pixel_bytes`` of every 12 the slot has per pixel, as flat bytes.

    Widening the 8-bit pixels to float32 front to back never overwrites a pixel not yet read:
    after ``r`` rows the floats end at ``12 W r`` bytes, the unread pixels start at
    ``(12 - p) W H + p W r``, and ``12 W r <= (12 - p) W H + p W r`` for every ``r <= H``.
    """
    import numpy as np

    flat = out.reshape(-1).view(np.uint8)
    return flat[flat.size - flat.size // 12 * pixel_bytes :]


def _map_into(image: Image.Image, memory: np.ndarray) -> None:
    """Let Pillow decode ``image`` into ``memory`` instead of memory of its own.

    ``ImageFile.load`` keeps an image core that is already there; if a Pillow version does not,
    the image simply decodes into its own memory and ``_write`` reads it from there.
    """
    from PIL import Image

    try:
        image.im = Image.core.map_buffer(memory, image.size, "raw", 0, (image.mode, 0, 1))
    except Exception:  # an older Pillow without this path: decode as usual
        pass


def _decode(header: _Header, intermediate: list[Image.Image]) -> Image.Image:
    """The pixels, oriented, in a mode ``_write`` knows. New images go on ``intermediate``."""
    from PIL import Image

    try:
        image = header.image
        image.load()
        method = _TRANSPOSE.get(header.orientation)
        if method is not None:
            image = image.transpose(Image.Transpose[method])
            intermediate.append(image)
        friendly = _array_friendly(image)
        if friendly is not image:
            intermediate.append(friendly)
        return friendly
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

    Rows go through a small, cache-sized band at a time: a whole-image ``np.asarray`` would be
    a full-size copy (and its page faults); a band stays in cache for the scaling.
    """
    from PIL import Image, ImageOps

    height, width = out.shape[:2]
    try:
        if image.size != (width, height):
            fitted = ImageOps.fit(
                image, (width, height), method=Image.Resampling.BILINEAR, centering=(0.5, 0.5)
            )
            try:
                _write_fitted(fitted, out)
            finally:
                fitted.close()
            return
    except (OSError, ValueError) as exc:
        raise errors.NotAnImageError(
            f"{header.label} could not be resized to {width}x{height}: {_first_line(exc)}"
        ) from exc
    _write_fitted(image, out)


def _write_fitted(image: Image.Image, out: np.ndarray) -> None:
    import numpy as np

    height, width = out.shape[:2]
    mode = image.mode
    scale = np.float32(1 / 65535 if mode in _SIXTEEN_BIT_MODES else 1 / 255)
    rows = max(1, _BAND_BYTES // (width * 4))
    if mode in _PACKED_MODES:
        grey = mode == "L"
        for top, band in _packed_bands(image, _PACKED_MODES[mode], rows):
            target = out[top : top + band.shape[0]]
            # A casting copy, then a multiply while the band is still in cache: faster than
            # one mixed-type np.multiply, which casts through a small buffer.
            target[...] = band[..., np.newaxis] if grey else band
            target *= scale
        return
    grey = mode in _GREY_MODES
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        band = np.asarray(image.crop((0, top, width, bottom)))
        band = band[..., np.newaxis] if grey else band[..., :3]
        target = out[top:bottom]
        if mode == "F":
            np.clip(band, 0.0, 1.0, out=target)
            continue
        target[...] = band
        target *= scale
        if mode == "I":  # 32-bit samples may lie outside 16 bits
            np.clip(target, 0.0, 1.0, out=target)


def _packed_bands(image: Image.Image, raw_mode: str, rows: int):
    """``(top row, uint8 [rows, W(, 3)])`` bands of ``image``, packed by Pillow's raw encoder
    straight from the image's memory (a crop would copy each band once more)."""
    import numpy as np
    from PIL import Image

    width, height = image.size
    channels = 3 if raw_mode == "RGB" else 1
    shape = (width, channels) if channels == 3 else (width,)
    encoder = Image._getencoder(image.mode, "raw", raw_mode)
    try:
        encoder.setimage(image.im, (0, 0, width, height))
        top = 0
        while top < height:
            _, status, data = encoder.encode(rows * width * channels)
            if status < 0:
                raise OSError(f"Pillow's raw encoder failed ({status})")
            band = np.frombuffer(data, np.uint8).reshape(-1, *shape)
            yield top, band
            top += band.shape[0]
            if status:
                break
    finally:
        encoder.cleanup()


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


def decode_pool() -> ThreadPoolExecutor:
    """One small pool for the process, made on first use (importing starts no threads).

    Its jobs must never wait on the pool themselves."""
    global _executor
    with _pool_lock:
        if _executor is None:
            # At least two, so one image's decode overlaps another's conversion whenever a
            # second core is free (Pillow and NumPy release the GIL while they work).
            _executor = ThreadPoolExecutor(_workers(), thread_name_prefix="grok-imagine-decode")
        return _executor


def _workers() -> int:
    return min(_MAX_WORKERS, max(2, os.cpu_count() or 1))


def _label(source: Any, position: int, count: int) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"image file {Path(source).name}"
    return f"image {position + 1} of {count}" if count > 1 else "the image"


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__
