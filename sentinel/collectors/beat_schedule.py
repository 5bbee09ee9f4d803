"""The periods of a Celery app's `beat_schedule`, for periodic_task rules that give no `every`.

`celery.app: "proj.celery:app"` names the app as `celery -A` does (module, then the attribute;
`proj.celery` alone finds `app` or `celery` in it). Importing it runs the project's code, so it
happens once, at start-up and in `sentinel check`, and any failure is a ConfigError that says
what could not be imported and why, never a traceback.
"""

from __future__ import annotations

import importlib
import sys
from datetime import timedelta
from typing import Any

from sentinel.config.loader import ConfigError


def load_app(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # like `celery -A`: the project from the working directory
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # the project's own import failing is the user's to see
        raise ConfigError(
            [f"celery.app: cannot import {module_name!r}: {type(e).__name__}: {e}"]
        ) from None
    names = [attr] if attr else ["app", "celery"]
    for name in names:
        app = getattr(module, name, None)
        if app is not None and hasattr(app, "conf"):
            return app
    raise ConfigError(
        [f"celery.app: {module_name!r} has no Celery app named {' or '.join(map(repr, names))}"]
    )


def period(schedule: Any) -> float | None:
    """Seconds between runs of one beat_schedule entry's `schedule`, or None when it has no
    fixed period (a crontab, a solar schedule: give such a task `every` in the rule)."""
    if isinstance(schedule, timedelta):
        return schedule.total_seconds()
    if isinstance(schedule, int | float) and not isinstance(schedule, bool):
        return float(schedule)
    run_every = getattr(schedule, "run_every", None)  # celery.schedules.schedule
    if isinstance(run_every, timedelta) and type(schedule).__name__ == "schedule":
        return run_every.total_seconds()
    return None


def periods(path: str) -> dict[str, float]:
    """Task name -> the shortest period beat runs it at (a task in two entries runs at both)."""
    app = load_app(path)
    try:
        entries = dict(app.conf.beat_schedule or {})
    except Exception as e:
        raise ConfigError([f"celery.app: reading beat_schedule failed: {e}"]) from None
    out: dict[str, float] = {}
    for entry in entries.values():
        if not isinstance(entry, dict) or not isinstance(entry.get("task"), str):
            continue
        seconds = period(entry.get("schedule"))
        if seconds is not None and seconds > 0:
            task = entry["task"]
            out[task] = min(seconds, out.get(task, seconds))
    return out


def resolve(config: Any) -> dict[str, float]:
    """The beat periods the config's periodic_task rules need ({} when none needs one), or a
    ConfigError naming every task a rule watches literally that gets no period either way."""
    rules = [
        (i, r) for i, r in enumerate(config.rules) if r.kind == "periodic_task" and r.every is None
    ]
    if not rules or config.celery.app is None:
        return {}
    schedule = periods(config.celery.app)
    errors = [
        f"rules[{i}].tasks: {name!r} has no `every` and is not in the beat_schedule of"
        f" {config.celery.app}"
        for i, rule in rules
        for name in rule.tasks
        if not any(c in name for c in "*?[") and name not in schedule
    ]
    if errors:
        raise ConfigError(errors)
    return schedule
