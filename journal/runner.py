"""Fetch or create: the one place that decides whether a request costs money.

For every request the runner asks the journal first, under a claim that threads (an in-process
lock per identity) and processes (SQLite's ``BEGIN IMMEDIATE``) take in turn:

* finished earlier and the files are on disk -> the files, and not one API call;
* a task id exists but the task is not finished (Cancel, node timeout, ``kill -9``) -> poll that
  task again, no new create;
* the last attempt failed or was refused -> a new create (failed tasks are not charged);
* a create was sent and its answer lost, or its process died mid-request -> ``uncertain``: the
  user is told what happened and what to do, and nothing is re-sent behind their back;
* its process died while the create waited for its turn (``waiting``: nothing was sent) -> that
  attempt is settled as never sent, and a new create is made;
* another live process is creating the same request right now, or waiting for its turn to ->
  wait for its task id and share the task;
* a new create would take today's spending over the daily credit limit -> refused before
  anything is sent (``spend_limit.SpendLimitError``). ``reserve`` does the same for a whole run
  at once, so a node's run is sent whole or not at all; reused and resumed requests cost nothing
  and are never refused.

The client factory is called only when an API call is needed; the runner closes what it returns.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from ..api import errors, validation
from ..api.messages import Fact, Message, said
from ..api.task import DEFAULT_TASK_TIMEOUT_S, Task, TaskState
from ..api.what import What
from . import durability, events
from .client import ApiClient, ClientFactory, LazyClient
from .files import FileStore
from .hooks import RunHooks, check_cancel, emit
from .identity import RequestIdentity
from .model import JournalEntry, Reservation, State, request_note
from .result import TaskResult
from .result_files import ResultFiles
from .spend_limit import NO_LIMIT, DailyLimit, SpendLimitConfigError, SpendLimitError, day_start
from .store import (
    Claim,
    JournalStore,
    JournalUnavailableError,
    LedgerClaim,
    SettledWhileWaitingError,
    SpendLedger,
)
from .waits import (
    creator_may_still_be_sending,
    exclusive,
    wait_for_create_turn,
    wait_for_other_process,
)

logger = logging.getLogger(__name__)

__all__ = ["NotUncertainError", "RunHooks", "TaskResult", "TaskRunner", "UncertainTaskError"]


class UncertainTaskError(errors.UncertainCreateError):
    """A create may have been taken and charged, but its task id never reached us.

    Raised every time the same request is queued again, until the user decides: nothing is
    re-sent on their behalf, because a second create would be a second charge.
    """

    def __init__(self, message: Message | str, entry: JournalEntry | None = None) -> None:
        super().__init__(message)
        self.entry = entry
        self.source_task_id = entry.source_task_id if entry is not None else None
        self.journal_row = entry.id if entry is not None else None


class NotUncertainError(errors.InvalidRequestError):
    """Only a row in the ``uncertain`` state can be resolved."""

    def __init__(self, entry_id: int, state: str | None) -> None:
        super().__init__(
            said(What.ROW_IS, row=entry_id, state=state)
            if state
            else said(What.NO_SUCH_ROW, row=entry_id),
            field="entry",
        )
        self.entry_id = entry_id
        self.state = state


class TaskRunner:
    """``TaskRunner(client_factory, journal, files)``: never pay twice, never lose a paid image."""

    def __init__(
        self,
        client_factory: ClientFactory,
        journal: JournalStore,
        files: FileStore,
        api_base: str = "",
        daily_limit: Callable[[], DailyLimit] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client_factory = client_factory
        self.api_base = api_base
        """The API's base URL, part of every request identity (sandbox tasks stay apart)."""
        self.journal = journal
        self.files = files
        self.results = ResultFiles(journal, files)
        """The tasks' result files: kept ones reused, missing ones fetched and kept."""
        # A journal salvaged from a damaged file: tasks its rows lost but whose folders name
        # them (.request.json) come back too, so they are resumed, not paid again.
        journal.adopt_noted(files.noted_tasks)
        self.daily_limit = daily_limit or (lambda: NO_LIMIT)
        """Read at every decision to spend, so a changed setting applies to the next run."""
        self.clock = clock
        """What "today" is for the limit (tests move it across midnight)."""

    # -- what a request is, and setting its credits aside ------------------------------------

    def text_to_image_request(
        self, prompt: str, aspect_ratio: str | None = None, seed: int = 0, index: int = 0
    ) -> RequestIdentity:
        prompt = validation.validate_prompt(prompt)
        aspect_ratio = validation.validate_aspect_ratio(aspect_ratio) if aspect_ratio else None
        return RequestIdentity.text_to_image(prompt, aspect_ratio, seed, index, self.api_base)

    def upscale_request(
        self, source_task_id: str, seed: int = 0, index: int = 0
    ) -> RequestIdentity:
        source_task_id = validation.validate_task_id(source_task_id)
        return RequestIdentity.upscale(source_task_id, seed, index, self.api_base)

    @contextmanager
    def reserve(self, requests: Sequence[RequestIdentity]) -> Iterator[Reservation | None]:
        """Set aside the credits of every new create of a run, or refuse the run whole.

        Raises ``SpendLimitError`` (nothing written, nothing sent) when the run's new creates
        would take today's spending over the limit; requests that will be reused or resumed need
        nothing. Reservations no create took over are dropped when the block ends.
        """
        try:
            limit = self.daily_limit()
        except SpendLimitConfigError:
            limit = None  # unreadable: only a run that needs nothing may go on
        reservation = None
        if not isinstance(self.journal, SpendLedger):
            limit = NO_LIMIT  # no ledger: each create refuses itself (``_check_limit``)
        credits = 0 if limit is None else limit.credits  # unreadable: nothing may be set aside
        if credits is not None:
            since = day_start(self.clock())
            reservation = _ledger(self.journal).reserve(requests, limit=credits, since=since)
            if not reservation.granted:
                if limit is None:
                    self.daily_limit()  # raises the unreadable-limit error again, for its text
                assert limit is not None
                raise SpendLimitError(reservation.spent, limit, reservation.need)
        try:
            yield reservation
        finally:
            if reservation is not None and reservation.entries:
                try:
                    _ledger(self.journal).release([entry.id for entry in reservation.entries])
                except Exception:  # counted a little longer, never spent: not worth a failure
                    logger.warning("could not release credit reservations", exc_info=True)

    # -- the public face --------------------------------------------------------------------------

    def text_to_image(
        self,
        prompt: str,
        aspect_ratio: str | None = None,
        seed: int = 0,
        index: int = 0,
        timeout: float = DEFAULT_TASK_TIMEOUT_S,
        hooks: RunHooks | None = None,
    ) -> TaskResult:
        """Images for this prompt: kept ones, a resumed task's, or a new task's (5 credits)."""
        identity = self.text_to_image_request(prompt, aspect_ratio, seed, index)
        return self._fetch_or_create(
            identity,
            lambda client, send: client.create_text_to_image(
                identity.prompt or "",
                aspect_ratio=identity.aspect_ratio,
                should_cancel=send.should_cancel,
                rate_limit_wait=send.rate_limit_wait(),
                on_rate_limited=send.on_rate_limited,
            ),
            timeout,
            hooks or RunHooks(),
        )

    def upscale(
        self,
        source_task_id: str,
        seed: int = 0,
        timeout: float = DEFAULT_TASK_TIMEOUT_S,
        hooks: RunHooks | None = None,
        index: int = 0,
    ) -> TaskResult:
        """The upscale of a finished text-to-image task: kept, resumed or new (12 credits)."""
        identity = self.upscale_request(source_task_id, seed, index)
        source_task_id = identity.source_task_id or source_task_id
        return self._fetch_or_create(
            identity,
            lambda client, send: client.create_upscale(
                source_task_id,
                should_cancel=send.should_cancel,
                rate_limit_wait=send.rate_limit_wait(),
                on_rate_limited=send.on_rate_limited,
            ),
            timeout,
            hooks or RunHooks(),
        )

    def load(
        self, task_id: str, timeout: float = DEFAULT_TASK_TIMEOUT_S, hooks: RunHooks | None = None
    ) -> TaskResult:
        """Results of an existing task, by id. Never creates anything, so it is always free."""
        task_id = validation.validate_task_id(task_id)
        hooks = hooks or RunHooks()
        turn = exclusive(self.journal, f"task:{task_id}", hooks)
        with turn, LazyClient(self.client_factory) as client:
            entry = self.journal.get(task_id)
            if entry is not None and entry.state == State.SUCCEEDED and entry.result_urls:
                reused = self.results.reuse(task_id, entry, hooks)
                if reused is not None:
                    return reused
                return self.results.fetch(client, task_id, entry.result_urls, hooks, False)
            task = client.get().get_task(task_id)  # an unknown id stops here, leaving no row
            if entry is None:
                self.journal.record_loaded(task_id)
            if task.state not in (TaskState.SUCCEEDED, TaskState.FAILED):
                emit(hooks, events.WaitingForTask(task_id, task.state))
            return self._finish(client, task_id, timeout, hooks, resumed=False)

    def resolve(
        self,
        entry_id: int,
        task_id: str | None,
        timeout: float = DEFAULT_TASK_TIMEOUT_S,
        hooks: RunHooks | None = None,
    ) -> TaskResult | None:
        """Settle an ``uncertain`` create the user looked up in the provider's dashboard.

        With the task id they found: the id is checked with the API (an unknown id changes
        nothing), recorded on the row, and the task's images fetched and kept like any other
        (free). With None: the row is marked as never created (0 credits), so the same inputs
        create anew next time. Raises ``NotUncertainError`` for a row that is not uncertain.
        """
        entry = self.journal.entry(entry_id)
        if entry is None or entry.state != State.UNCERTAIN:
            raise NotUncertainError(entry_id, entry.state if entry else None)
        if task_id is None:
            _ledger(self.journal).resolve_uncertain(entry_id, None)
            return None
        task_id = validation.validate_task_id(task_id)
        known = self.journal.get(task_id)
        if known is not None:
            raise errors.InvalidRequestError(
                said(What.TASK_ALREADY_KNOWN, task_id=task_id, row=known.id), field="task_id"
            )
        with LazyClient(self.client_factory) as client:
            client.get().get_task(task_id)  # an unknown id stops here, the row unchanged
        if _ledger(self.journal).resolve_uncertain(entry_id, task_id) is None:
            raise NotUncertainError(entry_id, None)
        return self.load(task_id, timeout, hooks)

    # -- deciding ---------------------------------------------------------------------------------

    def _fetch_or_create(
        self,
        identity: RequestIdentity,
        create: _Create,
        timeout: float,
        hooks: RunHooks,
    ) -> TaskResult:
        deadline = time.monotonic() + timeout
        turn = exclusive(self.journal, identity.key, hooks)
        with turn, LazyClient(self.client_factory) as client:
            while True:
                action, entry = self._decide(identity)
                if action == "wait":
                    wait_for_other_process(self.journal, identity, entry, hooks, deadline)
                    continue
                if action != "create":
                    break
                try:
                    return self._create(client, entry, create, _Send(hooks, deadline), timeout)
                except SettledWhileWaitingError:
                    continue  # another process took the request over while this one waited

            if action == "uncertain":
                raise _uncertain_error(entry)
            assert entry.task_id is not None
            if action == "done":
                reused = self.results.reuse(entry.task_id, entry, hooks)
                if reused is not None:
                    return reused
                emit(hooks, events.RefetchingKeptFiles(entry.task_id))
                return self.results.fetch(client, entry.task_id, entry.result_urls, hooks, True)
            emit(hooks, events.TaskResumed(entry.task_id, _age_s(entry)))
            return self._finish(client, entry.task_id, timeout, hooks, resumed=True)

    def _decide(self, identity: RequestIdentity) -> tuple[str, JournalEntry]:
        """One atomic look at the journal: create / done / resume / wait / uncertain."""
        with (
            durability.probed_ahead(self._create_folders(identity)),
            self.journal.claim(identity) as claim,
        ):
            latest = claim.latest
            if latest is not None and latest.state == State.WAITING:
                latest = _settle_if_never_sent(claim, latest)
            if latest is None or latest.state in State.UNCHARGED:
                # Fail closed: a create is sent only if its result can be remembered (the
                # journal checks itself in start_create) and its files kept.
                self.files.check_writable()
                self._check_limit(claim, identity.credits)
                return "create", claim.start_create()
            if latest.state == State.RESERVED:  # only a SpendLedger store writes these
                self.files.check_writable()
                return "create", cast(LedgerClaim, claim).take_reservation(latest)
            if latest.task_id is not None:
                return ("done" if latest.state == State.SUCCEEDED else "resume"), latest
            if latest.state in State.OWNED_CREATE:
                if latest.state == State.WAITING or creator_may_still_be_sending(latest):
                    return "wait", latest
                # Its process is gone (or it is us, and our identity lock says no thread of ours
                # is creating it): the create may have been sent, its answer never recorded.
                claim.mark_uncertain(
                    latest.id,
                    "the process that sent the create request ended before the API's answer "
                    "was recorded",
                )
                assert claim.latest is not None
                return "uncertain", claim.latest
            return "uncertain", latest

    def _create_folders(self, identity: RequestIdentity) -> tuple[tuple[Path, str], ...]:
        """The folders a create needs written, if a look without the lock says one is likely:
        their synced probes are then made before the claim, not inside the journal file's
        lock, which every request of the process takes in turn. Reused and resumed requests
        never probe; a database journal (no local folder) keeps its claim as it is, saving
        the look's round trip."""
        journal_folders = self.journal.create_folders()
        if not journal_folders:
            return ()
        try:
            latest = self.journal.latest(identity)
        except Exception:  # the claim reads again and decides; this is only a head start
            return ()
        if latest is not None and latest.state not in State.UNCHARGED | {State.RESERVED}:
            return ()
        return (*journal_folders, *self.files.create_folders())

    def _check_limit(self, claim: Claim, credits: int) -> None:
        """Refuse a create that would go over today's limit (inside the claim: atomic)."""
        limit = self.daily_limit()
        if limit.credits is None:
            return
        _ledger(self.journal)  # a store without a ledger cannot keep a limit: refuse
        spent = cast(LedgerClaim, claim).spent(day_start(self.clock()))
        if spent + credits > limit.credits:
            raise SpendLimitError(spent, limit, credits)

    # -- doing ------------------------------------------------------------------------------------

    def _create(
        self,
        client: LazyClient,
        entry: JournalEntry,
        create: _Create,
        send: _Send,
        timeout: float,
    ) -> TaskResult:
        """Wait for the create's turn, send it (HTTP 429 waited out, both within the task's
        timeout), record its task id, then wait for the task and keep its files."""
        hooks = send.hooks
        try:
            api = client.get()
            check_cancel(hooks, None)
            wait_for_create_turn(self.journal, entry, hooks, send.deadline)
        except SettledWhileWaitingError:
            raise  # the row is another's to settle now: nothing was sent, nothing to mark
        except BaseException as exc:  # no key, Cancel, no turn in time: nothing was sent
            self.journal.mark(entry.id, State.REJECTED, errors.what_happened(exc))
            raise
        try:
            task_id = create(api, send)
        except (errors.UncertainCreateError, errors.BadResponseError) as exc:
            reason = getattr(exc, "reason", None) or errors.what_happened(exc)
            self.journal.mark(entry.id, State.UNCERTAIN, reason)
            raise _uncertain_error(_reread(self.journal, entry)) from exc
        except errors.GrokError as exc:  # the API refused it: no task, no charge
            self.journal.mark(entry.id, State.REJECTED, errors.what_happened(exc))
            raise
        except BaseException as exc:  # interrupted mid-request: we cannot know
            self.journal.mark(entry.id, State.UNCERTAIN, f"interrupted: {type(exc).__name__}")
            raise
        try:
            self.journal.record_task_id(entry, task_id)
        except Exception:  # a busy or full disk must not cost the paid task: say its id, go on
            logger.warning(
                "could not write task id %s to the journal; fetch it later with Grok Load Task",
                task_id,
                exc_info=True,
            )
        try:  # a second record of the paid task, outside the journal
            self.files.note_task(task_id, request_note(entry))
        except Exception as exc:
            logger.info("could not note task %s in its folder: %s", task_id, exc)
        emit(hooks, events.TaskCreated(task_id, entry.credits))
        result = self._finish(client, task_id, timeout, hooks, resumed=False)
        return dataclasses.replace(result, credits=entry.credits)

    def _finish(
        self,
        client: LazyClient,
        task_id: str,
        timeout: float,
        hooks: RunHooks,
        *,
        resumed: bool,
    ) -> TaskResult:
        """Wait for the task, record how it ended, download and keep its files."""
        last_state: list[str | None] = [None]

        def on_update(task: Task, elapsed: float) -> None:
            state = _JOURNAL_STATES.get(task.state)
            if state is not None and state != last_state[0]:
                last_state[0] = state
                try:
                    self.journal.record_state(task_id, state)
                except Exception:  # a busy journal must not break a paid wait
                    logger.warning("could not record state of task %s", task_id, exc_info=True)
            emit(hooks, events.TaskUpdated(task, elapsed))

        try:
            task = client.get().wait(
                task_id, timeout=timeout, on_update=on_update, should_cancel=hooks.should_cancel
            )
        except errors.TaskFailedError as exc:
            self.journal.record_state(task_id, State.FAILED, error=errors.what_happened(exc))
            raise
        except errors.TaskNotFoundError:
            # Our own create returned this id, so the task exists and was paid for: a "not found"
            # (a proxy's 404, upstream's brief "recordInfo is null") must not turn it into a
            # failed row that the next queue would create again. It stays resumable.
            raise
        urls = tuple(task.result_urls)
        try:
            self.journal.record_state(task_id, State.SUCCEEDED, result_urls=urls)
        except Exception:  # a full disk: the images are still fetched and returned
            logger.warning("could not record that task %s finished", task_id, exc_info=True)
        return self.results.fetch(client, task_id, urls, hooks, resumed)


