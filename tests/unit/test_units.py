from __future__ import annotations

import pytest

from sentinel.units import format_duration, parse_duration, parse_ratio


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15s", 15.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        (90, 90.0),
        (2.5, 2.5),
        ("90", 90.0),
        ("2.5s", 2.5),
        ("250ms", 0.25),
        ("0s", 0.0),
        (0, 0.0),
        (" 5m ", 300.0),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "bad",
    [
        "5x",
        "-1",
        -1,
        -0.5,
        "-5m",
        "",
        "   ",
        True,
        False,
        None,
        "5 m",
        "m5",
        "1h 30m",
        "5m30",
        "s",
        [5],
        "nan",
        "inf",
        float("nan"),
        float("inf"),
    ],
)
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "ratio"),
    [
        (0.05, 0.05),
        ("0.05", 0.05),
        ("5%", 0.05),
        ("0.5%", 0.005),
        ("100%", 1.0),
        ("0%", 0.0),
        (1, 1.0),
        (0, 0.0),
    ],
)
def test_parse_ratio(text: object, ratio: float) -> None:
    assert parse_ratio(text) == pytest.approx(ratio)


@pytest.mark.parametrize(
    "bad", [1.5, "1.5", "150%", "abc", "%", "", "-5%", -0.1, True, None, "nan", float("nan")]
)
def test_parse_ratio_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_ratio(bad)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(30, "30s"), (300, "5m"), (7200, "2h"), (86400, "1d"), (90, "90s"), (2.5, "2.5s"), (0, "0s")],
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds
