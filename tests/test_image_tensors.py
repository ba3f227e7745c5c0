"""Bytes -> IMAGE tensor: shape, dtype, range, every colour mode, EXIF orientation, mixed sizes,
decompression bombs and bytes that are not images."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps
from support import submodule

tensors = submodule("nodes.image_tensors")
errors = submodule("api.errors")


def to_tensor(sources, **limits) -> torch.Tensor:
    """The sources through the one conversion, as the node and the benchmark use it (each image
    on the decode pool, into its slot); strict: the first image left out raises its error."""
    batch = tensors.ImageBatch(len(sources), **limits)
    for index, source in enumerate(sources):
        batch.submit(index, source, slot=index, label=tensors._label(source, index, len(sources)))
    images, skipped = batch.finish(list(range(len(sources))))
    if skipped:
        raise skipped[0][1]
    return images


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def quadrants(width: int = 64, height: int = 40) -> np.ndarray:
    """An asymmetric picture (four flat colours) so any flip or rotation shows."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[: height // 2, : width // 2] = (255, 0, 0)
    pixels[: height // 2, width // 2 :] = (0, 255, 0)
    pixels[height // 2 :, : width // 2] = (0, 0, 255)
    pixels[height // 2 :, width // 2 :] = (255, 255, 0)
    return pixels


def assert_image_tensor(tensor: torch.Tensor, batch: int, height: int, width: int) -> None:
    assert isinstance(tensor, torch.Tensor)
    assert tensor.dtype == torch.float32
    assert tuple(tensor.shape) == (batch, height, width, 3)
    assert tensor.is_contiguous()
    assert tensor.device.type == "cpu"
    assert float(tensor.min()) >= 0.0
    assert float(tensor.max()) <= 1.0


# -- the basic contract ------------------------------------------------------------------------


def test_rgb_png_is_exact():
    pixels = quadrants()
    out = to_tensor([encode(Image.fromarray(pixels))])
    assert_image_tensor(out, 1, 40, 64)
    np.testing.assert_allclose(out[0].numpy(), pixels / 255.0, atol=1e-6)


def test_jpeg_batch_matches_pillow_decode():
    sources = [encode(Image.fromarray(quadrants(96, 64)), "JPEG", quality=90) for _ in range(6)]
    out = to_tensor(sources)
    assert_image_tensor(out, 6, 64, 96)
    reference = np.asarray(Image.open(io.BytesIO(sources[0])).convert("RGB")) / 255.0
    for index in range(6):
        np.testing.assert_allclose(out[index].numpy(), reference, atol=1e-6)


def test_paths_and_bytes_give_the_same_tensor(tmp_path):
    data = encode(Image.fromarray(quadrants()))
    path = tmp_path / "0.png"
    path.write_bytes(data)
    from_bytes = to_tensor([data])
    from_path = to_tensor([path])
    from_str = to_tensor([str(path)])
    assert torch.equal(from_bytes, from_path)
    assert torch.equal(from_bytes, from_str)


def test_tensor_is_writable_and_owned():
    out = to_tensor([encode(Image.fromarray(quadrants()))] * 2)
    out[0].zero_()  # ComfyUI nodes modify IMAGE tensors in place; this must be safe
    assert float(out[1].max()) > 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(1, 24),
    st.integers(1, 24),
    st.integers(1, 3),
    st.randoms(use_true_random=False),
)
def test_any_rgb_picture_round_trips_through_png(width, height, count, rnd):
    arrays = [
        np.frombuffer(rnd.randbytes(width * height * 3), np.uint8).reshape(height, width, 3)
        for _ in range(count)
    ]
    out = to_tensor([encode(Image.fromarray(a)) for a in arrays])
    assert_image_tensor(out, count, height, width)
    for index, array in enumerate(arrays):
        np.testing.assert_allclose(out[index].numpy(), array / 255.0, atol=1e-6)


def test_wide_image_spans_many_row_bands():
    """More rows than one conversion band holds: every band lands in the right place."""
    height, width = 700, 300
    pixels = (np.arange(height * width * 3, dtype=np.uint32) % 251).astype(np.uint8)
    pixels = pixels.reshape(height, width, 3)
    out = to_tensor([encode(Image.fromarray(pixels))])
    np.testing.assert_allclose(out[0].numpy(), pixels / 255.0, atol=1e-6)


# -- colour modes --------------------------------------------------------------------------------


def rgb_reference(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), np.float32) / 255.0


def test_rgba_drops_alpha_and_keeps_colour():
    pixels = np.zeros((8, 8, 4), np.uint8)
    pixels[..., 0] = 200
    pixels[..., 1] = 100
    pixels[..., 2] = 50
    pixels[..., 3] = np.arange(8, dtype=np.uint8)[None, :] * 30  # from transparent to opaque
    out = to_tensor([encode(Image.fromarray(pixels))])
    assert_image_tensor(out, 1, 8, 8)
    np.testing.assert_allclose(out[0].numpy(), pixels[..., :3] / 255.0, atol=1e-6)


def test_grey_l_is_repeated_on_three_channels():
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = to_tensor([encode(Image.fromarray(grey))])
    for channel in range(3):
        np.testing.assert_allclose(out[0, ..., channel].numpy(), grey / 255.0, atol=1e-6)


def test_la_keeps_grey_drops_alpha():
    image = Image.merge(
        "LA", [Image.new("L", (4, 4), 77), Image.new("L", (4, 4), 0)]
    )  # fully transparent grey
    out = to_tensor([encode(image)])
    np.testing.assert_allclose(out[0].numpy(), np.full((4, 4, 3), 77 / 255.0), atol=1e-6)


def test_palette_with_and_without_transparency():
    rgb = Image.fromarray(quadrants())
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    out = to_tensor([encode(palette)])
    np.testing.assert_allclose(out[0].numpy(), rgb_reference(palette), atol=1e-6)

    palette.info["transparency"] = 0
    out = to_tensor([encode(palette, transparency=0)])
    np.testing.assert_allclose(out[0].numpy(), rgb_reference(palette), atol=1e-6)


def test_one_bit_is_black_and_white():
    bits = Image.new("1", (10, 6), 0)
    bits.paste(1, (0, 0, 5, 6))
    out = to_tensor([encode(bits)])
    assert float(out[0, :, :5].min()) == 1.0
    assert float(out[0, :, 5:].max()) == 0.0


def test_sixteen_bit_png_uses_the_full_range():
    samples = np.array([[0, 256, 32768, 65535]], np.uint16)
    image = Image.fromarray(samples)
    data = encode(image)
    opened = Image.open(io.BytesIO(data))
    assert opened.mode in ("I", "I;16")  # how Pillow opens 16-bit grey
    out = to_tensor([data])
    expected = samples / 65535.0
    for channel in range(3):
        np.testing.assert_allclose(out[0, ..., channel].numpy(), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("mode", "order"), [("I;16", "<u2"), ("I;16L", "<u2"), ("I;16B", ">u2"), ("I;16N", "=u2")]
)
def test_every_sixteen_bit_byte_order_is_read_as_its_samples(mode, order):
    samples = np.array([[0, 256, 32768, 65535], [1, 2, 3, 4]], np.uint16)
    image = Image.frombytes(mode, (4, 2), samples.astype(order).tobytes())
    batch = tensors.ImageBatch(1)
    batch.add(0, b"never read", slot=0, decoded=image)
    out, skipped = batch.finish([0])
    assert skipped == []
    for channel in range(3):
        np.testing.assert_allclose(out[0, ..., channel].numpy(), samples / 65535.0, atol=1e-6)


def test_thirty_two_bit_int_is_clipped_to_sixteen_bits():
    samples = np.array([[-5, 0, 65535, 1_000_000]], np.int32)
    out = to_tensor([encode(Image.fromarray(samples), "TIFF")])
    np.testing.assert_allclose(out[0, 0, :, 0].numpy(), [0.0, 0.0, 1.0, 1.0], atol=1e-6)


def test_float_image_is_taken_as_zero_to_one_and_clipped():
    samples = np.array([[-0.5, 0.25, 0.5, 2.0]], np.float32)
    out = to_tensor([encode(Image.fromarray(samples), "TIFF")])
    np.testing.assert_allclose(out[0, 0, :, 1].numpy(), [0.0, 0.25, 0.5, 1.0], atol=1e-6)


def test_cmyk_jpeg_is_converted_like_pillow():
    cmyk = Image.fromarray(quadrants()).convert("CMYK")
    data = encode(cmyk, "JPEG", quality=95)
    out = to_tensor([data])
    assert_image_tensor(out, 1, 40, 64)
    reference = rgb_reference(Image.open(io.BytesIO(data)))
    np.testing.assert_allclose(out[0].numpy(), reference, atol=1e-6)
    # and it is still roughly the picture that went in
    assert abs(float(out[0, 5, 5, 0]) - 1.0) < 0.1
    assert float(out[0, 5, 5, 2]) < 0.1


def test_ycbcr_and_lab_go_through_pillow_conversion():
    ycbcr = Image.fromarray(quadrants()).convert("YCbCr")
    out = to_tensor([encode(ycbcr, "JPEG", quality=95)])
    assert_image_tensor(out, 1, 40, 64)


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (6, 6), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    out = to_tensor([buffer.getvalue()])
    assert_image_tensor(out, 1, 6, 6)
    assert float(out[0, 0, 0, 0]) > 0.9
    assert float(out[0, 0, 0, 2]) < 0.1


def test_webp_with_alpha():
    image = Image.fromarray(quadrants()).convert("RGBA")
    out = to_tensor([encode(image, "WEBP", lossless=True)])
    np.testing.assert_allclose(out[0].numpy(), quadrants() / 255.0, atol=1e-6)


# -- EXIF orientation ---------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation_is_applied(orientation, fmt):
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = Image.fromarray(quadrants(64, 40))
    options = {"quality": 95} if fmt == "JPEG" else {}
    data = encode(stored, fmt, exif=exif.tobytes(), **options)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))), np.float32)
    out = to_tensor([data])
    height, width = expected.shape[:2]
    if orientation >= 5:
        assert (width, height) == (40, 64)
    assert_image_tensor(out, 1, height, width)
    np.testing.assert_allclose(out[0].numpy(), expected / 255.0, atol=1e-6)


