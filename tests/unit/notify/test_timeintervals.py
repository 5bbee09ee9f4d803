"""Alertmanager's time intervals: parsing, containment in the spec's zone, DST, `active`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import yaml

from sentinel.notify.timeintervals import (
    InclusiveRange,
    TimeInterval,
    TimeRange,
    active,
    parse_time_intervals,
)


def at(text: str, offset_hours: float = 0) -> datetime:
    """`2020-05-04 15:04` at a fixed UTC offset: fake instants, no clock involved."""
    tz = timezone(timedelta(hours=offset_hours))
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=tz)


def spec(**raw: Any) -> TimeInterval:
    return TimeInterval.from_dict(raw)


# --- containment (the behaviour of Alertmanager's timeIntervalTestCases, own instants) ---------

BUSINESS_HOURS = spec(
    times=[{"start_time": "09:00", "end_time": "17:00"}], weekdays=["monday:friday"]
)


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        ("2020-05-04 09:00", True),  # Monday, start inclusive
        ("2020-05-04 08:59", False),
        ("2020-05-04 16:59", True),
        ("2020-05-04 17:00", False),  # end exclusive
        ("2020-05-08 16:59", True),  # Friday
        ("2020-05-09 10:00", False),  # Saturday
        ("2020-05-03 10:00", False),  # Sunday
    ],
)
def test_business_hours(when: str, inside: bool) -> None:
    assert BUSINESS_HOURS.contains(at(when)) is inside


def test_weekday_boundary_at_midnight() -> None:
    weekdays = spec(weekdays=["monday:friday"])
    friday_last_minute = at("2026-03-27 23:59")
    assert weekdays.contains(friday_last_minute)
    assert not weekdays.contains(friday_last_minute + timedelta(minutes=1))  # Saturday 00:00
    assert weekdays.contains(at("2026-03-30 00:00"))  # Monday again
    evenings = spec(times=[{"start_time": "17:00", "end_time": "24:00"}], weekdays=["friday"])
    assert evenings.contains(at("2026-03-27 23:59"))
    assert not evenings.contains(at("2026-03-28 00:00"))


def test_unix_seconds_are_accepted() -> None:
    ts = at("2020-05-04 10:00").timestamp()
    assert BUSINESS_HOURS.contains(ts)
    assert not BUSINESS_HOURS.contains(ts + 8 * 3600)


def test_the_instant_counts_not_the_offset_it_is_written_in() -> None:
    # 10:00 at +02:00 is 08:00 UTC: before a UTC interval's 09:00.
    assert not BUSINESS_HOURS.contains(at("2020-05-04 10:00", offset_hours=2))
    assert BUSINESS_HOURS.contains(at("2020-05-04 11:00", offset_hours=2))


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        BUSINESS_HOURS.contains(datetime(2020, 5, 4, 10, 0))


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        ("2020-04-04 15:04", True),
        ("2020-04-05 00:00", True),
        ("2020-04-06 23:05", True),
        ("2020-04-03 23:59", False),
        ("2020-04-07 00:00", False),
        ("2020-06-04 12:00", False),  # right days, wrong month
        ("2019-04-05 12:00", False),  # right day and month, wrong year
    ],
)
def test_days_months_years_easter_2020(when: str, inside: bool) -> None:
    easter = spec(days_of_month=["4:6"], months=["april"], years=["2020"])
    assert easter.contains(at(when)) is inside


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        ("2020-01-31 15:04", True),
        ("2020-01-29 00:00", True),
        ("2020-01-28 23:59", False),
        ("2020-02-29 12:00", True),  # leap year: Feb 27..29
        ("2020-02-27 00:00", True),
        ("2020-02-26 23:59", False),
        ("2021-02-26 00:00", True),  # Feb 26..28
        ("2020-04-28 00:00", True),  # 30-day month: 28..30
        ("2020-04-27 23:59", False),
        ("2020-03-01 00:00", False),
    ],
)
def test_negative_days_of_month_count_from_the_end(when: str, inside: bool) -> None:
    assert spec(days_of_month=["-3:-1"]).contains(at(when)) is inside


def test_days_of_month_are_clamped_to_the_month() -> None:
    # The parser refuses -31:31 (as Alertmanager's does); built directly, it is clamped.
    june = TimeInterval(months=(InclusiveRange(6, 6),), days_of_month=(InclusiveRange(-31, 31),))
    assert june.contains(at("2020-06-01 00:00"))
    assert june.contains(at("2020-06-30 23:59"))
    assert not june.contains(at("2020-05-31 00:00"))
    assert not june.contains(at("2020-07-01 00:00"))
    whole_month = spec(days_of_month=["1:31"])
    assert whole_month.contains(at("2021-02-28 12:00"))
    # A start after the month's end is skipped, not clamped back into it.
    assert not spec(days_of_month=["31"]).contains(at("2020-04-30 12:00"))
    assert spec(days_of_month=["31"]).contains(at("2020-05-31 12:00"))


@pytest.mark.parametrize(
    ("raw", "when", "inside"),
    [
        ({"months": ["1:3"]}, "2020-03-31 23:59", True),
        ({"months": ["1:3"]}, "2020-04-01 00:00", False),
        ({"months": ["may:august", "december"]}, "2020-08-15 12:00", True),
        ({"months": ["may:august", "december"]}, "2020-12-01 12:00", True),
        ({"months": ["may:august", "december"]}, "2020-09-15 12:00", False),
        ({"months": ["January"]}, "2020-01-15 12:00", True),  # names are case-insensitive
        ({"years": ["2020:2022"]}, "2022-12-31 23:59", True),
        ({"years": ["2020:2022"]}, "2023-01-01 00:00", False),
        ({"years": ["2020:2022", "2030"]}, "2030-06-01 00:00", True),
        ({"years": ["2020:2022", "2030"]}, "2019-12-31 23:59", False),
        ({"weekdays": ["saturday", "sunday"]}, "2020-05-09 12:00", True),
        ({"weekdays": ["Saturday", "Sunday"]}, "2020-05-10 12:00", True),
        ({"weekdays": ["saturday", "sunday"]}, "2020-05-11 12:00", False),
        ({}, "2020-05-11 12:00", True),  # no fields: always
        ({"times": [], "weekdays": []}, "2020-05-11 12:00", True),  # empty lists: any
    ],
)
def test_months_years_weekdays(raw: dict[str, Any], when: str, inside: bool) -> None:
    assert spec(**raw).contains(at(when)) is inside


def test_several_time_ranges_any_one_matches() -> None:
    split = spec(
        times=[
            {"start_time": "00:00", "end_time": "06:00"},
            {"start_time": "22:00", "end_time": "24:00"},
        ]
    )
    assert split.contains(at("2020-05-04 05:59"))
    assert not split.contains(at("2020-05-04 06:00"))
    assert not split.contains(at("2020-05-04 21:59"))
    assert split.contains(at("2020-05-04 23:59"))


# --- time zones and DST ---------------------------------------------------------------------

BERLIN_OFFICE = spec(times=[{"start_time": "09:00", "end_time": "17:00"}], location="Europe/Berlin")


@pytest.mark.parametrize(
    ("utc", "inside"),
    [
        # Saturday 2026-03-28, CET (UTC+1): 09:00-17:00 local is 08:00-16:00 UTC.
        ("2026-03-28 07:59", False),
        ("2026-03-28 08:00", True),
        ("2026-03-28 15:59", True),
        ("2026-03-28 16:00", False),
        # Sunday 2026-03-29, the last Sunday of March: clocks jump 02:00 -> 03:00 CEST (UTC+2).
        ("2026-03-29 06:59", False),
        ("2026-03-29 07:00", True),
        ("2026-03-29 14:59", True),
        ("2026-03-29 15:00", False),
        # Monday 2026-03-30, CEST: still 09:00-17:00 on the wall clock, 07:00-15:00 UTC.
        ("2026-03-30 06:59", False),
        ("2026-03-30 07:00", True),
        ("2026-03-30 14:59", True),
        ("2026-03-30 15:00", False),
    ],
)
def test_dst_spring_forward_keeps_local_hours(utc: str, inside: bool) -> None:
    assert BERLIN_OFFICE.contains(at(utc)) is inside
    assert BERLIN_OFFICE.contains(at(utc).timestamp()) is inside


def test_dst_skipped_and_repeated_hours() -> None:
    two_to_three = spec(
        times=[{"start_time": "02:00", "end_time": "03:00"}], location="Europe/Berlin"
    )
    # 2026-03-29 00:00..02:00 UTC covers local 01:00 CET then 03:00 CEST: 02:xx never happens.
    spring = at("2026-03-29 00:00")
    assert not any(two_to_three.contains(spring + timedelta(minutes=m)) for m in range(120))
    # 2026-10-25: local 02:00-03:00 happens twice, at 00:00 UTC (CEST) and 01:00 UTC (CET).
    assert two_to_three.contains(at("2026-10-25 00:30"))
    assert two_to_three.contains(at("2026-10-25 01:30"))
    assert not two_to_three.contains(at("2026-10-25 02:00"))


def test_southern_hemisphere_dst_sydney() -> None:
    # Sydney switches to AEDT (UTC+11) on 2021-10-03; November 09:00-17:00 weekdays local.
    nov = spec(
        times=[{"start_time": "09:00", "end_time": "17:00"}],
        weekdays=["monday:friday"],
        months=["november"],
        location="Australia/Sydney",
    )
    assert nov.contains(at("2021-11-01 09:00", offset_hours=11))
    assert nov.contains(at("2021-10-31 22:00"))  # = Mon 1 Nov 09:00 AEDT
    assert not nov.contains(at("2021-10-31 21:00"))  # = 08:00 AEDT


def test_last_day_of_month_in_the_zone_not_in_utc() -> None:
    last_day = spec(days_of_month=["-1"], location="America/New_York")
    assert last_day.contains(at("2021-03-31 12:00", offset_hours=-4))
    assert not last_day.contains(at("2021-03-30 12:00", offset_hours=-4))
    # 2021-04-01 02:00 UTC is still March 31 in New York.
    assert last_day.contains(at("2021-04-01 02:00"))


@pytest.fixture
def tokyo_is_local(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("tokyo_is_local")
def test_local_uses_the_machines_zone() -> None:
    local = spec(times=[{"start_time": "09:00", "end_time": "17:00"}], location="Local")
    assert local.contains(at("2020-05-04 00:00"))  # 09:00 JST
    assert not local.contains(at("2020-05-04 08:00"))  # 17:00 JST


def test_utc_is_the_default() -> None:
    assert spec().location == "UTC"
    assert spec(location="UTC").contains(datetime(2020, 1, 1, tzinfo=UTC))


# --- parsing --------------------------------------------------------------------------------

ALERTMANAGER_YAML = """
time_intervals:
  - name: offhours
    time_intervals:
      - times:
          - start_time: 17:00
            end_time: 24:00
        weekdays: ['monday:friday']
        location: Europe/Berlin
      - weekdays: [saturday, sunday]
        location: Europe/Berlin
  - name: month-end
    time_intervals:
      - days_of_month: [1:5, '-3:-1']
        months: [1:3, 'may:august', december]
        years: ['2020:2022', 2030]
