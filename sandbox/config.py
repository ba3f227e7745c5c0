"""How a sandbox is set up: keys, prices, timing, image sizes.

The numbers that mirror the real API (models, prices, prompt limit, aspect-ratio sizes) live here
so the server, the CLI flags and the tests agree on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TEXT_TO_IMAGE = "grok-imagine/text-to-image"
UPSCALE = "grok-imagine/upscale"
PRICES = {TEXT_TO_IMAGE: 5, UPSCALE: 12}
MAX_PROMPT_CHARS = 5000

# Near one megapixel, as the upstream answers for each aspect ratio.
ASPECT_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "3:2": (1296, 864),
    "2:3": (864, 1296),
    "16:9": (1408, 768),
    "9:16": (768, 1408),
}
DEFAULT_ASPECT_RATIO = "1:1"

# The key the command-line sandbox prints for users; it only ever works against the sandbox.
DEFAULT_KEY = "sk-sandbox-local"
DEFAULT_CREDITS = 1_000_000

IMAGE_FORMATS = ("JPEG", "PNG")


@dataclass
class SandboxConfig:
    """Everything fixed for the life of one sandbox (fault switches live in ``Faults``)."""

    keys: dict[str, int] = field(default_factory=lambda: {DEFAULT_KEY: DEFAULT_CREDITS})
    # Seconds from create to a finished task: one number, or (min, max) drawn uniformly per task.
    generation_time: float | tuple[float, float] = (3.0, 10.0)
    # Seconds for each accepted task in turn, cycled; when set it replaces generation_time's
    # draw (a benchmark spreads its tasks' ends evenly between two status reads this way).
    generation_times: tuple[float, ...] = ()
    images_per_task: int = 6
    image_format: str = "JPEG"
    # (width, height) of every text-to-image result instead of its aspect ratio's size: tests
    # that queue hundreds of images keep them small.
    image_size: tuple[int, int] | None = None
    # Seconds after completion after which the task's file URLs answer 410; None = never.
    file_expiry: float | None = None
    # (max_creates, window_s) per key; more creates inside the window answer 429.
    rate_limit: tuple[int, float] | None = None
    # Serve result files from a second listener (another port is another origin), as a CDN would.
    separate_file_host: bool = True
    port: int = 0
    file_port: int = 0
    seed: int | None = None

    def __post_init__(self) -> None:
        self.image_format = self.image_format.upper()
        if self.image_format == "JPG":
            self.image_format = "JPEG"
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be JPEG or PNG, not {self.image_format!r}")
        if not self.keys:
            raise ValueError("a sandbox needs at least one key")
        low, high = self.generation_bounds
        if low < 0 or high < low:
            raise ValueError(f"generation_time needs 0 <= min <= max, not {self.generation_time!r}")
        self.generation_times = tuple(float(t) for t in self.generation_times)
        if any(not 0 <= t < float("inf") for t in self.generation_times):
            raise ValueError(
                f"generation_times must be seconds >= 0, not {self.generation_times!r}"
            )
        if self.images_per_task < 1:
            raise ValueError("images_per_task must be at least 1")
        if self.image_size is not None and min(self.image_size) < 16:
            raise ValueError(f"image_size must be at least 16 x 16, not {self.image_size!r}")
        if self.rate_limit is not None:
            max_creates, window = self.rate_limit
            if max_creates < 1 or window <= 0:
                raise ValueError("rate_limit is (max_creates >= 1, window_s > 0)")

    @property
    def generation_bounds(self) -> tuple[float, float]:
        if isinstance(self.generation_time, (int, float)):
            return float(self.generation_time), float(self.generation_time)
        low, high = self.generation_time
        return float(low), float(high)

    def __repr__(self) -> str:  # keys are secrets to the user who typed them: show only counts
        return (
            f"SandboxConfig(keys=<{len(self.keys)} key(s)>, "
            f"generation_time={self.generation_time!r}, "
            f"generation_times={self.generation_times!r}, "
            f"images_per_task={self.images_per_task}, image_format={self.image_format!r}, "
            f"image_size={self.image_size!r}, "
            f"file_expiry={self.file_expiry!r}, rate_limit={self.rate_limit!r}, "
            f"separate_file_host={self.separate_file_host}, port={self.port}, seed={self.seed!r})"
        )
