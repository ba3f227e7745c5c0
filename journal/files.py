"""The on-disk copy of every paid result file, so results outlive their expiring URLs.

Files are kept byte for byte as received (``<root>/<task_id>/<index>.<jpg|png|...>``): no
re-encoding, so what the user paid for is what they keep. A file is kept only once it decodes
(``verify.verify_image``): an undecodable one would fail the node on every re-queue. Writes are
atomic (a temporary file, fsync, rename), so a crash never leaves a half image under a final name;
reads are checked against the sha256 the journal recorded, so a damaged copy is fetched again
instead of served.

Each task folder also holds ``.request.json`` (hidden: the folder shows only images), written
when the task id arrives: the request it was created for (no secret: the identity is a hash, the
rest is what the user typed). It is a second record of every paid task, outside the journal, that
``noted_tasks`` reads back when a damaged journal is salvaged, so a task whose row could not be
recovered is still not paid again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..api import errors
from ..api.messages import said
from ..api.what import What
from . import durability
from .verify import VerifiedImage, verify_image

_MAGIC_EXTENSIONS = (
    (b"\xff\xd8\xff", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)
_FORMAT_EXTENSIONS = {"jpeg": "jpg", "jpg": "jpg", "png": "png", "webp": "webp", "gif": "gif"}
_NAME = re.compile(r"^(\d+)\.([a-z0-9]{1,8})$")
_UNSAFE_TASK_ID = re.compile(r"[/\\:\x00-\x1f\x7f]")
NOTE_NAME = ".request.json"
_ROLE = "kept-files"
"""How messages name the kept files' folder."""


@dataclass(frozen=True)
class StoredFile:
    index: int
    path: Path
    sha256: str
    size: int


class FileStore:
    """``FileStore(root)``: result files of every task under ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    def task_dir(self, task_id: str) -> Path:
        if not task_id or _UNSAFE_TASK_ID.search(task_id) or task_id.startswith("."):
            raise ValueError(f"task id {task_id!r} cannot name a folder")
        return self.root / task_id

    def check_writable(self) -> None:
        """Raise ``StorageUnavailableError`` unless result files can be kept here now (a real
        synced write, and room); called before a create, beside ``Journal.check_durable``."""
        durability.require_writable(self.root, _ROLE)

    def create_folders(self) -> tuple[tuple[Path, str], ...]:
        """What ``check_writable`` probes, for ``durability.probed_ahead``."""
        return ((self.root, _ROLE),)

    def save(
        self,
        task_id: str,
        index: int,
        data: bytes,
        image_format: str | None = None,
        *,
        verified: VerifiedImage | None = None,
    ) -> StoredFile:
        """Keep ``data`` as file ``index`` of the task, atomically; replaces an earlier copy.

        The bytes are decoded first (unless ``verified`` says the caller just did): a file that
        is not a usable image raises ``NotAnImageError`` / ``TooLargeError`` and is not written.
        """
        folder = self.task_dir(task_id)
        if verified is None:
            try:
                verified = verify_image(data)
            except (errors.NotAnImageError, errors.TooLargeError) as exc:
                raise type(exc)(
                    said(
                        What.FILE_OF_TASK_NOT_KEPT,
                        number=int(index) + 1,
                        task_id=task_id,
                        reason=errors.happened(exc),
                    )
                ) from exc
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{int(index)}.{_extension(data, image_format or verified.image_format)}"
        _write_atomically(final, data)
        for stale in self._files_of(task_id).get(int(index), []):
            if stale != final:
                stale.unlink(missing_ok=True)  # an earlier copy under another extension
        return StoredFile(int(index), final, hashlib.sha256(data).hexdigest(), len(data))

    def note_task(self, task_id: str, request: Mapping[str, Any]) -> None:
        """Write the task's ``.request.json`` (the request it was created for), atomically."""
        folder = self.task_dir(task_id)
        folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"task_id": task_id, **request}, sort_keys=True, ensure_ascii=False)
        _write_atomically(folder / NOTE_NAME, text.encode("utf-8"))

    def noted_tasks(self) -> Iterator[dict[str, Any]]:
        """Every task folder's ``.request.json`` that reads back as one (others are skipped)."""
        try:
            folders = sorted(entry for entry in self.root.iterdir() if entry.is_dir())
        except OSError:
            return
        for folder in folders:
            try:
                note = json.loads((folder / NOTE_NAME).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(note, dict) and note.get("task_id") == folder.name:
                yield note

    def find(self, task_id: str, index: int) -> Path | None:
        candidates = self._files_of(task_id).get(int(index), [])
        return candidates[0] if candidates else None

    def verified(self, task_id: str, index: int, sha256: str) -> Path | None:
        """The kept file if its bytes still hash to ``sha256``; None if missing or damaged."""
        path = self.find(task_id, index)
        if path is None:
            return None
        try:
            return path if _sha256_of(path) == sha256 else None
        except OSError:
            return None

    def _files_of(self, task_id: str) -> dict[int, list[Path]]:
        folder = self.task_dir(task_id)
        found: dict[int, list[Path]] = {}
        try:
            entries = list(folder.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return found
        for entry in sorted(entries):
            match = _NAME.match(entry.name)
            if match and entry.is_file():
                found.setdefault(int(match.group(1)), []).append(entry)
        return found


def _extension(data: bytes, image_format: str | None) -> str:
    if image_format and image_format.lower() in _FORMAT_EXTENSIONS:
        return _FORMAT_EXTENSIONS[image_format.lower()]
    for magic, extension in _MAGIC_EXTENSIONS:
        if data.startswith(magic):
            return extension
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return "bin"


def _write_atomically(final: Path, data: bytes) -> None:
    temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
