"""Photo-like test images, made the same way every run.

Flat synthetic pictures decode far faster than photographs (JPEG and PNG both shortcut uniform
areas), so these mix a smooth colour field with edges and grain, as a generated image has.
"""

from __future__ import annotations

import io


def photo_like(width: int, height: int, seed: int, grain: float = 6.0):
    """An RGB ``PIL.Image`` with low-frequency colour, some hard edges and sensor-like grain."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    field = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    image = Image.fromarray(field, "RGB").resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(20, width // 3)), y0 + int(rng.integers(20, height // 3))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), outline=colour, width=int(rng.integers(1, 8)))
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    pixels = np.asarray(image).astype(np.float32)
    pixels += rng.normal(0.0, grain, size=pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def jpeg_set(
    count: int = 6, size: tuple[int, int] = (1024, 1024), quality: int = 90
) -> list[bytes]:
    """A text-to-image task's result set: ``count`` JPEGs near 1 megapixel."""
    out = []
    for seed in range(count):
        buffer = io.BytesIO()
        photo_like(*size, seed=seed).save(buffer, "JPEG", quality=quality)
        out.append(buffer.getvalue())
    return out


def png_upscale(size: tuple[int, int] = (2048, 2048)) -> bytes:
    """An upscale result: a 1 MP picture enlarged 2x, with a little fresh grain, as PNG."""
    import numpy as np
    from PIL import Image

    base = photo_like(size[0] // 2, size[1] // 2, seed=99)
    large = base.resize(size, Image.Resampling.LANCZOS)
    rng = np.random.default_rng(7)
    pixels = np.asarray(large).astype(np.float32)
    pixels += rng.normal(0.0, 2.0, size=pixels.shape).astype(np.float32)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(buffer, "PNG")
    return buffer.getvalue()
