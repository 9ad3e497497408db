"""The retention and partition rules as pure functions, table-driven, no database."""

from datetime import UTC, datetime

import pytest

from tracking.partitions import (
    Partition,
    add_months,
    missing_months,
    month_start,
    months_between,
    partition_name,
)
from tracking.retention import click_cutoff, log_cutoff


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "days", "cutoff"),
    [
        # The start of the UTC month holding now - days: kept at least `days`, by whole months.
        (utc(2026, 12, 2, 19), 180, utc(2026, 6, 1)),
        (utc(2026, 12, 31, 23, 59), 180, utc(2026, 7, 1)),
        (utc(2026, 3, 1), 1, utc(2026, 2, 1)),
        (utc(2026, 3, 1, 0, 0, 1), 0, utc(2026, 3, 1)),
        (utc(2027, 1, 15), 400, utc(2025, 12, 1)),
    ],
)
def test_log_rows_go_by_whole_utc_months_after_the_retention_days(now, days, cutoff):
    assert log_cutoff(now=now, retention_days=days) == cutoff
    assert (now - cutoff).days >= days


@pytest.mark.parametrize(
    ("days", "window", "kept_days"),
    [
        (120, None, 120),  # no conversion windows yet: the setting
        (120, 90, 120),  # the default window: 90 + 30
        (120, 200, 230),  # a longer window wins: never before it closes, plus 30
        (400, 200, 400),  # a longer setting wins
    ],
)
def test_clicks_are_kept_at_least_the_longest_window_plus_30_days(days, window, kept_days):
    now = utc(2026, 12, 2, 12)
    cutoff = click_cutoff(now=now, retention_days=days, longest_window_days=window)
    assert (now - cutoff).days == kept_days


@pytest.mark.parametrize(
    ("moment", "month", "three_after"),
    [
        (utc(2026, 12, 2, 19, 5), utc(2026, 12, 1), utc(2027, 3, 1)),
        (utc(2026, 1, 31, 23, 59, 59), utc(2026, 1, 1), utc(2026, 4, 1)),
        (datetime.fromisoformat("2026-03-01T00:30:00+01:00"), utc(2026, 2, 1), utc(2026, 5, 1)),
        (utc(2026, 10, 1), utc(2026, 10, 1), utc(2027, 1, 1)),
    ],
)
def test_months_are_utc_months(moment, month, three_after):
    assert month_start(moment) == month
    assert add_months(month, 3) == three_after
    assert add_months(three_after, -3) == month


def test_months_between_includes_both_ends_without_gaps():
    assert months_between(utc(2025, 11, 20), utc(2026, 2, 1)) == [
        utc(2025, 11, 1),
        utc(2025, 12, 1),
        utc(2026, 1, 1),
        utc(2026, 2, 1),
    ]


def test_only_months_no_partition_covers_are_missing():
    existing = [
        Partition("tracking_postbacklog_p2026_11", utc(2026, 11, 1), utc(2026, 12, 1)),
        Partition("tracking_postbacklog_p2026_12", utc(2026, 12, 1), utc(2027, 1, 1)),
        Partition("tracking_postbacklog_default", None, None),
    ]
    wanted = [utc(2026, 12, 1), utc(2027, 1, 1), utc(2027, 2, 1), utc(2025, 3, 1)]
    assert missing_months(existing, wanted) == [utc(2025, 3, 1), utc(2027, 1, 1), utc(2027, 2, 1)]
    assert missing_months(existing, [utc(2026, 11, 1)]) == []


def test_partition_names_carry_their_month():
    assert (
        partition_name("tracking_postbacklog", utc(2027, 3, 1)) == "tracking_postbacklog_p2027_03"
    )
