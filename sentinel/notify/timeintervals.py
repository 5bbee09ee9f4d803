"""Alertmanager's `time_intervals`: named sets of times, weekdays, days, months and years.

Semantics follow Alertmanager's `timeinterval/timeinterval.go`: inside a spec every given
field must match (an absent or empty field matches anything), inside a field any one range
does; `times` end exclusive (24:00 allowed), every other range inclusive; negative days of
the month count from its end and are clamped to it; all of it in the spec's `location`
(an IANA name, `Local`, or UTC by default), so 09:00-17:00 stays 09:00-17:00 on the wall
clock across a DST change. A named interval is a list of specs and contains any instant one
of them contains.

Parsing takes the plain dicts and lists a YAML loader returns and raises `ValueError`
naming the offending key path. PyYAML reads YAML 1.1, where an unquoted `17:00` is the
base-60 integer 1020 and `1:5` is 65; Alertmanager's YAML reads both as strings, and its own
documentation writes `start_time: 17:00` unquoted. So an integer time is taken as the
minutes of the day it spells, and an integer of 60 or more in `days_of_month`/`months`
(never a valid day or month) as the `a:b` range it spells. Quoting always works.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sentinel.units import brief  # an error line must not echo a huge value

__all__ = [
    "InclusiveRange",
    "TimeInterval",
    "TimeRange",
    "active",
    "parse_time_intervals",
]

WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip

_SPEC_KEYS = frozenset({"times", "weekdays", "days_of_month", "months", "years", "location"})
_TIME_RE = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00")
_INT_RE = re.compile(r"[+-]?[0-9]+")  # what Go's strconv.Atoi takes

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Minutes of the day, `start_minute` inclusive, `end_minute` exclusive (0..1440)."""

    start_minute: int
    end_minute: int

    def __str__(self) -> str:
        return f"{_hhmm(self.start_minute)}-{_hhmm(self.end_minute)}"


@dataclass(frozen=True, slots=True)
class InclusiveRange:
    begin: int
    end: int

    def contains(self, n: int) -> bool:
        return self.begin <= n <= self.end


@dataclass(frozen=True, slots=True)
class TimeInterval:
    """One `time_interval_spec`. Empty tuples mean "any"; weekdays count 0 = Sunday."""

    times: tuple[TimeRange, ...] = ()
    weekdays: tuple[InclusiveRange, ...] = ()
    days_of_month: tuple[InclusiveRange, ...] = ()
    months: tuple[InclusiveRange, ...] = ()
    years: tuple[InclusiveRange, ...] = ()
    location: str = "UTC"
    # None is the machine's local zone (its rules, DST included, follow the system's).
    _tz: tzinfo | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tz", _load_location(self.location))

    def contains(self, t: datetime | float) -> bool:
        """Whether the instant `t` (aware datetime or Unix seconds) falls inside this spec."""
        local = self._local(t)
        if self.times and not _any_time(self.times, local.hour * 60 + local.minute):
            return False
        if self.days_of_month and not _any_day(self.days_of_month, local):
            return False
        if self.months and not any(r.contains(local.month) for r in self.months):
            return False
        weekday = local.isoweekday() % 7  # Sunday = 0, as in Go's time.Weekday
        if self.weekdays and not any(r.contains(weekday) for r in self.weekdays):
            return False
        return not self.years or any(r.contains(local.year) for r in self.years)

    def _local(self, t: datetime | float) -> datetime:
        if isinstance(t, datetime):
            if t.tzinfo is None or t.utcoffset() is None:
                raise ValueError(f"a naive datetime is ambiguous here, give it a tzinfo: {t!r}")
            return t.astimezone(self._tz)
        return datetime.fromtimestamp(t, self._tz)

    @classmethod
    def from_dict(cls, raw: Any, where: str = "time_interval") -> TimeInterval:
        """Parse one spec (`{times: [...], weekdays: [...], ..., location: ...}`)."""
        if raw is None:
            return cls()  # `- {}` and a bare `-` both mean "always", as in Alertmanager
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where}: must be a mapping, got {_kind(raw)}")
        _check_keys(raw, _SPEC_KEYS, where)
        location = raw.get("location")
        if location is not None and not isinstance(location, str):
            raise ValueError(f"{where}.location: must be a string, got {_kind(location)}")
        try:
            _load_location(location or "UTC")
        except ValueError as e:
            raise ValueError(f"{where}.location: {e}") from None
        return cls(
            times=_each(raw, "times", where, _time_range),
            weekdays=_each(raw, "weekdays", where, _weekday_range),
            days_of_month=_each(raw, "days_of_month", where, _day_of_month_range),
            months=_each(raw, "months", where, _month_range),
            years=_each(raw, "years", where, _year_range),
            location=location or "UTC",
        )


