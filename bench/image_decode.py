"""Benchmark 3: encoded bytes -> IMAGE tensor, against bare Pillow decode of the same bytes.

Three ways through the same bytes, interleaved in rotating order so drift hits them alike:

* **floor**: bare single-threaded Pillow decode (``Image.open(BytesIO(b)).load()``), no tensor;
* **naive**: the common ``np.array(img).astype(np.float32) / 255`` + ``torch.from_numpy``,
  then ``torch.cat`` into a batch;
* **ours**: ``nodes/image_tensors.images_to_tensor``.

Peak extra memory is measured in a fresh subprocess per path: the RSS high-water mark (reset
through ``/proc/self/clear_refs`` where Linux allows) minus
the RSS before the call, because tracemalloc does not see torch's allocations. (``VmHWM`` from
``/proc/self/status`` rather than ``getrusage``'s ``ru_maxrss``: Linux folds the parent's peak
into the child's ``ru_maxrss`` across ``exec``.)
"""

from __future__ import annotations

import gc
import io
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sample_images
from pack import PACK_DIR
from results import BenchResult, Figure, markdown_table
from stats import Summary, ratio

JPEG_TARGET = 1.5
PNG_TARGET = 1.25
MEMORY_TARGET = 1.5


# -- the three paths -------------------------------------------------------------------------------


def floor_decode(blobs: list[bytes]) -> None:
    from PIL import Image

    for blob in blobs:
        image = Image.open(io.BytesIO(blob))
        if image.mode == "RGB":
            image.load()
        else:
            image.convert("RGB")


def naive_tensor(blobs: list[bytes]):
    import numpy as np
    import torch
    from PIL import Image

    tensors = []
    for blob in blobs:
        image = Image.open(io.BytesIO(blob)).convert("RGB")
        array = np.array(image).astype(np.float32) / 255.0
        tensors.append(torch.from_numpy(array)[None,])
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=0)


def ours_tensor(blobs: list[bytes]):
    from pack import submodule

    return submodule("nodes.image_tensors").images_to_tensor(blobs)


PATHS: dict[str, Callable[[list[bytes]], object]] = {
    "floor": floor_decode,
    "naive": naive_tensor,
    "ours": ours_tensor,
}


# -- timing ----------------------------------------------------------------------------------------


def _time_paths(blobs: list[bytes], reps: int) -> dict[str, list[float]]:
    for path in PATHS.values():  # warm-up: imports, the decode pool, plugin registration
        path(blobs)
    times: dict[str, list[float]] = {name: [] for name in PATHS}
    names = list(PATHS)
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            gc.collect()
            started = time.perf_counter()
            out = PATHS[name](blobs)
            times[name].append(time.perf_counter() - started)
            del out
    return times


# -- memory, in a fresh process per path -----------------------------------------------------------

_MEMORY_SCRIPT = """
import gc, json, resource, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import numpy, torch  # noqa: F401
from PIL import Image, ImageOps, JpegImagePlugin, PngImagePlugin  # noqa: F401
import image_decode
from pack import submodule
submodule("nodes.image_tensors")
blobs = [Path(p).read_bytes() for p in sys.argv[3:]]
gc.collect()

def status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])

try:  # reset the high-water mark to the current RSS (Linux >= 4.0)
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
except OSError:
    pass
before = status_kib("VmRSS")
out = image_decode.PATHS[sys.argv[2]](blobs)
# VmHWM belongs to this process image; getrusage's ru_maxrss also folds in the parent's peak
# from before exec(), so it is only the fallback.
peak = status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
nbytes = out.numel() * out.element_size() if out is not None else 0
print(json.dumps({"before_kib": before, "peak_kib": peak, "tensor_bytes": nbytes}))
"""


def _peak_memory(files: list[Path], path: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(Path(__file__).parent), path]
        + [str(f) for f in files],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    report["extra_bytes"] = (report["peak_kib"] - report["before_kib"]) * 1024
    return report


# -- the benchmark ---------------------------------------------------------------------------------


