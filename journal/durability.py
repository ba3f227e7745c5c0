"""Can a paid request be remembered? The checks made before any create is sent.

A create costs money; the journal row and the kept files are what stop it being paid twice. So
before a create the folders that hold them are tried for real (a small file written, synced and
removed) and their free space read: a read-only mount, a missing permission or a full disk is
found *before* the money moves, and reported as one typed error that names the folder and what
to do. Free work (kept results, Load Task) does not ask.

Shared by every journal backend (SQLite here, others beside it) and by the kept-files store.
"""

from __future__ import annotations

import errno
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..api import errors
from ..api.messages import Fact, Message, said
from ..api.what import What

MIN_FREE_BYTES = 8 * 1024 * 1024
"""Room a folder must have before a create: a journal row is tiny, a task's ~6 images are a few
MB; below this the next write is likely to fail."""
PROBE_BYTES = 4096


READ_ONLY, FULL, NOT_A_FOLDER, NEWER_JOURNAL, UNREADABLE = (
    "read-only", "full", "not-a-folder", "newer-journal", "unreadable",
)  # fmt: skip


class StorageUnavailableError(errors.GrokError):
    """The journal or the kept-files folder cannot keep a paid result: nothing was sent.

    ``folder`` is the path concerned, ``problem`` one of ``read-only``, ``full``,
    ``not-a-folder``, ``newer-journal``, ``unreadable``; ``role`` says whose folder it is.
    """

    def __init__(
        self,
        what: str,
        folder: str | os.PathLike[str],
        problem: str,
        detail: Message | str = "",
        message: Message | str | None = None,
    ) -> None:
        self.role = what
        self.folder = str(folder)
        self.problem = problem
        if message is None:
            message = _message(what, self.folder, problem, detail)
        super().__init__(message, advice=errors.Advice.MOVE_STORAGE)


_PROBLEMS = {
    FULL: What.DISK_FULL,
    NOT_A_FOLDER: What.NOT_A_FOLDER,
    NEWER_JOURNAL: What.NEWER_JOURNAL,
    UNREADABLE: What.JOURNAL_UNREADABLE,
    READ_ONLY: What.FOLDER_READ_ONLY,
}
_ROLES = {"task journal": What.TASK_JOURNAL, "kept-files": What.KEPT_FILES}
"""How messages name the folders the stores give as roles (``create_folders``)."""


def _message(what: str, folder: str, problem: str, detail: Message | str) -> Message:
    why: Fact = said(What.DETAIL, detail=detail) if detail else ""
    role: Fact = said(_ROLES[what]) if what in _ROLES else what
    return said(_PROBLEMS.get(problem, What.FOLDER_READ_ONLY), role=role, folder=folder, detail=why)


_ahead = threading.local()
"""This thread's folders that passed a probe made ahead (``probed_ahead``), each good once."""


@contextmanager
def probed_ahead(folders: Iterable[tuple[str | os.PathLike[str], str]]) -> Iterator[None]:
    """Probe ``(folder, what)`` now, before the caller takes a lock; inside the block, the next
    ``require_writable`` of a folder that passed takes that answer instead of probing again.

    A probe is a synced write, milliseconds each: made inside the journal's lock, eight
    parallel creates would wait for each other's. The answer is used once, on this thread,
    within the block (so it is never older than the block); a folder that failed is simply
    probed again where it is required, which raises there.
    """
    passed: set[Path] = set()
    for folder, what in folders:
        try:
            require_writable(folder, what)
        except StorageUnavailableError:
            continue
        passed.add(Path(folder))
    outer = getattr(_ahead, "folders", None)
    _ahead.folders = passed
    try:
        yield
    finally:
        _ahead.folders = outer


def require_writable(
    folder: str | os.PathLike[str], what: str, min_free: int = MIN_FREE_BYTES
) -> None:
    """Raise ``StorageUnavailableError`` unless ``folder`` takes a synced write and has room.

    The folder is made if missing. The probe is real (open, write, fsync, unlink): permission
    bits, ACLs, read-only mounts and quota are all answered by the kernel, not guessed.
    """
    path = Path(folder)
    ahead = getattr(_ahead, "folders", None)
    if ahead and path in ahead and min_free == MIN_FREE_BYTES:
        ahead.discard(path)  # probed a moment ago on this thread, outside the lock
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise StorageUnavailableError(what, path, NOT_A_FOLDER, said(What.FILE_IN_THE_WAY)) from exc
    except OSError as exc:
        raise _from_os_error(what, path, exc) from exc
    probe = path / f".grok-imagine-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(probe, "wb") as handle:
            handle.write(bytes(PROBE_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise _from_os_error(what, path, exc) from exc
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass
    free = free_bytes(path)
    if free is not None and free < min_free:
        low = said(What.LOW_SPACE, free=f"{free / 2**20:.1f}", need=f"{min_free / 2**20:.0f}")
        raise StorageUnavailableError(what, path, FULL, low)


def free_bytes(folder: str | os.PathLike[str]) -> int | None:
    """Bytes an unprivileged writer may still use on ``folder``'s disk (None if unknown)."""
    try:
        stats = os.statvfs(folder)
    except (OSError, AttributeError):  # Windows has no statvfs
        try:
            import shutil

            return shutil.disk_usage(folder).free
        except OSError:
            return None
    return stats.f_bavail * stats.f_frsize


def is_disk_trouble(exc: BaseException) -> bool:
    """An error that means "this disk cannot take the write now" (full, read-only, no access)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
    return False


def _from_os_error(what: str, path: Path, exc: OSError) -> StorageUnavailableError:
    detail = exc.strerror or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageUnavailableError(what, path, FULL, detail)
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return StorageUnavailableError(what, path, NOT_A_FOLDER, detail)
    return StorageUnavailableError(what, path, READ_ONLY, detail)
