"""What every rule kind shares: the schema base, the `RuleKind` a kind's module describes itself
with, and the name-matching helpers. The registry of kinds is `sentinel.rules.RULES`."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from sentinel.facts.store import FactStore
from sentinel.facts.tasks import TaskSeries
from sentinel.fields import NAME, Strict, Wait, check_template
from sentinel.model import Sample, Severity
from sentinel.units import brief

GLOB_CACHE = 256  # distinct pattern lists remembered; reloads may bring new ones

# evaluate(rule, store, now) -> list[Sample], called with store.lock held, so it sees one
# consistent snapshot of the facts (the lock is held per rule: two rules of one tick may see
# facts a few events apart).
Evaluate = Callable[[Any, FactStore, float], list[Sample]]
# per_series(rule, store, now, series) -> one Sample per (name, series) given, in order: the
# same evaluation as `evaluate` over only those of the rule's matching task series. Called with
# store.lock held. See RuleKind.per_series.
EvaluateSeries = Callable[[Any, FactStore, float, list[tuple[str, TaskSeries]]], list[Sample]]
# How a kind's value and threshold read on a terminal: a count, a ratio shown as a percentage,
# or seconds.
Unit = Literal["count", "percent", "seconds"]

# A kind that names no summary still gets one rather than breaking its rule.
GENERIC_SUMMARY = "{{ rule }}: value {{ value|number }} (threshold {{ threshold|number }})"


class RuleBase(Strict):
    if TYPE_CHECKING:  # every kind's schema declares it, as a Literal (the union's tag)
        kind: str
    name: str = Field(pattern=NAME)
    for_: Wait = Field(0.0, alias="for")
    severity: Severity = Severity.WARNING
    summary: str | None = None
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not re.match(NAME, key):
                raise ValueError(f"label name {brief(key)} must match {NAME}")
            if key in ("alertname", "severity"):
                raise ValueError(f"label {brief(key)} is set by sentinel and cannot be overridden")
        return v

    @field_validator("summary", "description")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        if v is not None:
            check_template(v, "template")
        return v

    def describe(self) -> str:
        """One line for `sentinel check`."""
        return ""


@dataclass(frozen=True, slots=True)
class RuleKind:
    """Everything the rest of sentinel knows about one kind, declared by the kind's own module
    as `KIND`: the config's rule union, the book's summaries, the display's units and the
    liveness watch are all read from the registry of these."""

    kind: str
    evaluate: Evaluate
    schema: type[RuleBase] | None  # None: built in, never configured (storage_failing)
    summary: str = GENERIC_SUMMARY  # the default summary template
    unit: Unit = "count"
    # Evaluated at once when a worker dies or comes back (the app's liveness watch).
    liveness: bool = False
    # Whether its alerts hold their state while the broker is unreachable: true of every kind
    # but the one that reports the outage (their data stops, their verdicts are guesses).
    holds_during_outage: bool = True
    # Whether its `window` is read from the task series' rings (whose retention is the longest
    # such window); lost_task's and worker_flapping's windows are kept by their own facts.
    reads_rings: bool = True
    # Optional, for kinds over task series (a rule with `tasks` and `window`) whose sample of a
    # series depends only on the rule and that series' window answers over `rule.window`
    # (store.window_counts / window_quantile / window_sketch). Given, the book asks it each
    # tick only about the series whose answers may have changed since the rule's last tick
    # (written to, or a bucket left the window: facts/journal.py) and keeps the other series'
    # samples from before (rules/incremental.py): a tick costs O(changed series). `evaluate`
    # is still what one-shot callers use; `evaluate = over_matching(per_series)` keeps the two
    # one function. A kind that reads anything else (workers, queues, time) must not give it.
    per_series: EvaluateSeries | None = None


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


def over_matching(per_series: EvaluateSeries) -> Evaluate:
    """A kind's full `evaluate` from its `per_series`: every matching task series."""

    def evaluate(rule: Any, store: FactStore, now: float) -> list[Sample]:
        return per_series(rule, store, now, matching_tasks(store, rule.tasks))

    evaluate.__doc__ = per_series.__doc__
    return evaluate


def matches(name: str, patterns: tuple[str, ...]) -> bool:
    if "*" in patterns:
        return True
    heads = _prefixes(patterns)
    if heads is not None:
        return name.startswith(heads)
    return _compiled(patterns).match(name) is not None
