"""The sink runner: order of entry and exit, restarts with backoff and one alert per distinct failure,
sinks that cannot start yet, and the status it reports."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import pytest

from appliance.contracts import Event, EventType, ZoneLayout, ZoneShape
from appliance.hub import Hub
from appliance.integrations.base import Backoff, Sink, SinkStats
from appliance.integrations.reports import ReportSettings, ScheduledReports, next_run
from appliance.integrations.runner import SinkRunner
from appliance.store.database import Database
from appliance.store.history import HistoryStore
from tests.factories import T0, frames
from tests.history_support import record_all


class Recording(Sink):
    """A sink that notes what happens to it; ``fail_runs`` of its runs raise, ``fail_enters`` entries too."""

    def __init__(self, name: str, log: list[str], *, fail_runs: int = 0, fail_enters: int = 0) -> None:
        self.name = name
        self.log = log
        self.fail_runs = fail_runs
        self.fail_enters = fail_enters
        self.runs = 0

    async def __aenter__(self) -> Recording:
        if self.fail_enters:
            self.fail_enters -= 1
            raise ConnectionRefusedError("broker not up yet")
        self.log.append(f"enter {self.name}")
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.log.append(f"exit {self.name}")

    async def run(self) -> None:
        self.runs += 1
        if self.fail_runs:
            self.fail_runs -= 1
            raise RuntimeError("delivery went wrong")
        await asyncio.Event().wait()

    def stats(self) -> SinkStats:
        return SinkStats(connected=True, delivered=self.runs)


async def wait_for(condition: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_sinks_enter_in_order_and_exit_in_reverse() -> None:
    log: list[str] = []
    hub = Hub()
    async with SinkRunner([Recording("a", log), Recording("b", log)], hub) as runner:
        assert log == ["enter a", "enter b"]
        await wait_for(lambda: all(s.state == "running" for s in runner.status()))
    assert log == ["enter a", "enter b", "exit b", "exit a"]
    assert [s.state for s in runner.status()] == ["stopped", "stopped"]


async def test_a_failing_sink_is_restarted_and_announced_once_per_error() -> None:
    log: list[str] = []
    hub = Hub()
    alerts = hub.subscribe("alerts", ("alert/#",), maxsize=None)
    flaky = Recording("flaky", log, fail_runs=3)
    steady = Recording("steady", log)
    async with SinkRunner([flaky, steady], hub, first_backoff_s=0.01, max_backoff_s=0.02) as runner:
        await wait_for(lambda: flaky.runs == 4)
        await wait_for(lambda: runner.status()[0].state == "running")
        status = runner.status()[0]
        assert status.restarts == 3 and status.last_failure == "RuntimeError: delivery went wrong"
        assert steady.runs == 1, "the other sink noticed"
    announced = [m.item for m in alerts.drain()]
    assert [(e.type, e.data) for e in announced if isinstance(e, Event)] == [
        (
            EventType.ALERT_SYSTEM_ERROR,
            {"component": "sink:flaky", "error": "RuntimeError: delivery went wrong"},
        )
    ]
    # Each failed run left the sink's context, and each restart entered it again.
    assert log.count("enter flaky") == 4 and log.count("exit flaky") == 4


async def test_a_sink_that_cannot_start_yet_does_not_hold_up_the_others() -> None:
    log: list[str] = []
    hub = Hub()
    late = Recording("late", log, fail_enters=2)
    async with SinkRunner(
        [late, Recording("b", log)], hub, first_backoff_s=0.01, max_backoff_s=0.02
    ) as runner:
        assert log == ["enter b"]
        assert runner.status()[0].state in ("starting", "restarting")
        await wait_for(lambda: runner.status()[0].state == "running")
        assert log[-1] == "enter late"


class Leaving(Recording):
    """Also notes what ``__aexit__`` was told and whether its run was cancelled; ``fail_exit`` raises."""

    required = True

    def __init__(self, name: str, *, fail_runs: int = 0, fail_exit: bool = False) -> None:
        super().__init__(name, [], fail_runs=fail_runs)
        self.exits: list[tuple[Any, ...]] = []
        self.cancelled = False
        self.fail_exit = fail_exit

    async def __aexit__(self, *exc_info: Any) -> None:
        self.exits.append(exc_info)
        if self.fail_exit:
            raise OSError("disk full")

    async def run(self) -> None:
        try:
            await super().run()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def test_a_sink_leaves_knowing_why_and_its_run_is_cancelled_at_the_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sink that failed is told the error as it leaves (``__aexit__``'s three arguments), so that it can
    write what it owes accordingly; the failure is logged with its traceback and the sink's name."""
    flaky = Leaving("flaky", fail_runs=1)
    before = time.time()
    with caplog.at_level(logging.ERROR, logger="appliance.integrations.runner"):
        async with SinkRunner([flaky], Hub(), first_backoff_s=0.01, max_backoff_s=0.02) as runner:
            await wait_for(lambda: flaky.runs == 2)
            status = runner.status()[0]
    exc_type, exc, traceback = flaky.exits[0]
    assert exc_type is RuntimeError and isinstance(exc, RuntimeError) and str(exc) == "delivery went wrong"
    assert traceback is exc.__traceback__ and traceback is not None
    assert flaky.exits[1:] == [(None, None, None)]
    assert flaky.cancelled
    assert status.last_failure_at is not None and before <= status.last_failure_at <= time.time()
    [record] = caplog.records
    assert record.getMessage() == "sink failed; it will be restarted"
    assert record.exc_info is not None and record.exc_info[1] is exc
    assert getattr(record, "fields", None) == {"sink": "flaky"}


