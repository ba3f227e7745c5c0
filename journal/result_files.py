"""A finished task's result files: the kept ones verified on disk, the others downloaded side by
side and each kept the moment it arrives, so one bad file loses none of the others.

A file is kept only once it decodes (``verify``); one that does not is recorded as not keepable,
with why, and is not fetched again (the same bytes would come back). Paid images that did arrive
are never withheld because a sibling cannot be had, nor because the disk would not take them
(they are returned from memory, not kept).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..api import errors
from ..api.messages import Fact, said
from ..api.redaction import safe_url
from ..api.what import What
from . import events
from .client import ApiClient, LazyClient
from .files import FileStore
from .hooks import RunHooks, check_cancel, emit
from .model import JournalEntry
from .result import TaskResult
from .store import JournalStore, JournalUnavailableError
from .verify import VerifiedImage, verify_image

logger = logging.getLogger(__name__)

DOWNLOAD_WORKERS = 4
"""Result files of one task fetched at once (a task has about 6)."""
PERMANENT_FILE_ERRORS = (errors.ResultExpiredError, errors.NotAnImageError, errors.TooLargeError)
"""A result file that will never be had: the task's other files are still returned."""

Paths = list[Path | bytes | None]
"""A task's images in result order: kept file, bytes not kept, or not had (yet)."""


class ResultFiles:
    """``ResultFiles(journal, files)``: the result files of tasks recorded in ``journal`` and
    kept in ``files``."""

    def __init__(self, journal: JournalStore, files: FileStore) -> None:
        self.journal = journal
        self.files = files

    def kept(self, task_id: str, entry: JournalEntry) -> list[Path] | None:
        """Every result file, verified on disk, or None if any is missing or damaged.

        A file recorded as undecodable counts as settled (it is reported, not fetched again).
        """
        recorded = {f.index: f for f in entry.files}
        failed = {f.index for f in entry.failed_files}
        paths = []
        for index in range(len(entry.result_urls)):
            if index in failed:
                continue
            known = recorded.get(index)
            path = self.files.verified(task_id, index, known.sha256) if known else None
            if path is None:
                return None
            paths.append(path)
        return paths or None

    def reuse(self, task_id: str, entry: JournalEntry, hooks: RunHooks) -> TaskResult | None:
        """The finished task's kept files, with no API call; None if any must be fetched."""
        kept = self.kept(task_id, entry)
        if kept is None:
            return None
        emit(hooks, events.ResultReused(task_id))
        report_recorded_failures(entry, hooks)
        return TaskResult(task_id, kept, entry.result_urls, reused=True)

    def fetch(
        self,
        client: LazyClient,
        task_id: str,
        urls: Sequence[str],
        hooks: RunHooks,
        resumed: bool,
    ) -> TaskResult:
        """The task's files: the kept ones as they are, the missing ones downloaded and kept."""
        try:
            entry = self.journal.get(task_id)
        except JournalUnavailableError:  # a shared journal away mid-task: the paid files still
            entry = None  # come; their rows wait in the journal's memory until it is back
        paths = self._verified(task_id, len(urls), entry)
        # A file recorded as undecodable is not fetched again: the same bytes would come back.
        lost: dict[int, errors.GrokError] = {
            bad.index: errors.NotAnImageError(bad.reason)
            for bad in (entry.failed_files if entry is not None else ())
            if bad.index < len(paths) and paths[bad.index] is None
        }
        missing = [i for i, path in enumerate(paths) if path is None and i not in lost]
        unkept: dict[int, OSError] = {}
        if missing:
            check_cancel(hooks, task_id)
            api = client.get()  # made once, before the pool: the client is shared by its threads
            download = _Download(self, api, task_id, urls, hooks)
            emit(hooks, events.Downloading(task_id, len(missing), len(urls)))
            arrived, failed = download.side_by_side(missing)
            for index, path in arrived.items():
                paths[index] = path
            lost.update(failed)
            unkept = download.unkept
        return _outcome(self.files, task_id, urls, paths, lost, unkept, hooks, resumed)

    def _verified(self, task_id: str, count: int, entry: JournalEntry | None) -> Paths:
        recorded = {f.index: f for f in entry.files} if entry is not None else {}
        paths: Paths = []
        for index in range(count):
            known = recorded.get(index)
            paths.append(self.files.verified(task_id, index, known.sha256) if known else None)
        return paths