@dataclass(frozen=True)
class _Send:
    """How a create is sent: Cancel heard, and HTTP 429 waited out until the task's
    ``deadline`` (``time.monotonic()``), each wait shown as ``WaitingOutRateLimit``."""

    hooks: RunHooks
    deadline: float

    @property
    def should_cancel(self) -> Callable[[], bool] | None:
        return self.hooks.should_cancel

    def rate_limit_wait(self) -> float:
        """Seconds left for waiting out HTTP 429, as the create is sent."""
        return max(0.0, self.deadline - time.monotonic())

    def on_rate_limited(self, wait_s: float) -> None:
        emit(self.hooks, events.WaitingOutRateLimit(wait_s))


_Create = Callable[[ApiClient, _Send], str]
"""Sends the create request on a client; returns the new task id."""
_JOURNAL_STATES = {TaskState.QUEUED: State.QUEUED, TaskState.RUNNING: State.RUNNING}
_PERMANENT_FILE_ERRORS = (errors.ResultExpiredError, errors.NotAnImageError, errors.TooLargeError)
"""A result file that will never be had: the task's other files are still returned."""


def _reread(journal: JournalStore, entry: JournalEntry) -> JournalEntry:
    """The row as the journal has it now, else as we last saw it (a shared journal may be away:
    the uncertain create must still be reported as such)."""
    try:
        return journal.entry(entry.id) or entry
    except JournalUnavailableError:
        return entry


