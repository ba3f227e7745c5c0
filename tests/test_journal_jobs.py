"""The one job runner the nodes and the CLI share: order, bounds, failures, stopping."""

from __future__ import annotations

import threading

import pytest
from support import submodule

jobs = submodule("journal.jobs")


def test_outcomes_come_back_in_job_order_and_a_failure_stops_no_other():
    release = [threading.Event() for _ in range(4)]

    def work(index: int) -> int:
        if index == 0:
            release[3].wait(10)  # the first job ends last
        if index == 1:
            raise ValueError("job 1 failed")
        release[index].set()
        return index * 10

    outcomes = jobs.run_jobs(4, work)
    assert outcomes[0] == 0 and outcomes[2:] == [20, 30]
    assert isinstance(outcomes[1], ValueError)


def test_at_most_workers_jobs_run_at_once():
    lock = threading.Lock()
    running, most = [0], [0]
    gate = threading.Barrier(3, timeout=10)

    def work(index: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        if index < 3:
            gate.wait()  # the first three meet: three run side by side
        with lock:
            running[0] -= 1
        return index

    assert jobs.run_jobs(9, work, workers=3) == list(range(9))
    assert most[0] == 3


def test_one_job_without_a_watcher_runs_on_the_calling_thread():
    assert jobs.run_jobs(1, lambda i: threading.current_thread()) == [threading.current_thread()]
    assert jobs.run_jobs(0, lambda i: i) == []


def test_a_stop_leaves_a_job_stuck_on_the_wire_behind():
    stuck, stop, ticks = threading.Event(), threading.Event(), []

    def work(index: int) -> str:
        if index == 1:
            stop.set()
            stuck.wait(30)  # never set while the caller waits: a request that does not return
        return f"done {index}"

    with pytest.raises(jobs.JobsStopped) as caught:
        jobs.run_jobs(2, work, stop=stop.is_set, tick=lambda: ticks.append(1), grace_s=0.1)
    assert caught.value.outcomes == ["done 0", jobs.PENDING]
    stuck.set()


def test_a_stop_heard_after_the_last_job_ended_is_still_a_stop():
    stop = threading.Event()

    def work(index: int) -> int:
        stop.set()
        return index

    with pytest.raises(jobs.JobsStopped) as caught:
        jobs.run_jobs(1, work, stop=stop.is_set)
    assert caught.value.outcomes == [0]