async def test_a_sink_that_cannot_start_is_logged_with_its_error(caplog: pytest.LogCaptureFixture) -> None:
    late = Recording("late", [], fail_enters=1)
    with caplog.at_level(logging.ERROR, logger="appliance.integrations.runner"):
        async with SinkRunner([late], Hub(), first_backoff_s=0.01, max_backoff_s=0.02) as runner:
            await wait_for(lambda: runner.status()[0].state == "running")
    [record] = caplog.records
    assert record.getMessage() == "sink could not start; it will be restarted"
    assert record.exc_info is not None and isinstance(record.exc_info[1], ConnectionRefusedError)
    assert getattr(record, "fields", None) == {"sink": "late"}


async def test_a_sink_that_fails_to_stop_is_logged_and_the_others_still_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []
    stuck = Leaving("stuck", fail_exit=True)
    with caplog.at_level(logging.ERROR, logger="appliance.integrations.runner"):
        async with SinkRunner([Recording("first", log), stuck], Hub()) as runner:
            await wait_for(lambda: stuck.runs == 1)
    assert log == ["enter first", "exit first"]
    assert [s.state for s in runner.status()] == ["stopped", "stopped"]
    [record] = caplog.records
    assert record.getMessage() == "sink failed to stop cleanly"
    assert record.exc_info is not None and isinstance(record.exc_info[1], OSError)
    assert getattr(record, "fields", None) == {"sink": "stuck"}


async def test_status_describes_each_sink_and_a_sink_is_found_by_name() -> None:
    """What health, performance and /metrics read: a required sink is what makes health unhealthy."""
    steady, optional = Leaving("steady"), Recording("optional", [])
    async with SinkRunner([steady, optional], Hub()) as runner:
        await wait_for(lambda: steady.runs == 1 and optional.runs == 1)
        first, second = runner.status()
        assert (first.name, first.required, first.state, first.restarts) == ("steady", True, "running", 0)
        assert (first.last_failure, first.last_failure_at) == (None, None)
        assert first.stats == SinkStats(connected=True, delivered=1) and first.healthy
        assert (second.name, second.required) == ("optional", False)
        assert runner.sink("optional") is optional
        assert runner.sink("absent") is None


async def test_a_failed_sink_reads_restarting_while_it_waits() -> None:
    """What health shows between a failure and the next try: restarting, not healthy."""
    flaky = Recording("flaky", [], fail_runs=1)
    async with SinkRunner([flaky], Hub(), first_backoff_s=60.0, max_backoff_s=60.0) as runner:
        await wait_for(lambda: runner.status()[0].last_failure is not None)
        status = runner.status()[0]
        assert status.state == "restarting" and not status.healthy and flaky.runs == 1