def parse_time_intervals(
    time_intervals: Any = None, mute_time_intervals: Any = None
) -> dict[str, tuple[TimeInterval, ...]]:
    """Parse the top-level `time_intervals:` and the deprecated `mute_time_intervals:` lists
    (`[{name: ..., time_intervals: [spec, ...]}, ...]`) into one map; names are unique across
    both, as in Alertmanager's config check."""
    out: dict[str, tuple[TimeInterval, ...]] = {}
    for key, entries in (("mute_time_intervals", mute_time_intervals),
                         ("time_intervals", time_intervals)):  # fmt: skip
        for i, entry in enumerate(_as_list(entries, key)):
            name, specs = _named(entry, f"{key}[{i}]")
            if name in out:
                raise ValueError(f"{key}[{i}]: time interval {brief(name)} is not unique")
            out[name] = specs
    return out


def active(
    intervals: Mapping[str, Iterable[TimeInterval]],
    names: Iterable[str],
    now: datetime | float,
) -> bool:
    """Whether `now` falls inside any of the named intervals (for `mute_time_intervals` this
    mutes the route; for `active_time_intervals` it is what keeps the route sending)."""
    for name in names:
        try:
            specs = intervals[name]
        except KeyError:
            raise ValueError(f"time interval {brief(name)} doesn't exist in config") from None
        if any(spec.contains(now) for spec in specs):
            return True
    return False


# --- evaluation ---------------------------------------------------------------------------


def _any_time(ranges: tuple[TimeRange, ...], minute: int) -> bool:
    return any(r.start_minute <= minute < r.end_minute for r in ranges)


def _any_day(ranges: tuple[InclusiveRange, ...], local: datetime) -> bool:
    days = calendar.monthrange(local.year, local.month)[1]
    for r in ranges:
        begin = days + r.begin + 1 if r.begin < 0 else r.begin
        end = days + r.end + 1 if r.end < 0 else r.end
        if begin > days:
            continue  # e.g. "31" in a 30-day month: not clamped back into this month
        # Clamp to the month, so "1:31" in February ends on its last day.
        begin, end = max(begin, -days), min(end, days)
        if begin <= local.day <= end:
            return True
    return False


def _load_location(name: str) -> tzinfo | None:
    if name in ("", "UTC"):
        return UTC  # needs no tz database
    if name == "Local":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {brief(name)} (want an IANA name such as 'Europe/Berlin', "
            "'Local' or 'UTC'; the system's tz database or the tzdata package must be installed)"
        ) from None


# --- parsing ------------------------------------------------------------------------------


def _named(entry: Any, where: str) -> tuple[str, tuple[TimeInterval, ...]]:
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: must be a mapping with name and time_intervals")
    unknown = sorted(str(k) for k in entry if k not in ("name", "time_intervals"))
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(unknown)} (want name, time_intervals)"
        )
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: missing name in time interval")
    specs = _as_list(entry.get("time_intervals"), f"{where}.time_intervals")
    where = f"{where}.time_intervals"
    return name, tuple(TimeInterval.from_dict(s, f"{where}[{j}]") for j, s in enumerate(specs))


def _as_list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ValueError(f"{where}: must be a list, got {_kind(value)}")
    return list(value)


def _each(
    raw: Mapping[str, Any], key: str, where: str, parse: Callable[[Any], _T]
) -> tuple[_T, ...]:
    items = _as_list(raw.get(key), f"{where}.{key}")
    out: list[_T] = []
    for i, item in enumerate(items):
        try:
            out.append(parse(item))
        except ValueError as e:
            raise ValueError(f"{where}.{key}[{i}]: {e}") from None
    return tuple(out)


def _time_range(raw: Any) -> TimeRange:
    if not isinstance(raw, Mapping):
        raise ValueError(f"must be a mapping with start_time and end_time, got {_kind(raw)}")
    _check_keys(raw, {"start_time", "end_time"}, "")
    if raw.get("start_time") in (None, "") or raw.get("end_time") in (None, ""):
        raise ValueError("both start_time and end_time must be provided")
    start, end = _minute(raw["start_time"]), _minute(raw["end_time"])
    if start >= end:
        raise ValueError(
            f"start_time {_hhmm(start)} must be before end_time {_hhmm(end)} "
            "(a range over midnight is two ranges: start-24:00 and 00:00-end)"
        )
    return TimeRange(start, end)


