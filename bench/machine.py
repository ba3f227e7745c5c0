"""The machine a run was measured on, for the report's header."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from importlib import metadata


def describe() -> dict[str, str]:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count() or "?"),
        "memory": _memory(),
        "free_page_reporting": _free_page_reporting(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "pillow": _version("pillow"),
        "requests": _version("requests"),
        "executable": sys.executable,
    }


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.0f} GB"
    except OSError:
        pass
    return "?"


def load_average() -> str:
    """1/5/15-minute load average: shared runners are rarely idle, so the report says how busy."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


class LoadSampler:
    """The 1-minute load average every few seconds while the benchmarks run, for the report."""

    def __init__(self, interval: float = 5.0) -> None:
        import threading

        self.samples: list[float] = []
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-load", daemon=True)

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 1)

    def _loop(self) -> None:
        while True:
            try:
                self.samples.append(os.getloadavg()[0])
            except OSError:
                return
            if self._stop.wait(self._interval):
                return

    def summary(self) -> str:
        if not self.samples:
            return "n/a"
        ordered = sorted(self.samples)
        return (
            f"median {ordered[len(ordered) // 2]:.1f}, max {ordered[-1]:.1f} "
            f"({len(ordered)} samples)"
        )

    def busy(self, cores: int) -> bool:
        """Busier than the benchmark itself makes the machine (about one core, two at times)."""
        if not self.samples:
            return False
        return sorted(self.samples)[len(self.samples) // 2] > max(2.5, cores + 0.5)


def _free_page_reporting() -> str:
    """Does this guest hand freed memory back to its host? Stated for the reader of a run: on
    such a guest, mapping fresh memory has cost very different amounts from one run to the next
    (a fresh 72 MiB array after 3 s idle: 1-2 ms in some processes, 171-228 ms in others)."""
    balloon = os.path.isdir("/sys/bus/virtio/drivers/virtio_balloon")
    try:
        with open("/proc/cmdline", encoding="utf-8") as cmdline:
            words = cmdline.read().split()
    except OSError:
        words = []
    order = next((w.split("=", 1)[1] for w in words if w.startswith("page_reporting.")), None)
    if not balloon:
        return "no (no virtio balloon)"
    if order is None:
        return "virtio balloon (free page reporting not set on the kernel command line)"
    return f"virtio balloon; the kernel command line sets `page_reporting_order={order}`"


def fresh_memory_touch(
    images: int, size: tuple[int, int] = (1024, 1024), allocator: str = "torch"
) -> float:
    """Seconds to allocate and touch an IMAGE-batch-sized float32 array in a fresh process:
    what mapping memory a process has not used before costs on this machine, right now.
    ``allocator`` "torch" allocates as the node does; "numpy" as NumPy does, which asks the
    kernel for transparent huge pages for arrays this large."""
    import json
    import subprocess
    import sys

    shape = f"({images}, {size[1]}, {size[0]}, 3)"
    allocate = {
        "torch": f"torch.empty({shape}, dtype=torch.float32).numpy()",
        "numpy": f"numpy.empty({shape}, dtype=numpy.float32)",
    }[allocator]
    script = (
        "import json, time, numpy, torch\n"
        "started = time.perf_counter()\n"
        f"out = {allocate}\n"
        "out.reshape(-1)[::1024] = 0\n"
        "print(json.dumps(time.perf_counter() - started))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1]))
