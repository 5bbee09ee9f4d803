"""How values and tables look on a terminal: `sentinel eval`, `silence list`, the demo."""

from __future__ import annotations

from collections.abc import Sequence


def format_value(kind: str | None, value: float | None) -> str:
    """A rule's value or threshold in its own unit: a percentage, seconds, or a count."""
    if value is None:
        return "n/a"
    # The kind's own unit, from the rule registry: imported here, not with the module, so
    # the CLI starts (and `check` refuses a hostile file) without pydantic and the rules.
    from sentinel.rules import unit

    shown_as = unit(kind)
    if shown_as == "percent":
        return f"{value * 100:.1f}%"
    if shown_as == "seconds":
        return f"{value:.3f}s" if value < 10 else f"{value:.0f}s"
    return f"{value:g}"


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart; the first row is the header."""
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