class Finishing(Recording):
    async def run(self) -> None:
        self.runs += 1


async def test_a_sink_whose_run_ends_is_stopped_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    done = Finishing("oneshot", [])
    with caplog.at_level(logging.INFO, logger="appliance.integrations.runner"):
        async with SinkRunner([done], Hub()) as runner:
            await wait_for(lambda: runner.status()[0].state == "stopped")
    assert done.runs == 1
    [record] = caplog.records
    assert record.getMessage() == "sink finished" and getattr(record, "fields", None) == {"sink": "oneshot"}


async def test_the_first_restart_waits_the_first_backoff_not_the_longest() -> None:
    flaky = Recording("flaky", [], fail_runs=1)
    async with SinkRunner([flaky], Hub(), first_backoff_s=0.01, max_backoff_s=60.0):
        await wait_for(lambda: flaky.runs == 2, within=3.0)


async def test_restarts_never_wait_longer_than_the_longest_backoff() -> None:
    """Twelve failures in a row: doubling from 10 ms unbounded would reach 20 s; capped at 20 ms, it
    stays well under a second in all."""
    flaky = Recording("flaky", [], fail_runs=12)
    async with SinkRunner([flaky], Hub(), first_backoff_s=0.01, max_backoff_s=0.02):
        await wait_for(lambda: flaky.runs == 13, within=3.0)


async def test_each_sink_runs_in_a_task_named_after_it() -> None:
    """What an asyncio task dump (or a debugger) shows for a sink that hangs."""
    async with SinkRunner([Recording("mqtt", []), Recording("webhooks", [])], Hub()):
        names = {task.get_name() for task in asyncio.all_tasks()}
        assert {"sink:mqtt", "sink:webhooks"} <= names


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    backoff = Backoff(1.0, 8.0)
    caps = [1.0, 2.0, 4.0, 8.0, 8.0]
    for cap in caps:
        assert 1.0 <= backoff.next() <= cap
    backoff.reset()
    assert backoff.next() == 1.0
    with pytest.raises(ValueError, match="first_s"):
        Backoff(0.0, 1.0)


def test_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        SinkRunner([Recording("a", []), Recording("a", [])], Hub())


# --------------------------------------------------------------------------------------------------------
# Scheduled reports


def test_the_next_report_is_the_next_time_of_day() -> None:
    at = clock_time(0, 5)
    assert next_run(datetime(2026, 12, 7, 0, 4), at) == datetime(2026, 12, 7, 0, 5)
    assert next_run(datetime(2026, 12, 7, 0, 5), at) == datetime(2026, 12, 8, 0, 5)
    assert next_run(datetime(2026, 12, 31, 23, 59), at) == datetime(2027, 1, 1, 0, 5)


async def test_reports_are_announced_on_schedule_with_the_week_on_mondays(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "db.sqlite3")
    store = HistoryStore(database)
    sunday = datetime(2023, 11, 12, 10, 0).timestamp()
    await record_all(store, list(frames(sunday, 60, 1, [(1, 1.0, 1.0, "sofa", "sitting")])))
    hub = Hub()
    hub.publish(ZoneLayout(T0, (ZoneShape("sofa", "Sofa", ((0, 0), (2, 0), (2, 2)), False),)))
    announced = hub.subscribe("test", ("event/analytics.report_generated",), maxsize=None)
    # 0.2 s before Monday 00:05.
    clock = iter([datetime(2023, 11, 13, 0, 4, 59, 800_000)])
    reports = ScheduledReports(store, hub, ReportSettings(), now=lambda: next(clock, datetime(2023, 11, 14)))
    async with SinkRunner([reports], hub):
        await wait_for(lambda: announced.pending == 2)
    day, week = (m.item for m in announced.drain())
    assert isinstance(day, Event) and isinstance(week, Event)
    assert (day.data["period"], day.data["day"]) == ("day", "2023-11-12")
    assert day.data["occupied_s"] == pytest.approx(60, abs=2) and day.data["zones"]["sofa"] > 0
    assert (week.data["period"], week.data["day"]) == ("week", "2023-11-06")
    await database.close()
