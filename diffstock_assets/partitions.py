"""Trading-day partitions: one per NYSE session, keyed like the raw folders (`20251103`)."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from diffstock_ml.calendar import DAY_FORMAT, NEW_YORK, non_session_weekdays, nyse

FIRST_TRADING_DAY = dt.date(2000, 1, 3)  # any XNYS session since; earlier folders are ignored
_WEEKENDS = ("0 0 * * 6", "0 0 * * 0")


def build_trading_day_partitions(
    first_day: dt.date = FIRST_TRADING_DAY,
) -> dg.DailyPartitionsDefinition:
    """Daily partitions in New York time whose exclusions are every day XNYS has no session.

    Weekends by cron, weekday holidays computed from exchange_calendars (never hard-coded), so
    the keys are exactly the sessions; a partition exists once its day has ended (`end_offset=0`).
    """
    holidays = non_session_weekdays(first_day, nyse().last_session.date())
    return dg.DailyPartitionsDefinition(
        start_date=first_day.strftime(DAY_FORMAT),
        fmt=DAY_FORMAT,
        timezone=NEW_YORK,
        end_offset=0,
        exclusions=[*_WEEKENDS, *(dt.datetime(d.year, d.month, d.day) for d in holidays)],
    )


trading_days = build_trading_day_partitions()


def sessions_ending(partition_key: str, count: int) -> list[str]:
    """The `count` partition keys ending at `partition_key`, oldest first.

    A `TimeWindowPartitionMapping` silently clips near the first partition; this raises a
    `Failure` naming what is missing instead.
    """
    keys = trading_days.get_partition_keys()
    if partition_key not in keys:
        raise dg.Failure(description=f"{partition_key} is not a trading-day partition")
    end = keys.index(partition_key) + 1
    days = keys[max(0, end - count) : end]
    if len(days) < count:
        raise dg.Failure(
            description=(
                f"as-of day {partition_key} needs {count} trading days ending there, but the "
                f"partitions start at {keys[0]}: only {len(days)} exist. Pick a later as-of day."
            ),
            allow_retries=False,
        )
    return days