class _Download:
    """One task's missing files, fetched side by side on one client."""

    def __init__(
        self,
        results: ResultFiles,
        api: ApiClient,
        task_id: str,
        urls: Sequence[str],
        hooks: RunHooks,
    ) -> None:
        self.journal, self.files = results.journal, results.files
        self.api = api
        self.task_id = task_id
        self.urls = urls
        self.hooks = hooks
        self.unkept: dict[int, OSError] = {}
        """Files that arrived but could not be written to disk (returned from memory)."""

    def side_by_side(
        self, missing: Sequence[int]
    ) -> tuple[dict[int, Path | bytes], dict[int, errors.GrokError]]:
        """(what arrived, what will never be had), by index. A task's files download side by
        side (most of the node's overhead after the task is done)."""
        arrived: dict[int, Path | bytes] = {}
        lost: dict[int, errors.GrokError] = {}
        workers = min(DOWNLOAD_WORKERS, len(missing))
        pool = ThreadPoolExecutor(workers, thread_name_prefix="grok-download")
        try:
            fetched = {index: pool.submit(self.fetch, index) for index in missing}
            for index, future in fetched.items():
                try:
                    arrived[index] = future.result()
                except PERMANENT_FILE_ERRORS as exc:
                    lost[index] = exc
        except BaseException:
            # Cancel, Ctrl-C or a network failure: return now. Files already on their way
            # still finish and are kept in the background; queued ones are dropped.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return arrived, lost

    def fetch(self, index: int) -> Path | bytes:
        check_cancel(self.hooks, self.task_id)
        url, count = self.urls[index], len(self.urls)
        try:
            blob = self.api.download(url)
        except errors.ResultExpiredError as exc:
            raise _expired_error(self.task_id, index, count, self.files, exc) from exc
        try:
            # A kept file is a decodable file. Its pixels ride on in the FileKept event
            # (closed once it is delivered), so a node does not decode it a second time.
            verified = verify_image(blob.data, keep_decoded=True)
        except (errors.NotAnImageError, errors.TooLargeError) as exc:
            failure = type(exc)(
                said(
                    What.FILE_NOT_KEPT,
                    number=index + 1,
                    count=count,
                    task_id=self.task_id,
                    reason=errors.happened(exc),
                )
            )
            self.journal.record_file_failure(self.task_id, index, str(failure), url)
            raise failure from exc
        try:
            return self.keep(index, blob.data, blob.image_format, verified)
        finally:
            if verified.image is not None:
                verified.image.close()

    def keep(
        self, index: int, data: bytes, image_format: str | None, verified: VerifiedImage
    ) -> Path | bytes:
        task_id, total = self.task_id, len(self.urls)
        try:
            stored = self.files.save(task_id, index, data, image_format, verified=verified)
        except OSError as exc:  # disk full or read-only: shown from memory, not kept
            self.unkept[index] = OSError(exc.errno, exc.strerror)
            emit(self.hooks, events.FileKept(task_id, index, total, None, data, verified.image))
            return data
        try:
            self.journal.record_file(
                task_id, index, stored.path, stored.sha256, stored.size, self.urls[index]
            )
        except Exception:  # kept on disk; the next run fetches it again (free)
            logger.warning("could not record kept file %s", stored.path, exc_info=True)
        kept = events.FileKept(task_id, index, total, stored.path, data, verified.image)
        emit(self.hooks, kept)
        return stored.path


def _outcome(
    files: FileStore,
    task_id: str,
    urls: Sequence[str],
    paths: Paths,
    lost: dict[int, errors.GrokError],
    unkept: dict[int, OSError],
    hooks: RunHooks,
    resumed: bool,
) -> TaskResult:
    """What the task's files came to; the losses said once (raised when nothing came)."""
    if lost and all(path is None for path in paths):
        raise lost[min(lost)]
    if lost:
        # Paid images that did arrive are never withheld because a sibling cannot be had.
        event = events.FilesLost(task_id, len(lost), len(urls), lost[min(lost)])
        logger.warning("%s", events.describe(event), extra={events.LOGGED_EVENT: event})
        emit(hooks, event)
    if unkept:
        not_kept = events.FilesNotKept(
            task_id, len(unkept), len(urls), files.task_dir(task_id), unkept[min(unkept)]
        )
        logger.warning("%s", events.describe(not_kept), extra={events.LOGGED_EVENT: not_kept})
        emit(hooks, not_kept)
    kept = [path for path in paths if isinstance(path, Path)]
    sources = tuple(path for path in paths if path is not None) if unkept else ()
    shown = tuple(safe_url(url) for url in urls)
    return TaskResult(task_id, kept, shown, reused=False, resumed=resumed, sources=sources)


def report_recorded_failures(entry: JournalEntry, hooks: RunHooks) -> None:
    """Kept results served without the files recorded as bad: say which and why, every time."""
    if entry.failed_files and entry.task_id is not None:
        first = entry.failed_files[0]
        event = events.FilesLost(
            entry.task_id,
            len(entry.failed_files),
            len(entry.result_urls),
            errors.NotAnImageError(first.reason),
        )
        emit(hooks, event)


def _expired_error(
    task_id: str, index: int, count: int, files: FileStore, cause: errors.ResultExpiredError
) -> errors.ResultExpiredError:
    answer: Fact = said(What.COMMA_HTTP, status=cause.status) if cause.status else ""
    folder = str(files.task_dir(task_id))
    error = errors.ResultExpiredError(
        said(
            What.EXPIRED_NOT_KEPT,
            task_id=task_id,
            number=index + 1,
            count=count,
            answer=answer,
            folder=folder,
        ),
        status=cause.status,
    )
    error.task_id = task_id
    return error