def _ledger(journal: JournalStore) -> SpendLedger:
    if not isinstance(journal, SpendLedger):
        raise SpendLimitConfigError(said(What.NO_SPENDING_LEDGER, where=journal.where))
    return journal


NEVER_SENT = "its process ended while it waited for its turn to create; nothing was sent"
"""Why a ``waiting`` row whose owner is gone was settled (``rejected``, 0 credits)."""


def _settle_if_never_sent(claim: Claim, latest: JournalEntry) -> JournalEntry | None:
    """A ``waiting`` row whose owner is gone (or is us, and our identity lock says no thread of
    ours waits on it) was never sent: settled as such, so a new create is made in its place.
    The row as it is now (a worker whose turn came meanwhile keeps it: it is waited for)."""
    if creator_may_still_be_sending(latest):
        return latest
    claim.settle_unsent(latest.id, NEVER_SENT)
    return claim.latest


def _age_s(entry: JournalEntry) -> float:
    return entry.now() - (entry.task_created_at or entry.created_at)


def _describe(entry: JournalEntry) -> Message:
    seed, index = str(entry.seed), str(entry.index)
    if entry.source_task_id:
        return said(
            What.UPSCALE_REQUEST, source_task_id=entry.source_task_id, seed=seed, index=index
        )
    prompt = entry.prompt or ""
    shown = prompt[:40] + ("..." if len(prompt) > 40 else "")
    return said(What.PROMPT_REQUEST, prompt=shown, seed=seed, index=index)


def _uncertain_error(entry: JournalEntry) -> UncertainTaskError:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.created_at))
    reason: Fact = said(What.DETAIL, detail=entry.error) if entry.error else ""
    request = _describe(entry)
    return UncertainTaskError(
        said(What.UNCERTAIN_ROW, request=request, when=when, reason=reason, credits=entry.credits),
        entry,
    )
