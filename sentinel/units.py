"""Parsing of the human spellings used in rules.yaml: durations and ratios."""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def digits(n: int) -> int:
    """About how many decimal digits an int has, without str() (refused past 4,300 digits)."""
    return int(abs(n).bit_length() * 0.30103) + 1


def brief(value: object, width: int = 40) -> str:
    """repr() cut to `width` characters: an error line must not echo a 100 KiB value."""
    text = repr(value)
    return text if len(text) <= width else f"{text[: width - 1]}…({len(text)} characters)"


def parse_duration(value: object) -> float:
    """`15s`, `5m`, `1h30m`, `2d`, or a plain number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s, 5m, 2h, got {brief(value)}")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int of 400 digits has no float
            raise ValueError(f"out of range: a number of {digits(int(value))} digits") from None
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for match in _PART.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNITS[match.group(2)]
                pos = match.end()
            if pos != len(text) or not text:
                raise ValueError(
                    f"expected a duration like 30s, 5m, 2h, 1d, got {brief(value)}"
                ) from None
    else:
        raise ValueError(f"expected a duration like 30s, 5m, 2h, got {brief(value)}")
    if not math.isfinite(seconds):
        raise ValueError(f"expected a finite duration, got {brief(value)}")
    if seconds < 0:
        raise ValueError(f"must not be negative, got {brief(value)}")
    return seconds


def parse_ratio(value: object) -> float:
    """`0.05` or `"5%"` -> 0.05, checked to lie within [0, 1]."""
    if isinstance(value, bool):
        raise ValueError(f"expected a ratio like 0.05 or '5%', got {brief(value)}")
    if isinstance(value, int | float):
        try:
            ratio = float(value)
        except OverflowError:
            raise ValueError(f"out of range: a number of {digits(int(value))} digits") from None
    elif isinstance(value, str):
        text = value.strip()
        try:
            ratio = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f"expected a ratio like 0.05 or '5%', got {brief(value)}") from None
    else:
        raise ValueError(f"expected a ratio like 0.05 or '5%', got {brief(value)}")
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"must be between 0 and 1 (0% and 100%), got {brief(value)}")
    return ratio


def format_duration(seconds: float) -> str:
    if seconds and seconds == int(seconds):
        s = int(seconds)
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if s % size == 0:
                return f"{s // size}{unit}"
        return f"{s}s"
    return f"{seconds:g}s"