def test_damaged_exif_does_not_cost_the_image():
    stored = Image.fromarray(quadrants())
    data = encode(stored, "JPEG", exif=b"Exif\x00\x00" + b"\x00garbage" * 4)
    out = to_tensor([data])
    assert_image_tensor(out, 1, 40, 64)


# -- mixed sizes ---------------------------------------------------------------------------------


def test_mixed_sizes_follow_the_first_image_with_a_centre_crop():
    first = Image.new("RGB", (40, 40), (10, 20, 30))
    # 80x40: red outer quarters, green middle half; centre-cropped to 1:1 only green remains
    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, :20] = (255, 0, 0)
    wide[:, 60:] = (255, 0, 0)
    wide[:, 20:60] = (0, 255, 0)
    small_grey = Image.new("L", (10, 10), 128)
    out = to_tensor([encode(first), encode(Image.fromarray(wide)), encode(small_grey)])
    assert_image_tensor(out, 3, 40, 40)
    np.testing.assert_allclose(out[1, 2:-2, 2:-2].numpy(), np.tile([0.0, 1.0, 0.0], (36, 36, 1)))
    np.testing.assert_allclose(out[2].numpy(), np.full((40, 40, 3), 128 / 255.0), atol=1e-6)


def test_mixed_sizes_with_rotation_use_the_rotated_size_of_the_first():
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 64x40, shown 40x64
    first = encode(Image.fromarray(quadrants(64, 40)), "JPEG", exif=exif.tobytes())
    second = encode(Image.new("RGB", (40, 64), (0, 0, 255)), "PNG")
    out = to_tensor([first, second])
    assert_image_tensor(out, 2, 64, 40)
    np.testing.assert_allclose(out[1].numpy(), np.tile([0.0, 0.0, 1.0], (64, 40, 1)))


