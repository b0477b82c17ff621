"""NYSE sessions and regular hours, from exchange_calendars' XNYS calendar.

Every place that needs "is this a trading day" or "when does the session open" goes through
here, so that clock changes (2025-11-02) and half days (2025-11-28 closes 13:00) are right
everywhere and no holiday list is ever hard-coded.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import exchange_calendars as xcals
import pandas as pd

CALENDAR_NAME = "XNYS"
NEW_YORK = "America/New_York"
DAY_FORMAT = "%Y%m%d"
# A fixed first session keeps answers independent of today's date (the library's default start).
CALENDAR_START = "2000-01-03"


@lru_cache(maxsize=1)
def nyse() -> xcals.ExchangeCalendar:
    """The XNYS calendar (cached: building it takes a fraction of a second)."""
    return xcals.get_calendar(CALENDAR_NAME, start=CALENDAR_START)


def parse_day(key: str) -> dt.date:
    """`"20251103"` -> `date(2025, 11, 3)`; raises ValueError naming the key otherwise."""
    try:
        return dt.datetime.strptime(key, DAY_FORMAT).date()
    except ValueError as exc:
        raise ValueError(f"{key!r} is not a trading-day key in the YYYYMMDD form") from exc


def day_key(day: dt.date) -> str:
    return day.strftime(DAY_FORMAT)


def is_session(day: dt.date) -> bool:
    cal = nyse()
    ts = pd.Timestamp(day)
    if ts < cal.first_session or ts > cal.last_session:
        return False
    return bool(cal.is_session(ts))


def sessions_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """Sessions in `[start, end]`, oldest first (clipped to the calendar's known range)."""
    cal = nyse()
    first = max(pd.Timestamp(start), cal.first_session)
    last = min(pd.Timestamp(end), cal.last_session)
    if first > last:
        return []
    return [ts.date() for ts in cal.sessions_in_range(first, last)]


def last_sessions(end: dt.date, count: int) -> list[dt.date]:
    """The `count` sessions ending at (and including) the session on or before `end`."""
    cal = nyse()
    last = cal.date_to_session(pd.Timestamp(end), direction="previous")
    return [ts.date() for ts in cal.sessions_window(last, -count)]


@lru_cache(maxsize=64)
def session_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """UTC-aware (open, close) of the regular session of `day`; ValueError if not a session.

    Cached: ingest asks once per batch of files, and the calendar's answer costs ~1 ms."""
    if not is_session(day):
        raise ValueError(f"{day_key(day)} is not an NYSE ({CALENDAR_NAME}) session")
    cal = nyse()
    ts = pd.Timestamp(day)
    return cal.session_open(ts).to_pydatetime(), cal.session_close(ts).to_pydatetime()


def non_session_weekdays(start: dt.date, end: dt.date) -> list[dt.date]:
    """Monday–Friday dates in `[start, end]` on which NYSE has no session (holidays).

    Only dates the calendar knows (it extends about a year past today) are considered.
    """
    end = min(end, nyse().last_session.date())
    sessions = set(sessions_between(start, end))
    days = pd.bdate_range(start, end)
    return [d.date() for d in days if d.date() not in sessions]
