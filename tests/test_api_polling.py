"""The poll schedule's maths and the wait loop's rules, on a simulated clock (no HTTP, no sleeping).

The wait loop takes its clock, its sleep and its status read as arguments; here the clock only
moves when the loop sleeps, so every assertion about *when* is exact and nothing is timed.
"""

from __future__ import annotations

import random
import threading
from itertools import pairwise

import pytest
from support import submodule

errors = submodule("api.errors")
polling = submodule("api.polling")
task_mod = submodule("api.task")

PollSchedule = polling.PollSchedule
Task = task_mod.Task
TaskState = task_mod.TaskState
URL = "https://cdn.example/a.jpg"


class SimClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class FakeTask:
    """A task that runs from t=0 and ends at ``done_at`` (simulated seconds)."""

    def __init__(
        self,
        clock: SimClock,
        done_at: float,
        *,
        fails: str | None = None,
        urls: tuple[str, ...] = (URL,),
    ) -> None:
        self.clock = clock
        self.done_at = done_at
        self.fails = fails
        self.urls = urls
        self.reads: list[float] = []
        self.errors: list[BaseException] = []  # raised by the next reads, in order

    def read(self) -> Task:
        self.reads.append(self.clock.now)
        if self.errors:
            raise self.errors.pop(0)
        if self.clock.now < self.done_at:
            state = TaskState.QUEUED if self.clock.now < 1.0 else TaskState.RUNNING
            return Task("t1", state, raw_status=state.value)
        if self.fails is not None:
            return Task("t1", TaskState.FAILED, error=self.fails, raw_status="failed")
        return Task("t1", TaskState.SUCCEEDED, result_urls=self.urls, raw_status="completed")


def run(task: FakeTask, clock: SimClock, schedule: PollSchedule | None = None, **kwargs):
    kwargs.setdefault("timeout", 600.0)
    kwargs.setdefault("created_at", 0.0)
    return polling.wait_for_task(
        task.read,
        "t1",
        schedule=schedule or PollSchedule(),
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(1),
        **kwargs,
    )


# -- schedule maths --------------------------------------------------------------------------------


def test_seven_second_task_costs_at_most_twelve_reads():
    assert len(PollSchedule().read_times(7.0)) <= 12


@pytest.mark.parametrize("done_at", [x / 10 for x in range(30, 101, 3)])
def test_three_to_ten_second_tasks_are_noticed_fast_and_cheaply(done_at):
    times = PollSchedule().read_times(done_at)
    gap = PollSchedule().fast_interval
    assert times[-1] - done_at <= gap + 1e-9  # completion noticed within one fast gap
    assert len(times) / times[-1] <= 2.0  # requests per second, create to notice


def test_long_tasks_back_off_to_a_few_seconds_between_reads():
    schedule = PollSchedule()
    times = schedule.read_times(600.0)
    gaps = [b - a for a, b in pairwise(times)]
    assert max(gaps) <= schedule.max_interval + 1e-9
    assert gaps[-1] == pytest.approx(schedule.max_interval)
    late = [g for t, g in zip(times, gaps, strict=False) if t > schedule.fast_until]
    assert all(b >= a - 1e-9 for a, b in pairwise(late))  # never faster again
    assert len(times) / 600.0 < 0.5
    for horizon in (1, 2, 5, 12, 20, 30, 60, 120, 300):
        assert len(schedule.read_times(horizon)) / schedule.read_times(horizon)[-1] <= 2.0


def test_scaled_shrinks_every_delay_but_not_the_ratios():
    schedule = PollSchedule().scaled(0.1)
    assert schedule.first_read == pytest.approx(0.15)
    assert schedule.fast_interval == pytest.approx(0.045)
    assert schedule.max_interval == pytest.approx(0.4)
    assert schedule.growth == PollSchedule().growth
    assert schedule.cancel_check == PollSchedule().cancel_check
    assert len(schedule.read_times(0.7)) == len(PollSchedule().read_times(7.0))
    with pytest.raises(ValueError):
        PollSchedule().scaled(0)


def test_poll_scale_env_var():
    assert PollSchedule.from_env({}) == PollSchedule()
    assert PollSchedule.from_env({"GROK_IMAGINE_POLL_SCALE": "0.05"}) == PollSchedule().scaled(0.05)
    assert PollSchedule.from_env({"GROK_IMAGINE_POLL_SCALE": "fast"}) == PollSchedule()
    assert PollSchedule.from_env({"GROK_IMAGINE_POLL_SCALE": "-1"}) == PollSchedule()


def test_schedule_refuses_nonsense():
    with pytest.raises(ValueError):
        PollSchedule(fast_interval=0)
    with pytest.raises(ValueError):
        PollSchedule(growth=0.5)
    with pytest.raises(ValueError):
        PollSchedule(first_read=float("nan"))


