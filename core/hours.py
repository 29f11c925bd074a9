"""Business hours: whether a moment falls inside the store's opening hours, and which local day it belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from threadline.core.settings import Settings

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday names, Monday first (`datetime.weekday()` order)."""


def aware(moment: datetime) -> datetime:
    """`moment` with a time zone; a naive value (as some databases return) is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class BusinessHours:
    """Opening hours in one time zone: [`opens`, `closes`) local time on `days` (0 = Monday)."""

    zone: ZoneInfo
    opens: time
    closes: time
    days: frozenset[int]

    @classmethod
    def parse(cls, timezone: str, hours: str, days: str) -> BusinessHours:
        """From the settings' forms: `Europe/Paris`, `09:00-18:00`, `mon,tue,wed`."""
        start, _, end = hours.partition("-")
        weekdays = frozenset(DAY_NAMES.index(d.strip()) for d in days.split(",") if d.strip())
        return cls(ZoneInfo(timezone), time.fromisoformat(start), time.fromisoformat(end), weekdays)

    @classmethod
    def from_settings(cls, settings: Settings) -> BusinessHours:
        return cls.parse(settings.business_timezone, settings.business_hours, settings.business_days)

    def local(self, moment: datetime) -> datetime:
        return aware(moment).astimezone(self.zone)

    def day(self, moment: datetime) -> date:
        """The local calendar day of `moment`."""
        return self.local(moment).date()

    def next_opening(self, moment: datetime) -> datetime:
        """When the store next opens after `moment` (local time); `moment` itself when it is open."""
        local = self.local(moment)
        if self.is_open(local):
            return local
        for ahead in range(8):
            day = local.date() + timedelta(days=ahead)
            opening = datetime.combine(day, self.opens, tzinfo=self.zone)
            if day.weekday() in self.days and opening > local:
                return opening
        return local  # no opening day configured: treat as always reachable

    def is_open(self, moment: datetime) -> bool:
        """Whether `moment` is within business hours (else it is after hours)."""
        local = self.local(moment)
        return local.weekday() in self.days and self.opens <= local.time().replace(tzinfo=None) < self.closes
