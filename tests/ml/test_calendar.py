import datetime as dt

import pytest

from diffstock_ml.calendar import (
    is_session,
    last_sessions,
    non_session_weekdays,
    parse_day,
    session_bounds,
    sessions_between,
)


def test_forty_sessions_in_the_seed_period() -> None:
    sessions = sessions_between(dt.date(2025, 9, 24), dt.date(2025, 11, 18))
    assert len(sessions) == 40
    assert sessions[0] == dt.date(2025, 9, 24) and sessions[-1] == dt.date(2025, 11, 18)


def test_clock_change_moves_the_open_in_utc() -> None:
    before, _ = session_bounds(dt.date(2025, 10, 31))
    after, _ = session_bounds(dt.date(2025, 11, 3))
    assert (before.hour, before.minute) == (13, 30)
    assert (after.hour, after.minute) == (14, 30)


def test_half_day_closes_at_one_new_york() -> None:
    open_utc, close_utc = session_bounds(dt.date(2025, 11, 28))
    assert close_utc - open_utc == dt.timedelta(hours=3, minutes=30)
    assert (close_utc.hour, close_utc.minute) == (18, 0)


def test_holidays_and_weekends_are_not_sessions() -> None:
    assert not is_session(dt.date(2025, 11, 27))  # Thanksgiving
    assert not is_session(dt.date(2025, 11, 1))  # Saturday
    assert dt.date(2025, 11, 27) in non_session_weekdays(
        dt.date(2025, 11, 1), dt.date(2025, 11, 30)
    )
    with pytest.raises(ValueError, match="20251127 is not an NYSE"):
        session_bounds(dt.date(2025, 11, 27))


def test_last_sessions_counts_back_over_holidays() -> None:
    days = last_sessions(dt.date(2025, 11, 28), 3)
    assert days == [dt.date(2025, 11, 25), dt.date(2025, 11, 26), dt.date(2025, 11, 28)]


def test_parse_day_names_the_bad_key() -> None:
    with pytest.raises(ValueError, match="'2025-11-03'"):
        parse_day("2025-11-03")
