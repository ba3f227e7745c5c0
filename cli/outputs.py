"""The output folder (``-o``): checked before anything is paid, and each image written to it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ..api import errors
from ..journal import events
from .context import PROG

if TYPE_CHECKING:
    from ..journal import TaskResult
    from .progress import Progress


def output_dir(text: str) -> Path:
    """The output folder, created and proven writable before anything is paid for."""
    out = Path(text).expanduser()
    if out.exists() and not out.is_dir():
        raise errors.InvalidRequestError(
            f"The output path {out} is a file, not a folder: name a folder with -o.",
            field="output",
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".grok-imagine-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise errors.InvalidRequestError(
            f"The output folder {out} cannot be written ({reason}): pick another with -o. "
            "Nothing was paid.",
            field="output",
        ) from None
    return out


def write_outputs(result: TaskResult, out_dir: Path) -> list[Path]:
    """Copy the images out as received (JPEG stays JPEG), named by task id and index: the kept
    files, and those that arrived but could not be kept (written from memory)."""
    from ..api.download import sniff_image_format

    written = []
    for index, src in enumerate(result.images):
        if isinstance(src, Path):
            dest = out_dir / f"{result.task_id}_{index}{src.suffix}"
        else:
            kind = (sniff_image_format(src) or "bin").lower().replace("jpeg", "jpg")
            dest = out_dir / f"{result.task_id}_{index}.{kind}"
        try:
            if isinstance(src, Path):
                shutil.copyfile(src, dest)
            else:
                dest.write_bytes(src)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            kept = f"the image is kept at {src}" if isinstance(src, Path) else "it was not kept"
            raise errors.DownloadError(
                f"Could not write {dest} ({reason}); {kept}, and "
                f"`{PROG} task {result.task_id} -o DIR` writes it again (free).",
                advice=errors.Advice.NONE,
            ) from None
        written.append(dest)
    return written


def report(progress: Progress, result: TaskResult, what: str, out_dir: Path) -> None:
    """One line for the task on stderr, then each written file's path on stdout."""
    count = len(result.images)
    progress.say(
        f"{what} task {result.task_id}: {count} image{'s' if count != 1 else ''}, "
        f"{events.outcome_word(result)}"
    )
    for path in write_outputs(result, out_dir):
        print(path, flush=True)
