"""Scheduled occupancy reports: each day's (and on Mondays, last week's) report, announced once.

At ``reports.at`` local time the previous day's report is built from the history and announced as an
``analytics.report_generated`` event with its summary; on Mondays the previous week's follows. This is
the only place that announces reports: reading one through the API announces nothing, so a dashboard
refreshing a report never turns into webhook deliveries. The zones are the ones in force, from the hub's
``config/zones``. A day the appliance was off at that time gets no announcement (its report can still be
read through the API).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from datetime import time as clock_time

from pydantic import BaseModel, ConfigDict, Field

from appliance.contracts import Event, EventType, ZoneLayout, ZoneShape
from appliance.hub import Hub
from appliance.integrations.base import Sink, SinkStats
from appliance.store.analytics import OccupancyReport, ReportPeriod, occupancy_report
from appliance.store.history import HistoryStore

log = logging.getLogger(__name__)
_MONDAY = 0


class ReportSettings(BaseModel):
    """The ``reports:`` section: the daily (and weekly) occupancy report announcement."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Announce each day's report (and on Mondays, the week's).")
    at: clock_time = Field(
        clock_time(0, 5), description="Local time (HH:MM) at which the previous day's report is announced."
    )


def next_run(after: datetime, at: clock_time) -> datetime:
    """The first local ``at`` strictly after ``after`` (a naive local time)."""
    candidate = datetime.combine(after.date(), at)
    return candidate if candidate > after else candidate + timedelta(days=1)


def report_summary(report: OccupancyReport) -> dict[str, object]:
    """What the announcement carries; the whole report is at ``GET /api/v1/analytics/reports``."""
    return {
        "period": report.period,
        "day": report.day.isoformat(),
        "start": report.start,
        "end": report.end,
        "simulated": report.simulated,
        "falls": report.falls,
        "occupied_s": round(report.room.occupied_s, 3),
        "zones": {z.zone_id or "room": round(z.occupied_s, 3) for z in report.zones},
    }


class ScheduledReports(Sink):
    name = "reports"

    def __init__(
        self,
        store: HistoryStore,
        hub: Hub,
        settings: ReportSettings,
        now: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.store = store
        self.hub = hub
        self.settings = settings
        self._now = now
        self.announced = 0
        self.last_announced: float | None = None

    async def run(self) -> None:
        while True:
            now = self._now()
            due = next_run(now, self.settings.at)
            await asyncio.sleep((due - now).total_seconds())
            yesterday = due.date() - timedelta(days=1)
            await self.announce(yesterday, "day")
            if due.weekday() == _MONDAY:
                await self.announce(yesterday, "week")

    async def announce(self, day: date, period: ReportPeriod) -> OccupancyReport:
        report = await occupancy_report(self.store, day, period, self._zones())
        self.hub.publish(Event(EventType.ANALYTICS_REPORT_GENERATED, report_summary(report)))
        self.announced += 1
        self.last_announced = time.time()
        log.info("report announced", extra={"fields": {"period": period, "day": day.isoformat()}})
        return report

    def _zones(self) -> tuple[ZoneShape, ...]:
        message = self.hub.latest("config/zones")
        return message.item.zones if message is not None and isinstance(message.item, ZoneLayout) else ()

    def stats(self) -> SinkStats:
        return SinkStats(
            connected=True,
            delivered=self.announced,
            details={"next_at": next_run(self._now(), self.settings.at).isoformat(timespec="minutes"),
                     "last_announced": self.last_announced},
        )  # fmt: skip
