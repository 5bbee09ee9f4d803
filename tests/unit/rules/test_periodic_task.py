from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from sentinel.collectors.beat_schedule import period, periods, resolve
from sentinel.config import ConfigError, parse
from sentinel.config.check import check
from sentinel.db.sqlite import Database
from sentinel.facts.periodic import Remembered
from sentinel.facts.periodic_repo import SqlPeriodicRepo
from sentinel.facts.store import FactStore
from sentinel.rules.periodic_task import PeriodicTaskRule
from tests.helpers import T0
from tests.unit.rules.kit import by_label, run, task

RULE = PeriodicTaskRule(
    name="BeatMissed", kind="periodic_task", tasks=("reports.nightly",), every=60.0, grace=10.0
)


def store_started(at: float = T0) -> FactStore:
    store = FactStore()
    store.started_at = at
    return store


def sent(store: FactStore, name: str, at: float, kind: str = "sent") -> None:
    store.apply_event(task(kind, f"{name}-{at}", at, name=name), at)


@pytest.mark.parametrize(
    ("last", "at", "active"),
    [
        (T0 + 10, T0 + 80, False),  # 70 s: exactly every + grace
        (T0 + 10, T0 + 81, True),
        (None, T0 + 70, False),  # never seen: one every + grace from the start
        (None, T0 + 71, True),
    ],
)
def test_every_plus_grace(last: float | None, at: float, active: bool) -> None:
    store = store_started()
    if last is not None:
        sent(store, "reports.nightly", last)
    [sample] = run(RULE, store, at)
    assert sample.labels == {"task": "reports.nightly"}
    assert sample.threshold == 70.0 and sample.active is active


def test_received_is_the_fallback_only_without_sent_events() -> None:
    store = store_started()
    sent(store, "reports.nightly", T0 + 50, kind="received")
    assert run(RULE, store, T0 + 100)[0].active is False  # received 50 s ago
    sent(store, "reports.nightly", T0 + 20, kind="sent")
    # A task-sent was seen: from now on only task-sent counts (beat's own record of runs).
    assert run(RULE, store, T0 + 100)[0].active is True


@pytest.mark.parametrize(
    ("remembered", "at", "active", "value"),
    [
        # Overdue already while the previous run watched (beat died an hour ago): at once.
        (Remembered(T0 - 3600, True, T0 - 60), T0 + 1, True, 3601.0),
        # Not overdue when the previous run stopped: what happened since is unknown, so one
        # full every + grace from this start.
        (Remembered(T0 - 3600, True, T0 - 3590), T0 + 1, False, 3601.0),
        (Remembered(T0 - 3600, True, T0 - 3590), T0 + 71, True, 3671.0),
    ],
)
def test_the_restart_rule(remembered: Remembered, at: float, active: bool, value: float) -> None:
    store = store_started()
    store.periodic.remembered = {"reports.nightly": remembered}
    [sample] = run(RULE, store, at)
    assert (sample.active, sample.value) == (active, value)
    sent(store, "reports.nightly", at)  # beat is back
    assert run(RULE, store, at + 1)[0].active is False


def test_last_seen_survives_a_restart(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.db")
    store = store_started()
    sent(store, "reports.nightly", T0 + 5)
    run(RULE, store, T0 + 100)  # watched from now on
    SqlPeriodicRepo(db).save(store.periodic.rows(T0 + 100))
    db.close()
    again = Database(tmp_path / "s.db")
    remembered = SqlPeriodicRepo(again).load()
    assert remembered == {"reports.nightly": Remembered(T0 + 5, True, T0 + 100)}
    store = store_started(T0 + 200)
    store.periodic.remembered = remembered
    [sample] = run(RULE, store, T0 + 200)
    assert sample.active is True and sample.value == 195.0  # overdue at T0 + 75 < T0 + 100
    again.close()


def test_globs_take_the_period_from_the_beat_schedule() -> None:
    store = store_started()
    store.periodic.schedule = {"app.hourly": 3600.0, "app.fast": 2.0}
    rule = PeriodicTaskRule(name="B", kind="periodic_task", tasks=("app.*",), grace=1.0)
    sent(store, "app.fast", T0 + 1)
    sent(store, "app.unscheduled", T0 + 1)  # seen, but no period: not watched
    samples = by_label(run(rule, store, T0 + 10), "task")
    assert set(samples) == {"app.hourly", "app.fast"}
    assert samples["app.fast"].active is True and samples["app.fast"].threshold == 3.0
    assert samples["app.hourly"].active is False


@pytest.mark.parametrize(
    ("schedule", "seconds"),
    [(timedelta(minutes=5), 300.0), (30, 30.0), (2.5, 2.5), (True, None), ("daily", None)],
)
def test_schedule_periods(schedule: object, seconds: float | None) -> None:
    assert period(schedule) == seconds


def test_schedule_periods_of_celery_schedules() -> None:
    from celery.schedules import crontab, schedule

    assert period(schedule(timedelta(seconds=7))) == 7.0
    assert period(crontab(minute="*/5")) is None  # no fixed period: give `every`


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Celery project on sys.path with a beat_schedule."""
    name = f"proj_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            from datetime import timedelta
            from celery import Celery
            app = Celery("proj", broker="memory://", set_as_current=False)
            app.conf.beat_schedule = {
                "a": {"task": "reports.nightly", "schedule": timedelta(minutes=5)},
                "b": {"task": "reports.nightly", "schedule": 60.0},
                "c": {"task": "cleanup", "schedule": 30},
            }
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_periods_from_the_app(project: str) -> None:
    assert periods(f"{project}:app") == {"reports.nightly": 60.0, "cleanup": 30.0}
    assert periods(project) == {"reports.nightly": 60.0, "cleanup": 30.0}  # finds `app`


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no_such_module_xyz:app", "cannot import 'no_such_module_xyz': ModuleNotFoundError"),
        ("{project}:nope", "has no Celery app named 'nope'"),
    ],
)
def test_an_app_that_cannot_be_imported_is_a_clear_error(
    project: str, path: str, message: str
) -> None:
    with pytest.raises(ConfigError) as e:
        periods(path.format(project=project))
    assert message in e.value.errors[0]


def test_check_reports_the_schedule_problems(project: str) -> None:
    text = f"""
celery: {{app: "{project}:app"}}
rules:
  - {{name: B, kind: periodic_task, tasks: [reports.nightly, not.scheduled]}}
"""
    report = check(text, env={})
    assert report.config is None
    assert report.errors == (
        f"rules[0].tasks: 'not.scheduled' has no `every` and is not in the beat_schedule of"
        f" {project}:app",
    )
    ok = parse(text.replace(", not.scheduled", ""), env={})
    assert resolve(ok) == {"reports.nightly": 60.0, "cleanup": 30.0}


def test_every_is_required_without_an_app() -> None:
    with pytest.raises(ConfigError) as e:
        parse("rules: [{name: B, kind: periodic_task, tasks: [x]}]", env={})
    assert e.value.errors[0].startswith("rules[0].every: required unless celery.app")
