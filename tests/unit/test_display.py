from __future__ import annotations

import pytest

from sentinel.display import format_value, table


@pytest.mark.parametrize(
    ("kind", "value", "text"),
    [
        ("failure_rate", 0.5, "50.0%"),
        ("task_latency", 0.2997, "0.300s"),
        ("idle_worker", 41.2, "41s"),
        ("broker_unreachable", 3.0, "3.000s"),
        ("queue_backlog", 1204.0, "1204"),
        ("no_live_workers", 0.0, "0"),
        ("failure_rate", None, "n/a"),
    ],
)
def test_values_in_their_unit(kind: str, value: float | None, text: str) -> None:
    assert format_value(kind, value) == text


def test_table_aligns_columns_and_trims_trailing_space() -> None:
    assert table([("A", "LONG", "C"), ("xyz", "b", "")]) == ["A    LONG  C", "xyz  b"]
    assert table([]) == []
