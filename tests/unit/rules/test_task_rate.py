from __future__ import annotations

from typing import Any

import pytest

from sentinel.config import ConfigError, parse
from sentinel.facts.store import FactStore
from sentinel.rules.task_rate import TaskRateRule
from tests.helpers import T0
from tests.unit.rules.kit import by_label, run, task


def rate(**kw: Any) -> TaskRateRule:
    return TaskRateRule(name="Rate", kind="task_rate", **kw)


def retries(store: FactStore, name: str, n: int, now: float) -> None:
    store.apply_events(
        [task("retried", f"{name}-{now}-{i}", now, name=name) for i in range(n)], now
    )


def store_started(at: float = T0) -> FactStore:
    store = FactStore(bucket=1.0, retention=600.0)
    store.started_at = at
    return store


def test_above_is_events_per_second_over_the_window() -> None:
    store = store_started()
    rule = rate(tasks=("app.*",), event="retried", window=10.0, above=2.0)
    retries(store, "app.charge", 25, T0 + 5)  # 25 in 10 s: 2.5/s
    retries(store, "app.email", 10, T0 + 5)  # 1/s
    samples = by_label(run(rule, store, T0 + 9), "task")
    assert samples["app.charge"].value == 2.5 and samples["app.charge"].active is True
    assert samples["app.email"].value == 1.0 and samples["app.email"].active is False
    # Once the storm has left the window the rate is 0 again.
    assert by_label(run(rule, store, T0 + 20), "task")["app.charge"].active is False


def test_other_event_types_do_not_count() -> None:
    store = store_started()
    retries(store, "app.charge", 50, T0 + 1)
    rule = rate(event="failed", window=10.0, above=0.5)
    assert by_label(run(rule, store, T0 + 2), "task")["app.charge"].value == 0.0


@pytest.mark.parametrize(
    ("at", "active"),
    [
        (T0 + 5, None),  # the window reaches back before sentinel started: too early to tell
        (T0 + 30, True),  # a full window of silence
    ],
)
def test_below_waits_for_a_full_window_after_start(at: float, active: bool | None) -> None:
    store = store_started()
    store.apply_events([task("received", "a", T0 + 1, name="app.tick")], T0 + 1)
    rule = rate(tasks=("app.*",), event="received", window=20.0, below=0.1)
    assert by_label(run(rule, store, at), "task")["app.tick"].active is active


def test_below_resolves_on_a_steady_rate() -> None:
    store = store_started()
    rule = rate(tasks=("app.tick",), event="received", window=10.0, below=0.1)
    for i in range(20):
        store.apply_events([task("received", f"t{i}", T0 + 20 + i, name="app.tick")], T0 + 20 + i)
    [sample] = run(rule, store, T0 + 39)
    assert 1.0 <= sample.value <= 1.1 and sample.active is False  # exact to one bucket


def test_below_measures_a_literal_name_never_seen_but_not_a_glob() -> None:
    store = store_started()
    rule = rate(tasks=("app.expected", "other.*"), event="sent", window=10.0, below=0.1)
    [sample] = run(rule, store, T0 + 11)
    assert sample.labels == {"task": "app.expected"}
    assert (sample.value, sample.active) == (0.0, True)
    # `above` never reports a name it has not seen: 0/s is never above anything.
    assert run(rate(tasks=("app.expected",), event="sent", above=1.0), store, T0 + 11) == []


@pytest.mark.parametrize(
    "bounds",
    ["", "above: 1\n    below: 2", "above: -1", "below: 1e12"],
)
def test_exactly_one_sane_bound(bounds: str) -> None:
    text = f"""
rules:
  - name: Rate
    kind: task_rate
    event: retried
    {bounds}
"""
    with pytest.raises(ConfigError):
        parse(text, env={})


def test_unknown_event_type_is_an_error() -> None:
    with pytest.raises(ConfigError):
        parse("rules: [{name: R, kind: task_rate, event: exploded, above: 1}]", env={})