def run(quick: bool) -> BenchResult:
    cases = {
        "jpeg6": ("6 JPEGs, 1024x1024 (one text-to-image task)", sample_images.jpeg_set()),
        "png2k": ("1 PNG, 2048x2048 (one upscale)", [sample_images.png_upscale()]),
    }
    reps = {"jpeg6": 8 if quick else 30, "png2k": 5 if quick else 20}
    targets = {"jpeg6": JPEG_TARGET, "png2k": PNG_TARGET}
    result = BenchResult(
        key="image_decode",
        title="Bytes -> IMAGE tensor",
        method=(
            "The same encoded bytes through three paths, interleaved in rotating order after a "
            "warm-up: bare single-threaded Pillow decode (the floor: `Image.open(BytesIO(b))"
            ".load()`, no tensor), the common `np.array(img).astype(np.float32) / 255` + "
            "`torch.from_numpy` (+ `torch.cat`) path, and ours (`nodes/image_tensors.py`). "
            "Inputs are photo-like images made by `bench/sample_images.py` (smooth colour, "
            "edges, grain; JPEG quality 90, ~250 KB each; the PNG ~6.8 MB). Peak extra memory: "
            "RSS high-water mark in a fresh subprocess per path (`VmHWM`, reset via "
            "`/proc/self/clear_refs`; `getrusage`'s `ru_maxrss` would include the parent's peak "
            "from before `exec`) minus RSS before the call."
        ),
    )
    rows = []
    memory_rows = []
    with tempfile.TemporaryDirectory(prefix="grok-bench-") as scratch:
        for key, (label, blobs) in cases.items():
            times = _time_paths(blobs, reps[key])
            summaries = {name: Summary.of(samples) for name, samples in times.items()}
            vs_floor = ratio(summaries["ours"].p50, summaries["floor"].p50)
            naive_vs_floor = ratio(summaries["naive"].p50, summaries["floor"].p50)
            vs_naive = ratio(summaries["ours"].p50, summaries["naive"].p50)
            result.figures.append(
                Figure(
                    f"{label}: ours / bare PIL decode (median)",
                    vs_floor,
                    "x",
                    f"<= {targets[key]}x",
                    vs_floor <= targets[key],
                )
            )
            result.figures.append(
                Figure(f"{label}: ours / naive numpy path (median)", vs_naive, "x")
            )
            rows.append(
                [
                    label,
                    str(reps[key]),
                    *(
                        f"{summaries[n].p50 * 1000:.0f} / {summaries[n].p95 * 1000:.0f} ms"
                        for n in PATHS
                    ),
                    f"{vs_floor:.2f}x",
                    f"{naive_vs_floor:.2f}x",
                    f"{vs_naive:.2f}x",
                ]
            )
            files = []
            for i, blob in enumerate(blobs):
                file = Path(scratch) / f"{key}-{i}"
                file.write_bytes(blob)
                files.append(file)
            memory = {name: _peak_memory(files, name) for name in ("naive", "ours")}
            tensor_bytes = memory["ours"]["tensor_bytes"]
            ours_ratio = ratio(memory["ours"]["extra_bytes"], tensor_bytes)
            result.figures.append(
                Figure(
                    f"{label}: ours peak extra memory / tensor bytes",
                    ours_ratio,
                    "x",
                    f"<= {MEMORY_TARGET}x",
                    ours_ratio <= MEMORY_TARGET,
                )
            )
            memory_rows.append(
                [
                    label,
                    f"{tensor_bytes / 2**20:.0f} MiB",
                    *(
                        f"{memory[n]['extra_bytes'] / 2**20:.0f} MiB "
                        f"({ratio(memory[n]['extra_bytes'], tensor_bytes):.2f}x)"
                        for n in ("naive", "ours")
                    ),
                ]
            )
            result.data[key] = {
                "times_s": times,
                "summary": {n: s.as_dict() for n, s in summaries.items()},
                "ratios": {
                    "ours/floor": vs_floor,
                    "naive/floor": naive_vs_floor,
                    "ours/naive": vs_naive,
                },
                "memory": memory,
                "input_bytes": [len(b) for b in blobs],
            }
    result.details += markdown_table(
        [
            "input",
            "reps",
            "floor p50 / p95",
            "naive p50 / p95",
            "ours p50 / p95",
            "ours / floor",
            "naive / floor",
            "ours / naive",
        ],
        rows,
    )
    result.details += ["", "Peak extra memory (RSS high-water mark minus RSS before the call):", ""]
    result.details += markdown_table(["input", "final tensor", "naive path", "ours"], memory_rows)
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    outcome = run(quick="--quick" in sys.argv)
    print("\n".join(outcome.details))
    for figure in outcome.figures:
        print(figure.label, figure.formatted(), figure.target or "", figure.met)
    _ = PACK_DIR
