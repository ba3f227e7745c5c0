"""Benchmark 3: encoded bytes -> IMAGE tensor, against bare Pillow decode of the same bytes.

The same bytes through every path, interleaved in rotating order so drift hits them alike:

* **floor**: bare single-threaded Pillow decode (``Image.open(BytesIO(b)).load()``), no tensor;
* **naive**: the common ``np.array(img).astype(np.float32) / 255`` + ``torch.from_numpy``,
  then ``torch.cat`` into a batch;
* **peer-style** conversions, written here after the patterns two peers use (not their code):
  ComfyUI's own API nodes (``convert("RGBA")``, ``np.array(...).astype(np.float32) / 255``, one
  tensor per image, ``torch.cat``) and a kie.ai pack (``convert("RGB").tobytes()``,
  ``torch.frombuffer(...).clone().float() / 255``, ``torch.cat``);
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
from collections.abc import Callable, Sequence
from pathlib import Path

import sample_images
from results import BenchResult, Figure, markdown_table
from stats import Summary, ratio

JPEG_TARGET = 1.35
PNG_TARGET = 1.10
MEMORY_TARGET = 1.15


# -- the paths -------------------------------------------------------------------------------------


def floor_decode(blobs: list[bytes]) -> None:
    from PIL import Image

    for blob in blobs:
        image = Image.open(io.BytesIO(blob))
        if image.mode == "RGB":
            image.load()
        else:
            image.convert("RGB")


def decode_and_write_once(blobs: list[bytes]):
    """Reference, not a contender: single-threaded decode plus one float32 write into a fresh
    batch, the least any bytes -> IMAGE path must do (the issue's "floor" in its fuller sense)."""
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


def first_touch(blobs: list[bytes]):
    """Reference: allocate a batch of the output's size and touch each page once, no pixels."""
    import numpy as np
    from PIL import Image

    width, height = Image.open(io.BytesIO(blobs[0])).size
    out = np.empty((len(blobs), height, width, 3), dtype=np.float32)
    out.reshape(-1)[:: 4096 // out.itemsize] = 0
    return None


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
    from pack import submodule

    return submodule("nodes.image_tensors").images_to_tensor(blobs)


PATHS: dict[str, Callable[[list[bytes]], object]] = {
    "floor": floor_decode,
    "naive": naive_tensor,
    "comfy API nodes style": comfy_api_style,
    "kie.ai style": kie_style,
    "ours": ours_tensor,
    "decode+write": decode_and_write_once,
    "touch": first_touch,
}
"""The contenders (floor, naive, two peer styles, ours) and two references for the floor."""
PEERS = ("naive", "comfy API nodes style", "kie.ai style")


# -- timing ----------------------------------------------------------------------------------------


def touch_split(times: dict[str, list[float]]) -> dict[str, dict[str, float]] | None:
    """Ours / floor over the reps whose first-touch reference ran fast, and over the others.

    The paths run one after another within a rep, so a rep's touch says how fresh memory was
    mapping at that moment: "fast" is within 2x of the set's quickest touch. None when every rep
    falls on one side (nothing to compare).
    """
    touch = times["touch"]
    quickest = min(touch)
    groups: dict[str, list[int]] = {"fast": [], "slow": []}
    for rep, seconds in enumerate(touch):
        groups["fast" if seconds <= 2 * quickest else "slow"].append(rep)
    if not all(groups.values()):
        return None
    split = {}
    for name, reps in groups.items():
        ours = Summary.of([times["ours"][r] for r in reps]).p50
        floor = Summary.of([times["floor"][r] for r in reps]).p50
        split[name] = {
            "reps": len(reps),
            "touch_min_s": min(touch[r] for r in reps),
            "touch_max_s": max(touch[r] for r in reps),
            "ours/floor": ratio(ours, floor),
        }
    return split


def _time_paths(
    blobs: list[bytes], reps: int, names: Sequence[str] = tuple(PATHS)
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds (every thread of the process) per call, per path."""
    for name in names:  # warm-up: imports, the decode pool, plugin registration
        PATHS[name](blobs)
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    names = list(names)
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            gc.collect()
            started, cpu_started = time.perf_counter(), time.process_time()
            out = PATHS[name](blobs)
            times[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)
            del out
    return times, cpu


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
    import load

    jpegs = sample_images.jpeg_set(24)
    cases = {
        "jpeg6": ("6 JPEGs 1024x1024", jpegs[:6]),
        "jpeg24": ("24 JPEGs 1024x1024", jpegs),
        "png2k": ("PNG 2048x2048", [sample_images.png_upscale()]),
    }
    reps = {"jpeg6": 5 if quick else 20, "jpeg24": 2 if quick else 7, "png2k": 2 if quick else 10}
    targets = {"jpeg6": JPEG_TARGET, "png2k": PNG_TARGET}
    result = BenchResult(
        key="image_decode",
        title="Bytes -> IMAGE tensor",
        method=(
            "The same encoded bytes through each path, interleaved in rotating order after a "
            "warm-up: bare single-threaded Pillow decode (the floor: `Image.open(BytesIO(b))"
            ".load()`, no tensor), the common `np.array(img).astype(np.float32) / 255` + "
            "`torch.from_numpy` (+ `torch.cat`) path, two peer-style conversions written after "
            "the patterns of ComfyUI's own API nodes (RGBA, a float32 copy per image, "
            "`torch.cat`) and of a kie.ai pack (RGB bytes, `torch.frombuffer(...).clone()"
            ".float() / 255`, `torch.cat`), and ours (`nodes/image_tensors.py`); plus two "
            "references that show what the floor leaves out: single-threaded decode plus one "
            "float32 write into a fresh batch, and the first touch of a fresh output-sized array "
            "alone (page faults: on this VM, memory the process has not used before is slow to "
            "map). CPU time is the process's (every thread) per call, divided by the images. "
            "The 6-JPEG set is timed a second time, floor and ours only, while `bench/load.py` "
            "keeps one of the two cores busy. "
            "Inputs are photo-like images made by `bench/sample_images.py` (smooth colour, "
            "edges, grain; JPEG quality 90, ~250 KB each; the PNG ~6.8 MB). Peak extra memory: "
            "RSS high-water mark in a fresh subprocess per path (`VmHWM`, reset via "
            "`/proc/self/clear_refs`; `getrusage`'s `ru_maxrss` would include the parent's peak "
            "from before `exec`) minus RSS before the call."
        ),
    )
    rows = []
    cpu_rows = []
    split_lines = []
    memory_rows = []
    contenders = ("floor", *PEERS, "ours")
    with tempfile.TemporaryDirectory(prefix="grok-bench-") as scratch:
        for key, (label, blobs) in cases.items():
            times, cpu = _time_paths(blobs, reps[key])
            summaries = {name: Summary.of(samples) for name, samples in times.items()}
            cpu_p50 = {name: Summary.of(samples).p50 for name, samples in cpu.items()}
            floor_p50 = summaries["floor"].p50
            vs_floor = ratio(summaries["ours"].p50, floor_p50)
            if key in targets:
                result.figures.append(
                    Figure(
                        f"{label}: ours / bare PIL decode (median)",
                        vs_floor,
                        "x",
                        f"<= {targets[key]:.2f}x",
                        vs_floor <= targets[key],
                    )
                )
                for peer in PEERS:
                    result.figures.append(
                        Figure(
                            f"{label}: {peer} / bare PIL decode (median)",
                            ratio(summaries[peer].p50, floor_p50),
                            "x",
                        )
                    )
            rows.append(
                [
                    label,
                    str(reps[key]),
                    *(
                        f"{summaries[n].p50 * 1000:.0f} / {summaries[n].p95 * 1000:.0f} ms"
                        for n in PATHS
                    ),
                    *(f"{ratio(summaries[n].p50, floor_p50):.2f}x" for n in (*PEERS, "ours")),
                    f"{ratio(summaries['ours'].p50, summaries['decode+write'].p50):.2f}x",
                ]
            )
            split = touch_split(times)
            if split:
                fast, slow = split["fast"], split["slow"]
                split_lines.append(
                    f"{label}: in the {fast['reps']} reps whose touch took "
                    f"{fast['touch_min_s'] * 1000:.1f}-{fast['touch_max_s'] * 1000:.1f} ms, ours / "
                    f"floor was **{fast['ours/floor']:.2f}x**; in the {slow['reps']} whose touch "
                    f"took {slow['touch_min_s'] * 1000:.1f}-{slow['touch_max_s'] * 1000:.1f} ms, "
                    f"**{slow['ours/floor']:.2f}x**."
                )
            per_image = {name: value / len(blobs) for name, value in cpu_p50.items()}
            cpu_rows.append(
                [
                    label,
                    *(f"{per_image[n] * 1000:.1f} ms" for n in contenders),
                    f"{ratio(cpu_p50['ours'], cpu_p50['floor']):.2f}x",
                ]
            )
            files = []
            for i, blob in enumerate(blobs):
                file = Path(scratch) / f"{key}-{i}"
                file.write_bytes(blob)
                files.append(file)
            measured = ("naive", "comfy API nodes style", "kie.ai style", "ours")
            if quick:  # the smoke run checks ours on the JPEG set only
                measured = ("ours",) if key == "jpeg6" else ()
            memory = {name: _peak_memory(files, name) for name in measured}
            if "ours" in memory:
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
                            if n in memory
                            else "not measured (--quick)"
                            for n in measured_columns()
                        ),
                    ]
                )
            result.data[key] = {
                "times_s": times,
                "cpu_s": cpu,
                "summary": {n: s.as_dict() for n, s in summaries.items()},
                "ratios": {
                    **{f"{n}/floor": ratio(summaries[n].p50, floor_p50) for n in PATHS},
                    "ours/decode+write": ratio(
                        summaries["ours"].p50, summaries["decode+write"].p50
                    ),
                    "cpu ours/floor": ratio(cpu_p50["ours"], cpu_p50["floor"]),
                },
                "memory": memory,
                "touch_split": split,
                "input_bytes": [len(b) for b in blobs],
            }
        with load.one_core_busy():
            busy_times, busy_cpu = _time_paths(cases["jpeg6"][1], reps["jpeg6"], ("floor", "ours"))
    busy = {n: Summary.of(v).p50 for n, v in busy_times.items()}
    busy_ratio = ratio(busy["ours"], busy["floor"])
    result.figures.append(
        Figure(
            "6 JPEGs 1024x1024, one core busy: ours / bare PIL decode (median)",
            busy_ratio,
            "x",
            f"<= {JPEG_TARGET:.2f}x",
            busy_ratio <= JPEG_TARGET,
        )
    )
    result.data["jpeg6_one_core_busy"] = {"times_s": busy_times, "cpu_s": busy_cpu}
    result.details += markdown_table(
        [
            "input",
            "reps",
            "floor: bare PIL decode, p50 / p95",
            "naive, p50 / p95",
            "ComfyUI API nodes style, p50 / p95",
            "kie.ai style, p50 / p95",
            "ours, p50 / p95",
            "ref: decode + one float32 write, 1 thread",
            "ref: first touch of the output",
            "naive / floor",
            "ComfyUI API nodes style / floor",
            "kie.ai style / floor",
            "**ours / floor**",
            "ours / ref decode + write",
        ],
        rows,
    )
    result.details += [
        "",
        "CPU time per image (median over the calls; every thread of the process):",
        "",
    ]
    result.details += markdown_table(
        [
            "input",
            "floor",
            "naive",
            "ComfyUI API nodes style",
            "kie.ai style",
            "ours",
            "ours / floor",
        ],
        cpu_rows,
    )
    if split_lines:
        result.details += [
            "",
            "Rep by rep: each rep runs every path once, one after another, so its first-touch "
            "reference says how fast fresh memory was mapping around that rep's other calls "
            "(fast: within 2x of the quickest touch of the set):",
            "",
            *(f"* {line}" for line in split_lines),
        ]
    result.details += [
        "",
        f"With one core busy (6 JPEGs, {reps['jpeg6']} reps each): floor "
        f"{busy['floor'] * 1000:.0f} ms, ours {busy['ours'] * 1000:.0f} ms, "
        f"**{busy_ratio:.2f}x**; CPU per image floor "
        f"{Summary.of(busy_cpu['floor']).p50 / 6 * 1000:.1f} ms, ours "
        f"{Summary.of(busy_cpu['ours']).p50 / 6 * 1000:.1f} ms.",
    ]
    import sampler

    six = cases["jpeg6"][1]
    sampled = sampler.profile(lambda: ours_tensor(six), seconds=0.5 if quick else 2.5)
    result.details += [
        "",
        "Where ours spends its time on the 6-JPEG set (every thread sampled every 2 ms by "
        "`bench/sampler.py`; C code is counted on the Python line that called it; the "
        "caller thread decodes its share too):",
        "",
    ]
    result.details += markdown_table(["thread", "line", "share of samples"], sampled.table(8))
    missed = [f for f in result.figures if f.met is False]
    if missed:
        jpeg = result.data["jpeg6"]
        what = "; ".join(f"{f.label} {f.formatted()} (target {f.target})" for f in missed)
        result.notes.append(
            f"**Missed: {what}.** The floor decodes and stops; any IMAGE path must also write "
            "12 bytes of float32 per pixel into fresh memory. Done once, on one thread, after "
            "the decode (the `ref: decode + one float32 write` column), that alone is "
            f"{jpeg['ratios']['decode+write/floor']:.2f}x the floor on the 6 JPEGs here. Ours "
            "decodes each image into its own slot and widens it there, spreading images over "
            f"a small pool; its CPU time is {jpeg['ratios']['cpu ours/floor']:.2f}x the "
            "floor's (table above), so its wall-time lead needs the second core."
        )
    result.details += ["", "Peak extra memory (RSS high-water mark minus RSS before the call):", ""]
    result.details += markdown_table(["input", "final tensor", *measured_columns()], memory_rows)
    return result


def measured_columns() -> tuple[str, ...]:
    return ("naive", "comfy API nodes style", "kie.ai style", "ours")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    outcome = run(quick="--quick" in sys.argv)
    print("\n".join(outcome.details))
    for figure in outcome.figures:
        print(figure.label, figure.formatted(), figure.target or "", figure.met)
