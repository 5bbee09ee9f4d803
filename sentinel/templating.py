"""Jinja2 environment shared by alert annotations and channel messages."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from sentinel.units import format_duration


def _duration(seconds: Any) -> str:
    if seconds is None:
        return "n/a"
    seconds = float(seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s".replace(".0s", "s")
    return format_duration(round(seconds))


def _percent(ratio: Any) -> str:
    return "n/a" if ratio is None else f"{float(ratio) * 100:.1f}%"


def _number(value: Any) -> str:
    if value is None:
        return "n/a"
    value = float(value)
    return f"{value:.0f}" if value == int(value) else f"{value:.3g}"


# Sandboxed: a template reaches the values it is given, not Python's object graph
# (`{{ ''.__class__.__mro__ }}`) nor their mutating methods; a config that may be edited by more
# people than may run code on the host cannot turn a summary into code.
ENV = ImmutableSandboxedEnvironment(
    autoescape=False, undefined=jinja2.ChainableUndefined, keep_trailing_newline=False
)
ENV.filters.update(duration=_duration, percent=_percent, number=_number)


@lru_cache(maxsize=4096)
def compile_template(source: str) -> jinja2.Template:
    return ENV.from_string(source)


def render(source: str, context: dict[str, Any]) -> str:
    try:
        return compile_template(source).render(context)
    except Exception as e:  # a user's template must never stop an evaluation or a page
        return f"[template error: {type(e).__name__}: {e}] {source}"
