"""The image benchmark's tables, misses and chart series, from its raw measurements."""

from __future__ import annotations

from image_paths import CASES, LABELS, MEMORY_PATHS, PATHS, PEERS
from results import Figure, markdown_table
from stats import Summary, ratio

_TITLES = {key: label for key, (label, *_) in CASES.items()}
_CASES = tuple(CASES)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}" if seconds >= 0.01 else f"{seconds * 1000:.1f}"


def tables(data: dict, busy: dict[str, float], busy_cpu: dict[str, list[float]]) -> list[str]:
    lines = ["Wall time per call, p50 / p95 (ms):", ""]
    rows = []
    for key in _CASES:
        case = data[key]
        summary = case["summary"]
        rows.append(
            [_TITLES[key], str(case["reps"])]
            + [f"{_ms(summary[n]['p50'])} / {_ms(summary[n]['p95'])}" for n in PATHS]
        )
    lines += markdown_table(["input", "reps", *(LABELS[n] for n in PATHS)], rows)
    lines += ["", "Ours against each other path (medians of this run), and time per image:", ""]
    rows = []
    for key in _CASES:
        case = data[key]
        r = case["ratios"]
        per_image = case["summary"]["ours"]["p50"] / case["images"]
        rows.append(
            [
                _TITLES[key],
                f"**{r['ours/decode+write']:.2f}x**",
                f"{r['ours/floor']:.2f}x",
                *(f"{r[f'ours/{peer}']:.2f}x" for peer in PEERS),
                f"{_ms(per_image)} ms",
                f"{_ms(case['summary']['decode+write']['p50'] / case['images'])} ms",
                f"{_ms(case['summary']['touch']['p50'])} ms",
            ]
        )
    lines += markdown_table(
        [
            "input",
            "ours / ref decode + write",
            "ours / floor",
            *(f"ours / {LABELS[peer]}" for peer in PEERS),
            "ours per image",
            "ref per image",
            "first touch of the batch",
        ],
        rows,
    )
    lines += [
        "",
        "CPU time per image (median over the calls; every thread of the process), and the part "
        "of it the kernel spent (system time: here, mostly mapping fresh memory) for the "
        "reference and ours:",
        "",
    ]
    rows = []
    names = ("floor", "decode+write", *PEERS, "ours")
    for key in _CASES:
        case = data[key]
        cpu, system, count = case["cpu_p50_s"], case["system_p50_s"], case["images"]
        rows.append(
            [_TITLES[key]]
            + [f"{cpu[n] / count * 1000:.1f} ms" for n in names]
            + [
                f"{case['ratios']['cpu ours/floor']:.2f}x",
                f"{case['ratios']['cpu ours/decode+write']:.2f}x",
                f"{system['decode+write'] / count * 1000:.1f} / {system['ours'] / count * 1000:.1f}"
                " ms",
            ]
        )
    lines += markdown_table(
        [
            "input",
            *(LABELS[n] for n in names),
            "ours / floor",
            "ours / ref",
            "system time per image: ref / ours",
        ],
        rows,
    )
    lines += _memory_table(data)
    splits = [(key, data[key]["touch_split"]) for key in _CASES if data[key].get("touch_split")]
    if splits:
        lines += [
            "",
            "Rep by rep: each rep runs every path once, one after another, so its first-touch "
            "reference says how fast fresh memory was mapping around that rep's other calls "
            "(fast: within 2x of the quickest touch of the set):",
            "",
        ]
        for key, split in splits:
            fast, slow = split["fast"], split["slow"]
            lines.append(
                f"* {_TITLES[key]}: in the {fast['reps']} reps whose touch took "
                f"{_ms(fast['touch_min_s'])}-{_ms(fast['touch_max_s'])} ms, ours / ref was "
                f"**{fast['ours/ref']:.2f}x**; in the {slow['reps']} whose touch took "
                f"{_ms(slow['touch_min_s'])}-{_ms(slow['touch_max_s'])} ms, "
                f"**{slow['ours/ref']:.2f}x**."
            )
    quick = [(key, data[key]["system_split"]) for key in _CASES if data[key].get("system_split")]
    if quick:
        lines += [
            "",
            "The same, by each call's own system time: ours / ref over the reps in which neither "
            "spent more than twice its least system time of the set (plus 1 ms):",
            "",
        ]
        lines += [
            f"* {_TITLES[key]}: **{split['ours/ref']:.2f}x** in {split['reps']} of "
            f"{split['of']} reps."
            for key, split in quick
        ]
    busy_reps = len(busy_cpu["ours"])
    lines += [
        "",
        f"With one core busy (6 JPEGs, {busy_reps} reps each): ref decode + write "
        f"{busy['decode+write'] * 1000:.0f} ms, ours {busy['ours'] * 1000:.0f} ms, "
        f"**{ratio(busy['ours'], busy['decode+write']):.2f}x**; CPU per image ref "
        f"{Summary.of(busy_cpu['decode+write']).p50 / 6 * 1000:.1f} ms, ours "
        f"{Summary.of(busy_cpu['ours']).p50 / 6 * 1000:.1f} ms.",
    ]
    return lines


def _memory_table(data: dict) -> list[str]:
    rows = []
    for key in _CASES:
        memory = data[key]["memory"]
        if not memory:
            continue
        tensor = memory["ours"]["tensor_bytes"]
        cells = []
        for name in MEMORY_PATHS:
            if name not in memory:
                cells.append("not measured (--quick)")
                continue
            extra = memory[name]["extra_bytes"]
            cells.append(f"{extra / 2**20:.0f} MiB ({ratio(extra, tensor):.2f}x)")
        rows.append([_TITLES[key], f"{tensor / 2**20:.0f} MiB", *cells])
    return [
        "",
        "Peak extra memory (RSS high-water mark minus RSS before the call, in a fresh process "
        "after one warm-up call on tiny images):",
        "",
        *markdown_table(["input", "final tensor", *(LABELS[n] for n in MEMORY_PATHS)], rows),
    ]


def profile_lines(sampled) -> list[str]:
    return [
        "",
        "Where ours spends its time on the 6-JPEG set (every thread sampled every 2 ms by "
        "`bench/sampler.py`; C code is counted on the Python line that called it):",
        "",
        *markdown_table(["thread", "line", "share of samples"], sampled.table(8)),
    ]


def misses(figures: list[Figure], data: dict) -> list[str]:
    """One paragraph per missed figure, with the measurements that say why."""
    notes = []
    for figure in figures:
        if figure.met is not False:
            continue
        key = next(k for k, title in _TITLES.items() if figure.label.startswith(title))
        case = data[key]
        summary, cpu, count = case["summary"], case["cpu_p50_s"], case["images"]
        text = f"**Missed: {figure.label} {figure.formatted()} (target {figure.target}).** "
        if "memory" in figure.label:
            ours = case["memory"]["ours"]
            text += (
                f"Ours rose {ours['extra_bytes'] / 2**20:.0f} MiB above its start for a "
                f"{ours['tensor_bytes'] / 2**20:.0f} MiB tensor."
            )
        else:
            text += (
                f"Ours took {_ms(summary['ours']['p50'])} ms, the reference "
                f"{_ms(summary['decode+write']['p50'])} ms and the floor "
                f"{_ms(summary['floor']['p50'])} ms; CPU per image ours "
                f"{cpu['ours'] / count * 1000:.1f} ms, the reference "
                f"{cpu['decode+write'] / count * 1000:.1f} ms, the floor "
                f"{cpu['floor'] / count * 1000:.1f} ms (system time ours "
                f"{case['system_p50_s']['ours'] / count * 1000:.1f} ms, the reference "
                f"{case['system_p50_s']['decode+write'] / count * 1000:.1f} ms). Only touching "
                "a fresh batch this size, allocated as ours is (torch, normal pages), "
                f"took {_ms(summary['touch']['p50'])} ms here (p95 "
                f"{_ms(summary['touch']['p95'])} ms); the reference's batch is NumPy's, in "
                "transparent huge pages the call before it had just freed."
            )
            fastest = max(PEERS, key=lambda peer: case["ratios"][f"ours/{peer}"])
            if "peer-style" in figure.label:
                bound = ratio(summary["floor"]["p50"], summary[fastest]["p50"])
                text += (
                    f" The bare decode alone is {bound:.2f}x the fastest of those paths "
                    f"({LABELS[fastest]}) here."
                )
            if "bare PIL" in figure.label:
                text += (
                    " The plain way, decode then one float32 write, is "
                    f"{ratio(summary['decode+write']['p50'], summary['floor']['p50']):.2f}x the "
                    "floor here."
                )
            split = case.get("touch_split")
            if split:
                text += (
                    f" In the reps whose touch was fast, ours / ref was "
                    f"{split['fast']['ours/ref']:.2f}x; in the others "
                    f"{split['slow']['ours/ref']:.2f}x."
                )
        notes.append(text)
    return notes


def per_image_series(data: dict) -> dict[str, list[tuple[int, float]]]:
    """Path -> (images, median ms per image) over the JPEG sets, for the chart."""
    series: dict[str, list[tuple[int, float]]] = {}
    for key in _CASES:
        if not key.startswith("jpeg"):
            continue
        case = data[key]
        for name in PATHS:
            per_image = case["summary"][name]["p50"] / case["images"] * 1000
            series.setdefault(LABELS[name], []).append((case["images"], per_image))
    return series
