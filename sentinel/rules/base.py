"""The rule registry and the helpers every rule kind shares."""

from __future__ import annotations

import fnmatch
import importlib
import re
from collections.abc import Callable, Iterable
from functools import cache, lru_cache
from itertools import islice
from typing import Any

from sentinel.facts.store import FactStore, TaskSeries
from sentinel.model import Sample

GLOB_CACHE = 256  # distinct pattern lists remembered; reloads may bring new ones

# kind -> "module:function"; each function is evaluate(rule, store, now) -> list[Sample] and is
# called with store.lock held, so it sees one consistent snapshot of the facts.
RULES = {
    "no_live_workers": "sentinel.rules.no_live_workers:evaluate",
    "queue_backlog": "sentinel.rules.queue_backlog:evaluate",
    "failure_rate": "sentinel.rules.failure_rate:evaluate",
    "idle_worker": "sentinel.rules.idle_worker:evaluate",
    "task_latency": "sentinel.rules.task_latency:evaluate",
    "broker_unreachable": "sentinel.rules.broker_unreachable:evaluate",
    # Built in, never configured: added by the app whenever it has storage.
    "storage_failing": "sentinel.rules.storage_failing:evaluate",
}

Evaluate = Callable[[Any, FactStore, float], list[Sample]]


@cache
def evaluator(kind: str) -> Evaluate:
    module, _, func = RULES[kind].partition(":")
    return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]


@cache
def holds_during_outage(kind: str) -> bool:
    """Whether the kind's alerts hold their state while the broker is unreachable (every kind
    but the one that reports the outage: their data stops, their verdicts are guesses).
    A kind's module says otherwise with HOLD_DURING_OUTAGE = False."""
    target = RULES.get(kind)
    if target is None:
        return True
    try:
        module = importlib.import_module(target.partition(":")[0])
    except Exception:  # its evaluate fails the same way, and is counted there
        return True
    return bool(getattr(module, "HOLD_DURING_OUTAGE", True))


@lru_cache(maxsize=1024)
def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


@lru_cache(maxsize=1024)
def _prefixes(patterns: tuple[str, ...]) -> tuple[str, ...] | None:
    """The literal heads when every glob is `head*` (most rules are), else None.

    A rule's first tick matches its globs against every known name (10,000 names by 100
    rules is a million matches): str.startswith with a tuple is about twice a regex's speed.
    """
    heads = tuple(p[:-1] for p in patterns)
    if all(p.endswith("*") for p in patterns) and not any(
        c in head for head in heads for c in "*?["
    ):
        return heads
    return None


def matching(names: Iterable[str], patterns: tuple[str, ...]) -> list[str]:
    """The names that match any of the glob patterns (case-sensitive, like Celery's names)."""
    if "*" in patterns:
        return list(names)
    heads = _prefixes(patterns)
    if heads is not None:
        return [n for n in names if n.startswith(heads)]
    match = _compiled(patterns).match
    return [n for n in names if match(n)]


def matching_tasks(store: FactStore, patterns: tuple[str, ...]) -> list[tuple[str, TaskSeries]]:
    """(name, series) of every task name matching the globs, in the store's order.

    Names only ever arrive, so each rule's answer is kept and extended with the names added
    since: a tick does not match every glob against every one of 10,000 names again.
    Call with store.lock held.
    """
    tasks = store.tasks
    cached = store.glob_cache.get(patterns)
    if cached is not None:
        seen, version, found = cached
        if version == store.names_version and seen == len(tasks):
            return found
        if version != store.names_version or seen > len(tasks):
            cached = None
    if cached is None:
        seen, found = 0, []
    new = islice(tasks.items(), seen, None)
    if "*" in patterns:
        found = found + list(new)
    elif (heads := _prefixes(patterns)) is not None:
        found = found + [(n, s) for n, s in new if n.startswith(heads)]
    else:
        match = _compiled(patterns).match
        found = found + [(n, s) for n, s in new if match(n)]
    if len(store.glob_cache) >= GLOB_CACHE and patterns not in store.glob_cache:
        store.glob_cache.clear()
    store.glob_cache[patterns] = (len(tasks), store.names_version, found)
    return found


def matches(name: str, patterns: tuple[str, ...]) -> bool:
    if "*" in patterns:
        return True
    heads = _prefixes(patterns)
    if heads is not None:
        return name.startswith(heads)
    return _compiled(patterns).match(name) is not None
