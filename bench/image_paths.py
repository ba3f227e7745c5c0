"""The bytes -> IMAGE paths the image benchmark compares: ours, the references, naive and peers.

Each takes a list of encoded images and returns the batch (or None for the references that make
no tensor). The peer-style paths are written after the patterns two peers use, not their code.
"""

from __future__ import annotations

import io
from collections.abc import Callable


def floor_decode(blobs: list[bytes]) -> None:
    """Bare single-threaded Pillow decode, no tensor: what any path must at least do."""
    from PIL import Image

    for blob in blobs:
        image = Image.open(io.BytesIO(blob))
        if image.mode == "RGB":
            image.load()
        else:
            image.convert("RGB")


def decode_and_write_once(blobs: list[bytes]):
    """Reference: single-threaded decode, then one float32 write into a batch allocated once;
    the plain way, with nothing wasted."""
    import numpy as np
    import torch
    from PIL import Image

    images = [Image.open(io.BytesIO(blob)) for blob in blobs]
    width, height = images[0].size
    out = np.empty((len(images), height, width, 3), dtype=np.float32)
    for image, target in zip(images, out, strict=True):
        image = image.convert("RGB") if image.mode != "RGB" else image
        image.load()
        np.multiply(np.asarray(image), np.float32(1 / 255), out=target, casting="unsafe")
    return torch.from_numpy(out)


def first_touch(blobs: list[bytes]) -> None:
    """Reference: allocate a batch of the output's size as ours does (torch) and touch each page
    once, no pixels."""
    import torch
    from PIL import Image

    width, height = Image.open(io.BytesIO(blobs[0])).size
    out = torch.empty((len(blobs), height, width, 3), dtype=torch.float32).numpy()
    out.reshape(-1)[:: 4096 // out.itemsize] = 0


def naive_tensor(blobs: list[bytes]):
    """The common ``np.array(img).astype(np.float32) / 255`` per image, then ``torch.cat``."""
    import numpy as np
    import torch
    from PIL import Image

    tensors = []
    for blob in blobs:
        image = Image.open(io.BytesIO(blob)).convert("RGB")
        array = np.array(image).astype(np.float32) / 255.0
        tensors.append(torch.from_numpy(array)[None,])
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=0)


def comfy_api_style(blobs: list[bytes]):
    """ComfyUI's API nodes' pattern: RGBA, a float32 copy per image, then one torch.cat."""
    import numpy as np
    import torch
    from PIL import Image

    tensors = []
    for blob in blobs:
        pixels = np.array(Image.open(io.BytesIO(blob)).convert("RGBA")).astype(np.float32)
        tensors.append(torch.from_numpy(pixels / 255.0).unsqueeze(0))
    return torch.cat(tensors, dim=0)


def kie_style(blobs: list[bytes]):
    """A kie.ai pack's pattern: RGB bytes, a uint8 tensor copy, a float copy, then torch.cat."""
    import torch
    from PIL import Image

    tensors = []
    for blob in blobs:
        with Image.open(io.BytesIO(blob)) as image:
            rgb = image.convert("RGB")
            raw = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).clone()
            tensors.append((raw.view(rgb.height, rgb.width, 3).float() / 255.0).unsqueeze(0))
    return torch.cat(tensors, dim=0)


def ours_tensor(blobs: list[bytes]):
    """The node's conversion (``nodes/result_images.py``): one ``ImageBatch``, each file handed
    to the decode pool for its slot, then ``finish``."""
    from pack import submodule

    batch = submodule("nodes.image_tensors").ImageBatch(len(blobs))
    for index, blob in enumerate(blobs):
        batch.submit(index, blob, slot=index)
    images, skipped = batch.finish(range(len(blobs)))
    assert not skipped, skipped
    return images


PATHS: dict[str, Callable[[list[bytes]], object]] = {
    "floor": floor_decode,
    "naive": naive_tensor,
    "comfy API nodes style": comfy_api_style,
    "kie.ai style": kie_style,
    "ours": ours_tensor,
    "decode+write": decode_and_write_once,
    "touch": first_touch,
}
"""The contenders (floor, naive, two peer styles, ours) and two references."""
PEERS = ("naive", "comfy API nodes style", "kie.ai style")
LABELS = {
    "floor": "floor: bare PIL decode",
    "naive": "naive",
    "comfy API nodes style": "ComfyUI API nodes style",
    "kie.ai style": "kie.ai style",
    "ours": "ours",
    "decode+write": "ref: decode + one float32 write, 1 thread",
    "touch": "ref: first touch of the batch",
}

CASES = {
    "jpeg1": ("1 JPEG 1024x1024", 1, 28, 7),
    "jpeg6": ("6 JPEGs 1024x1024", 6, 21, 7),
    "jpeg24": ("24 JPEGs 1024x1024", 24, 14, 2),
    "jpeg48": ("48 JPEGs 1024x1024", 48, 7, 2),
    "png2k": ("PNG 2048x2048", 1, 14, 2),
}
"""The benchmark's inputs: key -> (label, images, reps, reps in a --quick run). The paths take
turns in rotating order, so a full run's reps are a multiple of the 7 paths: each path runs as
often first, second, ... in a rep (right after another path freed its memory, or not)."""
MEMORY_PATHS = ("naive", "comfy API nodes style", "kie.ai style", "decode+write", "ours")
"""The paths whose peak memory is measured (each in a fresh process)."""