def test_sixteen_bit_image_is_resized_in_a_mixed_batch():
    first = encode(Image.new("RGB", (8, 8), (0, 0, 0)))
    grey16 = encode(Image.fromarray(np.full((4, 4), 65535, np.uint16)))
    out = to_tensor([first, grey16])
    assert_image_tensor(out, 2, 8, 8)
    np.testing.assert_allclose(out[1].numpy(), np.ones((8, 8, 3)), atol=1e-4)


# -- limits and bad bytes ------------------------------------------------------------------------


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims to be huge but carries almost no data: a decompression bomb's header."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    ("width", "height"),
    [
        (9000, 8000),  # 72 MP: under Pillow's own limits, over ours
        (10000, 10000),  # 100 MP: Pillow warns
        (50000, 50000),  # 2.5 GP: Pillow refuses at open
    ],
)
def test_bombs_are_refused_before_decoding(width, height):
    with pytest.raises(errors.TooLargeError) as caught:
        to_tensor([png_header(width, height)])
    message = str(caught.value)
    assert "\n" not in message
    assert "too large" in message or "limit" in message


def test_pixel_limit_is_configurable():
    data = encode(Image.new("RGB", (20, 20)))
    with pytest.raises(errors.TooLargeError, match="limit"):
        to_tensor([data], max_pixels=399)
    assert to_tensor([data], max_pixels=400).shape == (1, 20, 20, 3)


