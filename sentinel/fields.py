"""Field types shared by every schema (config sections, rule kinds, channels): each duration and
count has bounds (README: "Bounds"), checked once here.

A value outside them is an error at `check`, never a crash at run time: `interval: 1e15`
overflowed the scheduler, `inspect_timeout: 1e15` held SIGTERM forever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import jinja2
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from sentinel.units import digits, format_duration, parse_duration, parse_ratio

Ratio = Annotated[float, BeforeValidator(parse_ratio)]
Globs = tuple[str, ...]

NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def check_template(source: str, what: str) -> None:
    """Reject a Jinja2 syntax error at load time rather than sending it to a channel."""
    try:
        jinja2.Environment().parse(source)
    except jinja2.TemplateSyntaxError as e:
        raise ValueError(f"{what}: invalid Jinja2 (line {e.lineno}): {e.message}") from None
    except RecursionError:  # {{ ((((...)))) }}: the parser recurses once per level
        raise ValueError(f"{what}: template nested too deeply") from None


DAY = 86400.0


def _shown(value: float, unit: Callable[[float], str]) -> str:
    if isinstance(value, int) and abs(value) >= 10**18:
        return f"a number of {digits(value)} digits"
    return unit(value)


def _within(
    low: float, high: float, positive: bool, unit: Callable[[float], str]
) -> Callable[[Any], Any]:
    """The one bounds check behind every Duration and Count field."""

    if low <= 0 and positive:
        expected = f"> 0 and at most {unit(high)}"
    elif low <= 0:
        expected = f"at most {unit(high)}"
    else:
        expected = f"between {unit(low)} and {unit(high)}"

    def check(value: Any) -> Any:
        if positive and value <= 0:
            raise ValueError("must be > 0")
        if not low <= value <= high:
            raise ValueError(f"must be {expected}, got {_shown(value, unit)}")
        return value

    return check


def _seconds(value: float) -> str:
    if value >= 100 * DAY:  # 1e15 reads better than 11574074074d
        return f"{value:g}s"
    return format_duration(value) if value >= 1 or value == 0 else f"{value * 1000:g}ms"


def duration(high: float, *, low: float = 0.0, positive: bool = False) -> Any:
    """A duration field (`15s`, `5m`, or seconds) within [low, high]; > 0 when positive."""
    return Annotated[
        float,
        BeforeValidator(parse_duration),
        AfterValidator(_within(low, high, positive, _seconds)),
    ]


def _not_bool(value: Any) -> Any:
    # YAML reads true/false/yes/no/on/off as booleans, and pydantic would take True for 1.
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {str(value).lower()} (a YAML boolean)")
    return value


def count(high: int, *, low: int = 0, positive: bool = False) -> Any:
    """An integer field within [low, high]; > 0 when positive. Never a boolean."""
    return Annotated[
        int, BeforeValidator(_not_bool), AfterValidator(_within(low, high, positive, str))
    ]


Period = duration(3600.0, low=1.0, positive=True)  # how often sentinel does something
Timeout = duration(60.0, positive=True)  # how long one call may take (also bounds shutdown)
Window = duration(7 * DAY, positive=True)  # how far back a rule looks
Wait = duration(30 * DAY)  # for, group_wait, retention: how long to wait
PositiveWait = duration(30 * DAY, positive=True)
Percentile = Annotated[float, BeforeValidator(_not_bool), Field(gt=0, lt=100)]
Port = count(65535, positive=True)
# Per-rule counts: a queue depth, workers, finished tasks. Past these nothing is meaningful.
MessageCount = count(10**9, positive=True)
WorkerCount = count(10**6, positive=True)
SampleCount = count(10**9, positive=True)
# Caps of the fact store: each one is memory, so an absurd cap is no cap.
SeriesCap = count(10**6, positive=True)
InflightCap = count(10**7, positive=True)
MemoryMiB = count(16_384, positive=True)
BucketWidth = duration(3600.0, low=1.0)
AlertCount = count(100_000)
InFlight = count(256, positive=True)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
