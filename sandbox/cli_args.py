"""Command-line flags for ``grok-imagine sandbox``: every config field and every fault switch."""

from __future__ import annotations

import argparse

from .config import DEFAULT_CREDITS, DEFAULT_KEY, SandboxConfig
from .faults import DOWNLOAD_FAULTS, Faults
from .shapes import SHAPES

DEFAULT_PORT = 8765


def _seconds_range(text: str) -> float | tuple[float, float]:
    """``"3-10"`` -> (3.0, 10.0); ``"0.5"`` -> 0.5."""
    try:
        if "-" in text.strip("-"):
            low, high = text.split("-", 1)
            return float(low), float(high)
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (0.5 or 3-10), not {text!r}") from None


def _rate(text: str) -> tuple[int, float]:
    """``"20/10"`` -> at most 20 creates per 10 seconds."""
    try:
        count, window = text.split("/", 1)
        return int(count), float(window)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CREATES/SECONDS, not {text!r}") from None


def _statuses(text: str) -> list[int]:
    """``"503,503,429"`` -> [503, 503, 429]."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected statuses like 503,455, not {text!r}") from None


def _key(text: str) -> tuple[str, int | None]:
    """``"KEY"`` or ``"KEY=CREDITS"``."""
    key, sep, credits = text.partition("=")
    if not key:
        raise argparse.ArgumentTypeError("a key cannot be empty")
    try:
        return key, int(credits) if sep else None
    except ValueError:
        raise argparse.ArgumentTypeError("expected KEY or KEY=CREDITS") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    server = parser.add_argument_group("sandbox server")
    server.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"API port on 127.0.0.1 (default {DEFAULT_PORT}; 0 = any free port)",
    )
    server.add_argument(
        "--file-port",
        type=int,
        default=0,
        help="port of the result-file host (default: any free port)",
    )
    server.add_argument(
        "--single-origin",
        action="store_true",
        help="serve result files from the API port instead of a second host",
    )
    server.add_argument(
        "--key",
        action="append",
        type=_key,
        metavar="KEY[=CREDITS]",
        help=f"accepted API key, repeatable (default {DEFAULT_KEY})",
    )
    server.add_argument(
        "--credits",
        type=int,
        default=DEFAULT_CREDITS,
        help="starting credits of each key given without =CREDITS",
    )
    server.add_argument(
        "--generation-time",
        type=_seconds_range,
        default=(3.0, 10.0),
        metavar="SECONDS|MIN-MAX",
        help="time to finish a task (default 3-10)",
    )
    server.add_argument(
        "--images-per-task", type=int, default=6, help="images per text-to-image task (default 6)"
    )
    server.add_argument(
        "--format",
        dest="image_format",
        choices=("jpeg", "png"),
        default="jpeg",
        help="result image format (default jpeg)",
    )
    server.add_argument(
        "--expiry",
        type=float,
        default=None,
        metavar="SECONDS",
        help="result URLs answer 410 this long after the task completes",
    )
    server.add_argument(
        "--rate-limit",
        type=_rate,
        default=None,
        metavar="CREATES/SECONDS",
        help="per-key create limit, e.g. 20/10; beyond it 429 + Retry-After",
    )
    server.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed for the random draws (generation times, failures)",
    )

    faults = parser.add_argument_group("fault injection")
    faults.add_argument(
        "--failure-rate",
        type=float,
        default=0.0,
        help="fraction of tasks that fail (and are refunded)",
    )
    faults.add_argument(
        "--moderation-word",
        default="forbidden",
        help="prompts containing this word fail on content policy "
        "(default 'forbidden'; '' turns it off)",
    )
    faults.add_argument(
        "--create-errors",
        type=_statuses,
        default=[],
        metavar="STATUS,...",
        help="answer the next creates with these HTTP statuses",
    )
    faults.add_argument(
        "--status-errors",
        type=_statuses,
        default=[],
        metavar="STATUS,...",
        help="answer the next status reads with these HTTP statuses",
    )
    faults.add_argument(
        "--retry-after", type=int, default=1, help="Retry-After seconds sent with injected 429s"
    )
    faults.add_argument("--stuck", action="store_true", help="tasks never finish")
    faults.add_argument(
        "--malformed-json",
        type=int,
        default=0,
        metavar="N",
        help="the next N status reads answer broken JSON",
    )
    faults.add_argument(
        "--html-error",
        type=int,
        default=0,
        metavar="N",
        help="the next N status reads answer an HTML 502 page",
    )
    faults.add_argument(
        "--error-in-body",
        type=int,
        default=0,
        metavar="N",
        help="the next N status reads answer HTTP 200 with code 500 in the body",
    )
    faults.add_argument(
        "--create-response-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="accept a create, then wait this long before answering",
    )
    faults.add_argument(
        "--shape",
        dest="response_shape",
        choices=SHAPES,
        default="default",
        help="the status payload's shape",
    )
    faults.add_argument(
        "--download",
        choices=DOWNLOAD_FAULTS,
        default=None,
        help="how result files are served badly",
    )
    faults.add_argument(
        "--drip-delay",
        type=float,
        default=0.2,
        metavar="SECONDS",
        help="pause between chunks for --download slow",
    )


def config_from_args(args: argparse.Namespace) -> tuple[SandboxConfig, Faults]:
    if args.key:
        keys = {key: args.credits if credits is None else credits for key, credits in args.key}
    else:
        keys = {DEFAULT_KEY: args.credits}
    config = SandboxConfig(
        keys=keys,
        generation_time=args.generation_time,
        images_per_task=args.images_per_task,
        image_format=args.image_format.upper(),
        file_expiry=args.expiry,
        rate_limit=args.rate_limit,
        separate_file_host=not args.single_origin,
        port=args.port,
        file_port=args.file_port,
        seed=args.seed,
    )
    faults = Faults(
        failure_rate=args.failure_rate,
        moderation_word=args.moderation_word or None,
        create_errors=list(args.create_errors),
        status_errors=list(args.status_errors),
        retry_after=args.retry_after,
        stuck=args.stuck,
        malformed_json=args.malformed_json,
        html_error=args.html_error,
        error_in_body=args.error_in_body,
        create_response_delay=args.create_response_delay,
        response_shape=args.response_shape,
        download=args.download,
        drip_delay=args.drip_delay,
    )
    return config, faults