def test_backoff_doubles_and_is_capped():
    schedule = PollSchedule()
    assert [schedule.backoff(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert schedule.backoff(50) == schedule.max_error_backoff
    assert schedule.backoff(1, jitter=1.0) == pytest.approx(0.55)


# -- the wait loop ---------------------------------------------------------------------------------


def test_wait_follows_the_schedule_and_returns_the_finished_task():
    clock = SimClock()
    task = FakeTask(clock, done_at=7.0)
    result = run(task, clock)
    assert result.state is TaskState.SUCCEEDED and result.result_urls == (URL,)
    assert task.reads == pytest.approx(PollSchedule().read_times(7.0))
    assert len(task.reads) <= 12
    assert clock.now - 7.0 <= PollSchedule().fast_interval + 1e-9


def test_resumed_task_is_read_at_once():
    clock = SimClock()
    clock.now = 100.0
    task = FakeTask(clock, done_at=0.0)
    run(task, clock, created_at=None)
    assert task.reads == [100.0]


def test_should_cancel_is_checked_at_least_every_quarter_second():
    clock = SimClock()
    task = FakeTask(clock, done_at=40.0)
    checks: list[float] = []

    def should_cancel() -> bool:
        checks.append(clock.now)
        return False

    run(task, clock, should_cancel=should_cancel)
    gaps = [b - a for a, b in pairwise(checks)]
    assert max(gaps) <= 0.25 + 1e-9
    assert max(clock.sleeps) <= 0.25


def test_cancel_raises_with_the_task_id_promptly():
    clock = SimClock()
    task = FakeTask(clock, done_at=40.0)
    with pytest.raises(errors.CancelledError) as caught:
        run(task, clock, should_cancel=lambda: clock.now >= 5.0)
    assert caught.value.task_id == "t1"
    assert clock.now - 5.0 <= 0.25
    assert "keeps running" in str(caught.value)


def test_timeout_says_how_to_resume_after_a_last_read_at_the_deadline():
    clock = SimClock()
    task = FakeTask(clock, done_at=10_000.0)
    with pytest.raises(errors.TaskTimeoutError) as caught:
        run(task, clock, timeout=30.0)
    assert caught.value.task_id == "t1"
    assert task.reads[-1] == pytest.approx(30.0)
    message = str(caught.value)
    assert "t1" in message and "keeps running" in message and "Load Task" in message


def test_task_finishing_at_the_deadline_is_still_returned():
    clock = SimClock()
    task = FakeTask(clock, done_at=29.9)
    assert run(task, clock, timeout=30.0).state is TaskState.SUCCEEDED


@pytest.mark.parametrize(
    "make_error",
    [
        lambda: errors.NetworkError("reset"),
        lambda: errors.ServerError("bad gateway", status=502),
        lambda: errors.ServerError("maintenance", status=455),
        lambda: errors.BadResponseError("html"),
        lambda: errors.RateLimitedError("slow", retry_after=None),
    ],
)
def test_a_burst_of_passing_errors_never_ends_the_wait(make_error):
    clock = SimClock()
    task = FakeTask(clock, done_at=5.0)
    task.errors = [make_error() for _ in range(25)]
    result = run(task, clock)
    assert result.state is TaskState.SUCCEEDED
    assert len(task.reads) >= 26
    gaps = [b - a for a, b in pairwise(task.reads)]
    cap = PollSchedule().max_error_backoff
    assert max(gaps) <= cap * 1.1 + 1e-9  # backoff is capped...
    assert max(gaps) >= cap * 0.9  # ...and reached: the loop does back off


def test_retry_after_is_honoured():
    clock = SimClock()
    task = FakeTask(clock, done_at=0.0)
    task.errors = [errors.RateLimitedError("slow", retry_after=7.0)]
    run(task, clock)
    assert task.reads[1] - task.reads[0] >= 7.0


def test_only_the_timeout_ends_an_endless_error_burst():
    clock = SimClock()
    task = FakeTask(clock, done_at=0.0)
    task.errors = [errors.ServerError("down", status=503) for _ in range(10_000)]
    with pytest.raises(errors.TaskTimeoutError) as caught:
        run(task, clock, timeout=120.0)
    assert clock.now == pytest.approx(120.0, abs=0.5)
    assert len(task.reads) / 120.0 <= 2.0
    message = str(caught.value)  # says why: the reads failed, not the provider being slow
    assert "could not be read" in message and "down" in message and "Load Task" in message
    assert caught.value.last_error == "down"


def test_a_network_loss_at_the_deadline_is_named_in_the_timeout():
    clock = SimClock()
    task = FakeTask(clock, done_at=10_000.0)
    task.errors = [errors.NetworkError("Could not reach API in One (connection refused).")] * 99
    with pytest.raises(errors.TaskTimeoutError) as caught:
        run(task, clock, timeout=5.0)
    assert "connection refused" in str(caught.value) and "keeps running" in str(caught.value)


def test_a_recovered_network_gives_a_plain_timeout():
    clock = SimClock()
    task = FakeTask(clock, done_at=10_000.0)
    task.errors = [errors.NetworkError("refused")] * 3
    with pytest.raises(errors.TaskTimeoutError) as caught:
        run(task, clock, timeout=30.0)
    assert caught.value.last_error is None and "could not be read" not in str(caught.value)


@pytest.mark.parametrize(
    "error",
    [
        errors.AuthError("no"),
        errors.InsufficientCreditsError("poor"),
        errors.ServerError("off", status=505),
        errors.InvalidRequestError("bad", field="task_id"),
    ],
)
def test_errors_that_will_not_pass_end_the_wait(error):
    clock = SimClock()
    task = FakeTask(clock, done_at=5.0)
    task.errors = [error]
    with pytest.raises(type(error)):
        run(task, clock)
    assert len(task.reads) == 1


def test_not_found_right_after_our_create_is_given_a_grace_period():
    clock = SimClock()
    task = FakeTask(clock, done_at=4.0)
    task.errors = [errors.TaskNotFoundError("x", task_id="t1") for _ in range(3)]
    assert run(task, clock).state is TaskState.SUCCEEDED

    clock = SimClock()
    task = FakeTask(clock, done_at=4.0)
    task.errors = [errors.TaskNotFoundError("x", task_id="t1")]
    with pytest.raises(errors.TaskNotFoundError):
        run(task, clock, created_at=None)  # a task we did not just create: believe it


def test_failure_carries_the_reason_and_moderation_is_its_own_kind():
    clock = SimClock()
    with pytest.raises(errors.TaskFailedError) as caught:
        run(FakeTask(clock, done_at=4.0, fails="upstream exploded"), clock)
    assert not isinstance(caught.value, errors.ModerationError)
    assert caught.value.reason == "upstream exploded" and caught.value.task_id == "t1"
    assert "not charged" in str(caught.value)

    clock = SimClock()
    with pytest.raises(errors.ModerationError) as caught:
        run(FakeTask(clock, done_at=4.0, fails="Content policy violation: flagged"), clock)
    assert "Content policy violation" in str(caught.value)


@pytest.mark.parametrize(
    "reason",
    [
        "NSFW content detected",
        "blocked by safety system",
        "prompt violates our policy",
        "moderation",
    ],
)
def test_moderation_wordings(reason):
    task = Task("t1", TaskState.FAILED, error=reason)
    assert isinstance(polling.failure_error(task), errors.ModerationError)


def test_success_without_urls_is_a_bad_response_naming_the_task():
    clock = SimClock()
    task = FakeTask(clock, done_at=3.0, urls=())
    with pytest.raises(errors.BadResponseError) as caught:
        run(task, clock)
    assert "t1" in str(caught.value)
    noticed = len(PollSchedule().read_times(3.0))
    assert len(task.reads) == noticed + polling.EMPTY_SUCCESS_REREADS


def test_on_update_reports_each_change_once_with_elapsed_time():
    clock = SimClock()
    task = FakeTask(clock, done_at=6.0)
    seen: list[tuple[str, float]] = []
    run(task, clock, on_update=lambda t, elapsed: seen.append((t.state.value, elapsed)))
    assert [s for s, _ in seen] == ["running", "succeeded"]
    assert seen[0][1] == pytest.approx(1.5)
    assert all(b >= a for (_, a), (_, b) in pairwise(seen))


def test_cancel_is_answered_while_a_status_read_hangs():
    """A stalled gateway can hold a read for the whole read timeout; Cancel must not wait."""
    release = threading.Event()
    started = threading.Event()

    def hanging_read() -> Task:
        started.set()
        release.wait(60)
        return Task("t1", TaskState.RUNNING)

    def should_cancel() -> bool:
        return started.is_set()

    try:
        with pytest.raises(errors.CancelledError) as caught:
            polling.wait_for_task(
                hanging_read,
                "t1",
                schedule=PollSchedule(),
                timeout=600.0,
                should_cancel=should_cancel,
                created_at=None,
            )
        assert caught.value.task_id == "t1"
        assert not release.is_set()  # it returned while the read was still hanging
    finally:
        release.set()


def test_errors_raised_inside_a_cancellable_read_keep_their_type():
    def failing_read() -> Task:
        raise errors.AuthError("no")

    with pytest.raises(errors.AuthError):
        polling.wait_for_task(
            failing_read,
            "t1",
            schedule=PollSchedule(),
            timeout=5.0,
            should_cancel=lambda: False,
            created_at=None,
        )