def _minute(value: Any) -> int:
    if _is_int(value):  # PyYAML's base-60 reading of an unquoted HH:MM is its minute count
        if 0 <= value <= 1440:
            return int(value)
        raise ValueError(f"time {value} out of range (write it quoted, 'HH:MM')")
    if not isinstance(value, str) or not _TIME_RE.fullmatch(value):
        raise ValueError(f"couldn't parse time {brief(value)}: want 'HH:MM' from 00:00 to 24:00")
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def _weekday_range(raw: Any) -> InclusiveRange:
    r = _range(raw, _weekday, sexagesimal=False)
    if r.begin > r.end:
        raise ValueError(
            f"{brief(raw)}: end day {WEEKDAYS[r.end]} is before start day {WEEKDAYS[r.begin]} "
            "(weeks run sunday to saturday: write saturday:sunday as two entries)"
        )
    return r


def _day_of_month_range(raw: Any) -> InclusiveRange:
    r = _range(raw, _integer, sexagesimal=True)
    for n in (r.begin, r.end):
        if n == 0 or not -31 <= n <= 31:
            raise ValueError(f"{n} is not a valid day of the month: out of range")
    if r.begin < 0 < r.end:
        raise ValueError(f"{brief(raw)}: end day must be negative if start day is negative")
    # Alertmanager's check on a 28-day month: refuse ranges that are empty in every month.
    if (28 + r.begin if r.begin < 0 else r.begin) > (28 + r.end if r.end < 0 else r.end):
        raise ValueError(f"{brief(raw)}: end day {r.end} is always before start day {r.begin}")
    return r


def _month_range(raw: Any) -> InclusiveRange:
    r = _range(raw, _month, sexagesimal=True)
    if r.begin > r.end:
        raise ValueError(
            f"{brief(raw)}: end month {MONTHS[r.end - 1]} is before start month "
            f"{MONTHS[r.begin - 1]}"
        )
    return r


def _year_range(raw: Any) -> InclusiveRange:
    r = _range(raw, _integer, sexagesimal=False)
    if r.begin > r.end:
        raise ValueError(f"{brief(raw)}: end year {r.end} is before start year {r.begin}")
    return r


def _range(raw: Any, member: Callable[[str], int], *, sexagesimal: bool) -> InclusiveRange:
    if _is_int(raw):
        if sexagesimal and raw >= 60:  # PyYAML read an unquoted "a:b" as a * 60 + b
            return InclusiveRange(member(str(raw // 60)), member(str(raw % 60)))
        return InclusiveRange(member(str(raw)), member(str(raw)))
    if not isinstance(raw, str):
        raise ValueError(f"must be a string such as 'a' or 'a:b', got {_kind(raw)}")
    parts = raw.lower().split(":")
    if len(parts) > 2:
        raise ValueError(f"couldn't parse range {brief(raw)}, invalid format")
    return InclusiveRange(member(parts[0]), member(parts[-1]))


def _weekday(s: str) -> int:
    try:
        return WEEKDAYS.index(s)
    except ValueError:
        raise ValueError(f"{brief(s)} is not a valid weekday (want sunday..saturday)") from None


def _month(s: str) -> int:
    if s in MONTHS:
        return MONTHS.index(s) + 1
    if _INT_RE.fullmatch(s) and 1 <= int(s) <= 12:
        return int(s)
    raise ValueError(f"{brief(s)} is not a valid month (want january..december or 1..12)")


def _integer(s: str) -> int:
    if not _INT_RE.fullmatch(s):
        raise ValueError(f"{brief(s)} is not an integer")
    return int(s)


def _check_keys(raw: Mapping[Any, Any], allowed: Iterable[str], where: str) -> None:
    # Unknown keys are errors (Alertmanager's UnmarshalStrict): a typo must not widen a window.
    allowed = set(allowed)
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        prefix = f"{where}: " if where else ""
        want = ", ".join(sorted(allowed))
        cut = [k if len(k) <= 40 else f"{k[:39]}…" for k in unknown[:5]]
        listed = ", ".join(cut) + (", ..." if len(unknown) > 5 else "")
        raise ValueError(f"{prefix}unknown key(s) {listed} (want {want})")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _kind(value: Any) -> str:
    return type(value).__name__