def test_batch_limit_counts_every_image_at_the_batch_size():
    data = encode(Image.new("RGB", (20, 20)))
    with pytest.raises(errors.TooLargeError, match="batch"):
        to_tensor([data] * 3, max_batch_pixels=1199)
    assert to_tensor([data] * 3, max_batch_pixels=1200).shape[0] == 3


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", b"<html><body>502 Bad Gateway</body></html>", b"\x00" * 100],
)
def test_bytes_that_are_not_an_image(data):
    with pytest.raises(errors.NotAnImageError) as caught:
        to_tensor([data])
    assert "\n" not in str(caught.value)


def test_truncated_jpeg_is_a_clear_error_and_names_the_image():
    good = encode(Image.fromarray(quadrants(256, 256)), "JPEG")
    with pytest.raises(errors.NotAnImageError, match="image 2 of 2"):
        to_tensor([good, good[: len(good) // 2]])


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(errors.NotAnImageError, match=r"missing\.png"):
        to_tensor([tmp_path / "missing.png"])


def test_no_images_is_an_error_not_an_empty_tensor():
    with pytest.raises(errors.NotAnImageError):
        to_tensor([])


def test_a_batch_that_does_not_fit_in_memory_is_a_grok_error(monkeypatch):
    def no_memory(self, size):
        raise MemoryError

    monkeypatch.setattr(tensors.ImageBatch, "_allocate", no_memory)
    blobs = [encode(Image.fromarray(quadrants()))] * 2
    with pytest.raises(errors.NotAnImageError, match="image 1 of 2 could not be read"):
        to_tensor(blobs)


def test_errors_are_grok_errors():
    assert issubclass(errors.NotAnImageError, errors.GrokError)
    assert issubclass(errors.TooLargeError, errors.GrokError)


# -- a batch filled as its images arrive -----------------------------------------------------------


def distinct_images(count: int, width: int = 48, height: int = 32, fmt: str = "PNG") -> list[bytes]:
    rng = np.random.default_rng(count)
    return [
        encode(Image.fromarray(rng.integers(0, 256, (height, width, 3), np.uint8)), fmt)
        for _ in range(count)
    ]


def test_images_arriving_in_any_order_from_threads_land_in_result_order():
    import random
    from concurrent.futures import ThreadPoolExecutor

    sources = distinct_images(12)
    batch = tensors.ImageBatch(12)
    arrival = list(range(12))
    random.Random(5).shuffle(arrival)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: batch.add(i, sources[i], slot=i), arrival))
    images, skipped = batch.finish(list(range(12)))
    assert skipped == []
    assert torch.equal(images, to_tensor(sources))


def test_first_image_in_order_sets_the_size_even_when_it_arrives_last():
    first = encode(Image.fromarray(quadrants(40, 40)))
    others = distinct_images(3, 80, 40)
    batch = tensors.ImageBatch(4)
    for slot, data in enumerate(others, start=1):
        batch.add(slot, data, slot=slot)
    batch.add(0, first, slot=0)
    images, skipped = batch.finish([0, 1, 2, 3])
    assert skipped == []
    assert torch.equal(images, to_tensor([first, *others]))


def test_a_bad_image_is_left_out_named_and_the_others_returned():
    good = distinct_images(3, fmt="JPEG")
    truncated = good[1][: len(good[1]) // 3]
    batch = tensors.ImageBatch(4)
    for slot, data in enumerate([good[0], truncated, good[1], good[2]]):
        batch.add(slot, data, slot=slot, label=f"image {slot + 1} of task abc")
    images, skipped = batch.finish([0, 1, 2, 3])
    assert torch.equal(images, to_tensor(good))
    assert [key for key, _ in skipped] == [1]
    assert isinstance(skipped[0][1], errors.NotAnImageError)
    assert "image 2 of task abc" in str(skipped[0][1])


def test_when_every_image_is_bad_the_first_error_is_raised():
    batch = tensors.ImageBatch(2)
    batch.add(0, b"not an image", slot=0, label="image 1 of 2")
    batch.add(1, b"\x89PNG\r\n\x1a\n broken", slot=1, label="image 2 of 2")
    with pytest.raises(errors.NotAnImageError, match="image 1 of 2"):
        batch.finish([0, 1])


def test_gaps_are_closed_and_images_beyond_the_slots_still_land():
    sources = distinct_images(5)
    batch = tensors.ImageBatch(6)
    batch.add("a", sources[0], slot=0)
    batch.add("b", sources[1], slot=2)  # slots 1, 3 and 4 never come (lost files, a failed task)
    batch.add("c", sources[2], slot=5)
    images, _ = batch.finish(["a", "b", "c"])
    assert torch.equal(images, to_tensor(sources[:3]))

    crowded = tensors.ImageBatch(2)
    for key, data in enumerate(sources):
        crowded.add(key, data, slot=key)  # slots 2..4 do not exist: kept for a second pass
    images, skipped = crowded.finish(list(range(5)))
    assert skipped == []
    assert torch.equal(images, to_tensor(sources))


def test_an_image_added_after_finish_never_touches_the_returned_batch():
    sources = distinct_images(2)
    batch = tensors.ImageBatch(2)
    batch.add(0, sources[0], slot=0)
    images, _ = batch.finish([0])
    before = images.clone()
    batch.add(1, sources[1], slot=1)
    batch.add(0, sources[1], slot=0)
    assert torch.equal(images, before)


def test_an_image_already_decoded_is_not_decoded_again_and_stays_the_callers():
    data = encode(Image.fromarray(quadrants()), "JPEG")
    decoded = Image.open(io.BytesIO(data))
    decoded.load()
    batch = tensors.ImageBatch(1)
    batch.add(0, b"these bytes are never read", slot=0, decoded=decoded)
    images, skipped = batch.finish([0])
    assert skipped == []
    assert torch.equal(images, to_tensor([data]))
    assert decoded.getpixel((0, 0))  # still open: the caller closes it


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(1, 37),
    st.integers(1, 37),
    st.sampled_from(["RGB", "RGBA", "L"]),
    st.sampled_from(["PNG", "JPEG"]),
    st.randoms(use_true_random=False),
)
def test_decoding_in_place_matches_pillow_for_any_size(width, height, mode, fmt, rnd):
    """Plain JPEG/PNG decode into the tail of their own slot: every size, every such mode."""
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    raw = np.frombuffer(rnd.randbytes(width * height * channels), np.uint8)
    image = Image.fromarray(
        raw.reshape(height, width, channels).squeeze(-1)
        if channels == 1
        else raw.reshape(height, width, channels),
        mode,
    )
    if fmt == "JPEG" and mode == "RGBA":
        image = image.convert("RGB")
    data = encode(image, fmt)
    out = to_tensor([data, data])  # two, side by side on the pool
    reference = rgb_reference(Image.open(io.BytesIO(data)))
    for index in range(2):
        np.testing.assert_allclose(out[index].numpy(), reference, atol=1e-6)
    single = to_tensor([data])  # one, alone in its batch
    np.testing.assert_allclose(single[0].numpy(), reference, atol=1e-6)


def test_the_first_arrival_sets_the_batch_size_and_a_wrong_one_costs_one_second_pass(
    monkeypatch,
):
    """The batch is allocated at the size of the first image to arrive: right when it shares the
    first image's size (no second decode), corrected once by a second pass when it does not."""
    same = distinct_images(6, 48, 32)
    mixed = [*same[:5], distinct_images(1, 40, 40)[0]]
    second_pass = tensors.ImageBatch._second_pass
    passes: list[int] = []

    def counted(self, order):
        passes.append(len(order))
        return second_pass(self, order)

    for sources, expected_passes in ((same, 0), (mixed, 1)):
        reference = to_tensor(sources)
        assert tuple(reference.shape) == (6, 32, 48, 3)
        monkeypatch.setattr(tensors.ImageBatch, "_second_pass", counted)
        passes.clear()
        batch = tensors.ImageBatch(6)
        for slot in (5, 0, 1, 2, 3, 4):  # the last image arrives first
            batch.add(slot, sources[slot], slot=slot)
        images, skipped = batch.finish(list(range(6)))
        monkeypatch.undo()
        assert skipped == []
        assert torch.equal(images, reference)
        assert len(passes) == expected_passes


def test_images_decoded_side_by_side_never_touch_each_others_pixels():
    """Each image is decoded inside its own slot while others decode into theirs, from several
    threads in any order: no write may land outside its slot."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    sources = [encode(Image.new("RGB", (512, 256), (255, 255, 255)), "PNG")] * 24
    for attempt in range(5):
        batch = tensors.ImageBatch(24)
        order = list(range(24))
        random.Random(attempt).shuffle(order)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i, b=batch: b.add(i, sources[i], slot=i), order))
        images, _ = batch.finish(list(range(24)))
        assert float(images.min()) == 1.0