mute_time_intervals:
  - name: legacy
    time_intervals:
      - times:
        - start_time: '00:00'
          end_time: '06:00'
"""


def test_parse_alertmanager_yaml_including_unquoted_base60_values() -> None:
    raw = yaml.safe_load(ALERTMANAGER_YAML)
    intervals = parse_time_intervals(raw["time_intervals"], raw["mute_time_intervals"])
    assert list(intervals) == ["legacy", "offhours", "month-end"]
    weekday_evenings, weekend = intervals["offhours"]
    assert weekday_evenings.times == (TimeRange(17 * 60, 24 * 60),)  # PyYAML read 17:00 as 1020
    assert weekday_evenings.weekdays == (InclusiveRange(1, 5),)
    assert weekday_evenings.location == "Europe/Berlin"
    assert weekend.weekdays == (InclusiveRange(6, 6), InclusiveRange(0, 0))
    (month_end,) = intervals["month-end"]
    assert month_end.days_of_month == (InclusiveRange(1, 5), InclusiveRange(-3, -1))  # 1:5 was 65
    assert month_end.months == (InclusiveRange(1, 3), InclusiveRange(5, 8), InclusiveRange(12, 12))
    assert month_end.years == (InclusiveRange(2020, 2022), InclusiveRange(2030, 2030))
    assert intervals["legacy"][0].times == (TimeRange(0, 360),)


def test_parse_nothing() -> None:
    assert parse_time_intervals() == {}
    assert parse_time_intervals([], None) == {}
    assert parse_time_intervals([{"name": "always", "time_intervals": [{}]}])["always"] == (
        TimeInterval(),
    )


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"times": [{"start_time": "09:00"}]}, "times[0]: both start_time and end_time"),
        ({"times": [{"start_time": "17:00", "end_time": "09:00"}]}, "must be before end_time"),
        ({"times": [{"start_time": "09:00", "end_time": "09:00"}]}, "must be before end_time"),
        ({"times": [{"start_time": "12:30", "end_time": "24:01"}]}, "couldn't parse time '24:01'"),
        ({"times": [{"start_time": "9:00", "end_time": "17:00"}]}, "couldn't parse time '9:00'"),
        ({"times": [{"start_time": "09:60", "end_time": "17:00"}]}, "couldn't parse time"),
        ({"times": [{"start_time": "09:00", "end": "17:00"}]}, "unknown key(s) end"),
        ({"times": [{"start_time": 1500, "end_time": 1441}]}, "time 1500 out of range"),
        ({"times": ["09:00-17:00"]}, "times[0]: must be a mapping"),
        ({"weekdays": ["funday"]}, "weekdays[0]: 'funday' is not a valid weekday"),
        ({"weekdays": ["friday:monday"]}, "end day monday is before start day friday"),
        ({"weekdays": ["saturday:sunday"]}, "end day sunday is before start day saturday"),
        ({"weekdays": ["monday:tuesday:friday"]}, "invalid format"),
        ({"weekdays": [1]}, "is not a valid weekday"),
        ({"weekdays": "monday"}, "weekdays: must be a list"),
        ({"days_of_month": ["0"]}, "0 is not a valid day of the month"),
        ({"days_of_month": ["32"]}, "32 is not a valid day of the month"),
        ({"days_of_month": ["-32:-1"]}, "-32 is not a valid day of the month"),
        ({"days_of_month": ["-3:5"]}, "end day must be negative if start day is negative"),
        ({"days_of_month": ["10:5"]}, "end day 5 is always before start day 10"),
        ({"days_of_month": ["25:-10"]}, "end day -10 is always before start day 25"),
        ({"days_of_month": ["first"]}, "'first' is not an integer"),
        ({"days_of_month": [1.5]}, "must be a string"),
        ({"months": ["april:march"]}, "end month march is before start month april"),
        ({"months": ["13"]}, "'13' is not a valid month"),
        ({"months": ["smarch"]}, "'smarch' is not a valid month"),
        ({"years": ["2022:2020"]}, "end year 2020 is before start year 2022"),
        ({"years": ["twenty"]}, "'twenty' is not an integer"),
        ({"location": "Mars/Olympus_Mons"}, "location: unknown time zone 'Mars/Olympus_Mons'"),
        ({"location": "../../etc/passwd"}, "unknown time zone"),
        ({"location": 5}, "location: must be a string"),
        ({"weekday": ["monday"]}, "unknown key(s) weekday"),
    ],
)
def test_parse_errors_name_the_key(raw: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_time_intervals([{"name": "x", "time_intervals": [raw]}])
    assert str(exc.value).startswith("time_intervals[0].time_intervals[0]")
    assert error in str(exc.value)


@pytest.mark.parametrize(
    ("time_intervals", "mute", "error"),
    [
        ([{"time_intervals": []}], None, "time_intervals[0]: missing name"),
        (
            [{"name": "a"}, {"name": "a"}],
            None,
            "time_intervals[1]: time interval 'a' is not unique",
        ),
        ([{"name": "a"}], [{"name": "a"}], "time_intervals[0]: time interval 'a' is not unique"),
        ([{"name": "a", "intervals": []}], None, "unknown key(s) intervals"),
        ({"name": "a"}, None, "time_intervals: must be a list"),
        (["a"], None, "time_intervals[0]: must be a mapping"),
    ],
)
def test_parse_errors_in_the_named_list(time_intervals: Any, mute: Any, error: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_time_intervals(time_intervals, mute)
    assert error in str(exc.value)


# --- active ---------------------------------------------------------------------------------


def test_active_any_named_interval() -> None:
    intervals = parse_time_intervals(
        [
            {
                "name": "nights",
                "time_intervals": [{"times": [{"start_time": "00:00", "end_time": "06:00"}]}],
            },
            {"name": "weekends", "time_intervals": [{"weekdays": ["saturday", "sunday"]}]},
        ]
    )
    monday_night, monday_noon, saturday_noon = (
        at("2020-05-04 03:00"),
        at("2020-05-04 12:00"),
        at("2020-05-09 12:00"),
    )
    assert active(intervals, ["nights", "weekends"], monday_night)
    assert active(intervals, ["nights", "weekends"], saturday_noon)
    assert not active(intervals, ["nights", "weekends"], monday_noon)
    assert not active(intervals, ["nights"], saturday_noon)
    assert not active(intervals, [], monday_night)
    assert active(intervals, ["nights"], monday_night.timestamp())


def test_active_unknown_name() -> None:
    with pytest.raises(ValueError, match="time interval 'nope' doesn't exist"):
        active({}, ["nope"], 0.0)


def test_spec_is_frozen_and_comparable() -> None:
    a = spec(weekdays=["monday"], location="Europe/Berlin")
    assert a == spec(weekdays=["Monday"], location="Europe/Berlin")
    assert hash(a) == hash(spec(weekdays=["monday"], location="Europe/Berlin"))
    with pytest.raises(AttributeError):
        a.location = "UTC"  # type: ignore[misc]
    assert str(TimeRange(540, 1440)) == "09:00-24:00"
