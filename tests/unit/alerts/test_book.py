from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sentinel.alerts.book as book_module
from sentinel.alerts.book import RESOLVED_RETENTION, RESTORE_GRACE, AlertBook, Transition
from sentinel.alerts.repo import SqlAlertRepo
from sentinel.clock import FakeClock
from sentinel.config import Config, parse
from sentinel.db.sqlite import Database
from sentinel.facts.store import FactStore
from sentinel.gc_pause import gc_paused
from sentinel.model import Labels, State
from tests.helpers import T0

RULES = """
defaults:
  labels: {env: prod}
rules:
  - name: QueueBacklog
    kind: queue_backlog
    queues: ["*"]
    threshold: 100
    for: 1m
    severity: warning
  - name: NoLiveWorkers
    kind: no_live_workers
    for: 30s
    severity: critical
    summary: "No Celery worker has been alive for {{ for }} ({{ value|number }} live)"
    description: "rule {{ rule }} in {{ env }}"
"""


@pytest.fixture
def config() -> Config:
    return parse(RULES, {})


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "sentinel.db"


class Harness:
    """A fact store, a fake clock and an alert book on a SQLite file, restartable."""

    def __init__(self, config: Config, db_path: Path) -> None:
        self.config = config
        self.db_path = db_path
        self.clock = FakeClock(T0)
        self.store = FactStore()
        self.db = Database(db_path)
        self.book = AlertBook(SqlAlertRepo(self.db))

    def restart(self) -> None:
        """The daemon stops and starts: memory is lost, the SQLite file is not."""
        self.db.close()
        self.store = FactStore()
        self.db = Database(self.db_path)
        self.book = AlertBook(SqlAlertRepo(self.db))

    def depth(self, queue: str, depth: int | None) -> None:
        if depth is None:
            self.store.set_queue_depths({}, {queue: "timeout"}, self.clock.now())
        else:
            self.store.set_queue_depths({queue: (depth, 1)}, {}, self.clock.now())

    def workers_alive(self, *hostnames: str) -> None:
        for hostname in hostnames:
            event = {"type": "worker-heartbeat", "hostname": hostname, "freq": 2.0}
            self.store.apply_event(event, self.clock.now())
        self.store.probe_ok("inspect", self.clock.now())

    def tick(self, rules: Any = None) -> list[Transition]:
        transitions, _rows = self.book.tick(
            self.config.rules if rules is None else rules, self.store, self.clock.now()
        )
        # whatever is in memory is also on disk
        assert SqlAlertRepo(self.db).load() == self.book.alerts
        return transitions

    def alert(self, rule: str, **labels: str) -> Any:
        matches = [
            a
            for a in self.book.alerts.values()
            if a.rule == rule and a.labels.items() >= labels.items()
        ]
        assert len(matches) <= 1
        return matches[0] if matches else None


@pytest.fixture
def h(config: Config, db_path: Path) -> Iterator[Harness]:
    harness = Harness(config, db_path)
    yield harness
    harness.db.close()


def moves(transitions: list[Transition]) -> list[tuple[str | None, str | None]]:
    return sorted(
        (
            t.before.value if t.before else None,
            t.alert.state.value if t.alert else None,
        )
        for t in transitions
    )


def test_pending_firing_resolved(h: Harness) -> None:
    h.depth("celery", 500)
    assert moves(h.tick()) == [(None, "pending")]
    alert = h.alert("QueueBacklog", queue="celery")
    assert alert.state is State.PENDING
    assert alert.active_at == T0
    assert alert.labels == Labels(
        alertname="QueueBacklog", severity="warning", env="prod", queue="celery"
    )
    assert (alert.value, alert.threshold) == (500.0, 100.0)

    h.clock.advance(30)
    h.depth("celery", 600)
    assert h.tick() == []
    assert h.alert("QueueBacklog").state is State.PENDING
    assert h.alert("QueueBacklog").value == 600.0

    h.clock.advance(30)  # for: 1m has elapsed
    assert moves(h.tick()) == [("pending", "firing")]
    alert = h.alert("QueueBacklog")
    assert (alert.state, alert.active_at, alert.fired_at) == (State.FIRING, T0, T0 + 60)

    h.clock.advance(15)
    assert h.tick() == []  # still firing: no transition, so no notification

    h.clock.advance(15)
    h.depth("celery", 3)
    assert moves(h.tick()) == [("firing", "resolved")]
    alert = h.alert("QueueBacklog")
    assert (alert.state, alert.resolved_at, alert.fired_at) == (State.RESOLVED, T0 + 90, T0 + 60)
    assert h.book.active() == []


def test_rows_show_every_verdict(h: Harness) -> None:
    h.depth("celery", 500)
    h.depth("mail", 5)
    h.depth("broken", 7)
    h.depth("broken", None)  # it was measured once; now the probe fails
    _, rows = h.book.tick(h.config.rules, h.store, h.clock.now())
    states = {(r.rule, r.labels.get("queue")): r.state for r in rows}
    assert states == {
        ("QueueBacklog", "celery"): "pending",
        ("QueueBacklog", "mail"): "inactive",
        ("QueueBacklog", "broken"): "unknown",
        ("NoLiveWorkers", None): "unknown",  # no evidence about workers yet
    }


def test_pending_that_clears_is_dropped(h: Harness) -> None:
    h.depth("celery", 500)
    h.tick()
    h.clock.advance(15)
    h.depth("celery", 50)
    transitions = h.tick()
    assert moves(transitions) == [("pending", None)]
    assert h.book.alerts == {}


def test_unknown_verdict_holds_state(h: Harness) -> None:
    h.depth("celery", 500)
    h.tick()
    h.clock.advance(60)
    h.tick()
    assert h.alert("QueueBacklog").state is State.FIRING
    h.clock.advance(15)
    h.depth("celery", None)  # the depth probe failed: no verdict
    assert h.tick() == []
    assert h.alert("QueueBacklog").state is State.FIRING
    assert h.alert("QueueBacklog").value == 500.0


def test_annotations_rendered(h: Harness) -> None:
    h.depth("celery", 1500)
    h.workers_alive("w1@h")
    h.tick()
    assert h.alert("QueueBacklog").annotations == {
        "summary": "Queue celery has 1500 messages waiting (threshold 100)"
    }
    h.clock.advance(10)  # w1's heartbeat expired: no live worker
    h.tick()
    assert h.alert("NoLiveWorkers").state is State.PENDING
    assert h.alert("NoLiveWorkers").annotations == {
        "summary": "No Celery worker has been alive for 0s (0 live)",
        "description": "rule NoLiveWorkers in prod",
    }
    h.clock.advance(12)  # pending: as long as it has held so far, not the rule's `for`
    h.tick()
    assert (
        h.alert("NoLiveWorkers")
        .annotations["summary"]
        .startswith("No Celery worker has been alive for 12s")
    )
    h.clock.advance(18)
    h.tick()
    assert h.alert("NoLiveWorkers").state is State.FIRING
    assert h.alert("NoLiveWorkers").annotations["summary"] == (
        "No Celery worker has been alive for 30s (0 live)"
    )
    # re-rendered as the value changes
    h.depth("celery", 2500)
    h.tick()
    assert h.alert("QueueBacklog").annotations["summary"].startswith("Queue celery has 2500")


@pytest.mark.parametrize(
    ("rule", "summary"),
    [
        (
            "- {name: R, kind: failure_rate, threshold: 5%, window: 5m, min_count: 2}",
            "Task app.add failed 50.0% of runs over 5m (threshold 5.0%)",
        ),
        (
            "- {name: R, kind: task_latency, measure: runtime, threshold: 30s, min_count: 2}",
            "Task app.add p95 runtime is 1m over 10m (threshold 30s)",
        ),
        (
            "- {name: R, kind: idle_worker, idle_for: 1s}",
            "Worker w1@h has started no task for 5s",
        ),
        (
            "- {name: R, kind: no_live_workers, min_workers: 3, for: 2m}",
            "1 live Celery worker(s) (need at least 3)",
        ),
        (
            "- {name: R, kind: no_live_workers, min_workers: 3, for: 2m,"
            " summary: 'down for {{ for }}: {{ labels.alertname }} {{ severity }}'}",
            "down for 0s: R warning",  # pending, just now: `for` is how long it has held
        ),
        (
            # Syntax errors are rejected by the config; a runtime error must not break a tick.
            "- {name: R, kind: no_live_workers, min_workers: 3, summary: '{{ value // 0 }}'}",
            "[template error",
        ),
    ],
)
def test_default_summaries(tmp_path: Path, rule: str, summary: str) -> None:
    config = parse(f"rules:\n  {rule}\n", {})
    store = FactStore()
    store.apply_event({"type": "worker-heartbeat", "hostname": "w1@h", "freq": 60.0}, T0 - 5)
    store.apply_events(
        [
            {"type": "task-received", "uuid": "a", "name": "app.add", "timestamp": T0 - 60},
            {"type": "task-started", "uuid": "a", "timestamp": T0 - 60},
            {"type": "task-failed", "uuid": "a", "timestamp": T0, "runtime": 60.0},
            {"type": "task-received", "uuid": "b", "name": "app.add", "timestamp": T0 - 60},
            {"type": "task-started", "uuid": "b", "timestamp": T0 - 60},
            {"type": "task-succeeded", "uuid": "b", "timestamp": T0, "runtime": 60.0},
        ],
        T0 - 5,
    )
    book = AlertBook(None)
    book.tick(config.rules, store, T0)
    [alert] = book.alerts.values()
    assert alert.annotations["summary"].startswith(summary), alert.annotations


def test_firing_alert_survives_restart(h: Harness) -> None:
    h.depth("celery", 500)
    h.tick()
    h.clock.advance(60)
    h.tick()
    fired = h.alert("QueueBacklog")
    assert fired.state is State.FIRING

    h.restart()
    assert h.alert("QueueBacklog") == fired  # loaded as it was
    h.clock.advance(15)
    h.depth("celery", 500)
    assert h.tick() == []  # still firing: not pending again, nothing to re-page
    alert = h.alert("QueueBacklog")
    assert (alert.state, alert.active_at, alert.fired_at) == (State.FIRING, T0, T0 + 60)

    h.clock.advance(15)
    h.depth("celery", 0)
    assert moves(h.tick()) == [("firing", "resolved")]


def test_pending_alert_keeps_its_for_across_restart(h: Harness) -> None:
    h.depth("celery", 500)
    h.tick()
    h.clock.advance(45)
    h.restart()
    h.depth("celery", 500)
    assert h.tick() == []
    h.clock.advance(15)
    assert moves(h.tick()) == [("pending", "firing")]  # 60 s after the first sight, not 105 s


def test_resolved_alert_is_not_recreated_after_restart(h: Harness) -> None:
    h.depth("celery", 500)
    h.tick()
    h.clock.advance(60)
    h.tick()
    h.clock.advance(15)
    h.depth("celery", 0)
    h.tick()
    resolved = h.alert("QueueBacklog")
    assert resolved.state is State.RESOLVED

    h.restart()
    assert h.alert("QueueBacklog") == resolved
    h.clock.advance(15)
    h.depth("celery", 0)
    assert h.tick() == []
    assert h.alert("QueueBacklog") == resolved
    assert h.book.active() == []
    h.clock.advance(15)
    h.restart()  # and with no sample at all (the queue is not measured yet)
    assert h.tick() == []
    assert h.alert("QueueBacklog") == resolved


def test_resolved_alert_that_comes_back_is_a_new_alert(h: Harness) -> None:
    h.depth("celery", 500)
    h.tick()
    h.clock.advance(60)
    h.tick()
    h.clock.advance(15)
    h.depth("celery", 0)
    h.tick()
    h.clock.advance(15)
    h.depth("celery", 900)
    assert moves(h.tick()) == [("resolved", "pending")]
    alert = h.alert("QueueBacklog")
    assert (alert.active_at, alert.fired_at, alert.resolved_at) == (T0 + 90, None, None)


@pytest.mark.parametrize(
    ("rule", "feed"),
    [
        (
            "- {name: R, kind: queue_backlog, threshold: 100}",
            lambda h: h.depth("celery", 500),
        ),
        (
            "- {name: R, kind: failure_rate, threshold: 5%, window: 10m, min_count: 1}",
            lambda h: h.store.apply_events(
                [
                    {"type": "task-received", "uuid": "u", "name": "app.add", "timestamp": T0},
                    {"type": "task-failed", "uuid": "u", "timestamp": T0},
                ],
                h.clock.now(),
            ),
        ),
        (
            "- {name: R, kind: idle_worker, idle_for: 1s}",
            lambda h: h.store.apply_event(
                {"type": "worker-heartbeat", "hostname": "w1@h", "freq": 30.0}, h.clock.now() - 5
            ),
        ),
    ],
)
def test_restart_before_facts_arrive_neither_resolves_nor_repages(
    db_path: Path, rule: str, feed: Any
) -> None:
    """Just after a restart the store is empty: no sample is not evidence that the alert is over."""
    h = Harness(parse(f"rules:\n  {rule}\n", {}), db_path)
    feed(h)
    assert moves(h.tick()) == [(None, "firing")]
    fired = next(iter(h.book.alerts.values()))

    h.restart()
    h.clock.advance(15)
    assert h.tick() == []  # nothing collected yet
    assert h.book.alerts == {fired.fingerprint: fired}
    h.clock.advance(15)
    feed(h)  # the facts are back: the alert goes on firing, it is not paged again
    assert h.tick() == []
    assert h.book.alerts[fired.fingerprint].state is State.FIRING
    assert h.book.alerts[fired.fingerprint].fired_at == fired.fired_at
    h.db.close()


def test_restored_alert_that_never_gets_a_sample_resolves_after_the_grace(h: Harness) -> None:
    h.depth("celery", 500)
    h.tick()
    h.clock.advance(60)
    h.tick()
    h.restart()  # the queue is no longer measured: no sample for it, ever
    h.clock.advance(15)
    assert h.tick() == []
    h.clock.advance(RESTORE_GRACE - 1)
    assert h.tick() == []
    h.clock.advance(1)
    assert moves(h.tick()) == [("firing", "resolved")]


def test_resolved_alert_without_sample_is_forgotten_after_retention(h: Harness) -> None:
    h.depth("celery", 500)
    h.tick()
    h.clock.advance(60)
    h.tick()
    del h.store.queues["celery"]  # the queue is no longer measured: no sample for it
    h.clock.advance(15)
    assert moves(h.tick()) == [("firing", "resolved")]
    h.clock.advance(RESOLVED_RETENTION)
    h.tick()
    assert h.alert("QueueBacklog") is not None
    h.clock.advance(1)
    h.tick()
    assert h.book.alerts == {}
    assert SqlAlertRepo(h.db).load() == {}


def test_alert_whose_rule_disappears_resolves(h: Harness) -> None:
    h.depth("celery", 500)
    h.depth("mail", 500)
    h.tick()
    h.clock.advance(60)
    h.depth("celery", 500)
    h.depth("mail", 500)
    h.tick()
    h.workers_alive("w1@h")
    h.clock.advance(5)
    h.tick()
    h.clock.advance(5)
    h.tick()  # NoLiveWorkers pending (for: 30s)
    assert h.alert("NoLiveWorkers").state is State.PENDING
    assert h.alert("QueueBacklog", queue="mail").state is State.FIRING

    h.clock.advance(15)
    transitions = h.tick(rules=())  # a reload removed every rule
    assert moves(transitions) == [
        ("firing", "resolved"),
        ("firing", "resolved"),
        ("pending", None),
    ]
    assert h.alert("NoLiveWorkers") is None
    assert {a.state for a in h.book.alerts.values()} == {State.RESOLVED}


def test_rule_that_raises_keeps_its_alerts(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h.depth("celery", 500)
    h.tick()
    h.clock.advance(60)
    h.tick()
    h.workers_alive("w1@h")
    h.clock.advance(10)
    h.tick()
    before = dict(h.book.alerts)
    assert {a.rule: a.state for a in before.values()} == {
        "QueueBacklog": State.FIRING,
        "NoLiveWorkers": State.PENDING,
    }

    real = book_module.evaluator

    def broken(kind: str) -> Any:
        if kind == "queue_backlog":

            def boom(rule: Any, store: FactStore, now: float) -> list[Any]:
                raise RuntimeError("rule blew up")

            return boom
        return real(kind)

    monkeypatch.setattr(book_module, "evaluator", broken)
    h.depth("celery", 0)  # would resolve it, if the rule could tell
    h.clock.advance(30)
    assert moves(h.tick()) == [("pending", "firing")]  # the other rule goes on
    assert h.book.rule_errors == 1
    backlog = h.alert("QueueBacklog")
    assert backlog == before[backlog.fingerprint]  # untouched
    h.clock.advance(RESOLVED_RETENTION * 2)
    h.tick()
    assert h.alert("QueueBacklog").state is State.FIRING

    monkeypatch.setattr(book_module, "evaluator", real)
    assert ("firing", "resolved") in moves(h.tick())


def test_instance_that_vanishes_resolves(h: Harness) -> None:
    h.depth("celery", 500)
    h.tick()
    h.clock.advance(60)
    h.tick()
    del h.store.queues["celery"]
    h.clock.advance(15)
    assert moves(h.tick()) == [("firing", "resolved")]


def test_book_without_storage(config: Config) -> None:
    store = FactStore()
    store.set_queue_depths({"celery": (500, 1)}, {}, T0)
    book = AlertBook(None)
    book.tick(config.rules, store, T0)
    book.tick(config.rules, store, T0 + 60)
    assert [a.state for a in book.active()] == [State.FIRING]


def test_resolve_renders_the_summary_with_the_resolving_value() -> None:
    config = parse("rules:\n  - {name: R, kind: no_live_workers, min_workers: 2}\n", {})
    store = FactStore()
    store.apply_event(
        {"type": "worker-heartbeat", "hostname": "a@h", "freq": 60.0, "active": 0}, T0
    )
    book = AlertBook(None)
    book.tick(config.rules, store, T0 + 1)
    [alert] = book.alerts.values()
    assert alert.annotations["summary"].startswith("1 live")
    store.apply_event(
        {"type": "worker-heartbeat", "hostname": "b@h", "freq": 60.0, "active": 0}, T0 + 2
    )
    book.tick(config.rules, store, T0 + 3)
    [alert] = book.alerts.values()
    assert alert.state.value == "resolved"
    assert alert.annotations["summary"].startswith("2 live")


# -- caches: label sets, rows, annotations ---------------------------------------------------

TWO_RULES = """
rules:
  - {name: BacklogA, kind: queue_backlog, queues: ["*"], threshold: 10, labels: {team: a}}
  - {name: BacklogB, kind: queue_backlog, queues: ["*"], threshold: 10, labels: {team: a}}
"""


def test_cached_label_sets_are_not_shared_between_rules() -> None:
    config = parse(TWO_RULES, {})
    store = FactStore()
    store.set_queue_depths({"celery": (50, 1)}, {}, T0)
    book = AlertBook(None)
    for at in (T0, T0 + 15, T0 + 30):  # the second and third ticks read the cache
        book.tick(config.rules, store, at)
        by_rule = {a.rule: a.labels for a in book.alerts.values()}
        assert by_rule == {
            "BacklogA": Labels(alertname="BacklogA", severity="warning", team="a", queue="celery"),
            "BacklogB": Labels(alertname="BacklogB", severity="warning", team="a", queue="celery"),
        }
        assert len(book.alerts) == 2


def test_rule_reloaded_with_new_labels_gets_them() -> None:
    store = FactStore()
    store.set_queue_depths({"celery": (50, 1), "mail": (0, 1)}, {}, T0)
    book = AlertBook(None)
    before = parse(TWO_RULES, {}).rules[:1]
    book.tick(before, store, T0)
    [old] = book.alerts.values()
    assert old.labels["team"] == "a"

    after = parse(TWO_RULES.replace("team: a", "team: b"), {})
    _, rows = book.tick(after.rules[:1], store, T0 + 15)
    assert [a.labels for a in book.active()] == [
        Labels(alertname="BacklogA", severity="warning", team="b", queue="celery")
    ]
    assert book.alerts[old.fingerprint].state is State.RESOLVED  # the old label set vanished
    assert {r.labels["team"] for r in rows} == {"b"}  # inactive instances too
    # the same rule with other severity: new label sets as well
    louder = parse(TWO_RULES.replace("threshold: 10,", "threshold: 10, severity: critical,"), {})
    _, rows = book.tick(louder.rules[:1], store, T0 + 30)
    assert {r.labels["severity"] for r in rows} == {"critical"}
    assert [a.labels["severity"] for a in book.active()] == ["critical"]


def test_label_cache_forgets_vanished_instances_and_rules() -> None:
    config = parse(TWO_RULES, {})
    store = FactStore(max_queues=10_000)
    book = AlertBook(None)
    store.set_queue_depths({f"q{i}": (0, 1) for i in range(3000)}, {}, T0)
    book.tick(config.rules, store, T0)
    assert sum(len(c) for c in book._labels.values()) == 6000
    store.queues.clear()
    store.set_queue_depths({"q0": (0, 1)}, {}, T0 + 15)
    book.tick(config.rules[:1], store, T0 + 15)
    assert [len(c) for c in book._labels.values()] == [1]


def test_rows_are_the_same_however_they_are_read(h: Harness) -> None:
    h.depth("celery", 500)
    h.depth("mail", 5)
    h.depth("broken", None)
    _, rows = h.book.tick(h.config.rules, h.store, h.clock.now())
    listed = list(rows)
    assert len(rows) == len(listed) == 4
    assert [rows[i] for i in range(4)] == listed == list(rows) == rows[:]
    assert rows == listed
    assert [(r.rule, r.labels.get("queue"), r.value, r.threshold, r.state) for r in rows] == [
        ("QueueBacklog", "celery", 500.0, 100.0, "pending"),
        ("QueueBacklog", "mail", 5.0, 100.0, "inactive"),
        ("QueueBacklog", "broken", None, 100.0, "unknown"),
        ("NoLiveWorkers", None, 0.0, 1.0, "unknown"),
    ]
    assert listed[0].labels == Labels(
        alertname="QueueBacklog", severity="warning", env="prod", queue="celery"
    )


def test_annotations_rendered_again_only_when_they_can_change(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float | None] = []
    real = book_module.render_annotations

    def counting(rule: Any, alert: Any) -> dict[str, str]:
        calls.append(alert.value)
        return real(rule, alert)

    monkeypatch.setattr(book_module, "render_annotations", counting)
    h.depth("celery", 500)
    h.tick()
    h.clock.advance(60)
    h.tick()  # firing, same value
    assert calls == [500.0]
    assert h.alert("QueueBacklog").state is State.FIRING
    h.depth("celery", 700)
    h.clock.advance(15)
    h.tick()
    assert calls == [500.0, 700.0]
    assert h.alert("QueueBacklog").annotations == {
        "summary": "Queue celery has 700 messages waiting (threshold 100)"
    }
    # a reload (same labels, new summary) renders again with the new template
    reloaded = parse(RULES.replace("for: 1m", "for: 1m\n    summary: 'now {{ value }}'"), {})
    h.clock.advance(15)
    h.tick(reloaded.rules)
    assert calls == [500.0, 700.0, 700.0]
    assert h.alert("QueueBacklog").annotations == {"summary": "now 700.0"}
    # resolve renders once more, with the resolving value
    h.depth("celery", 3)
    h.clock.advance(15)
    h.tick(reloaded.rules)
    h.clock.advance(15)
    h.tick(reloaded.rules)
    assert calls == [500.0, 700.0, 700.0, 3.0]
    assert h.alert("QueueBacklog").annotations == {"summary": "now 3.0"}


def test_a_tick_under_gc_paused_pauses_the_collector_and_restores_it(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = book_module.evaluator
    during: list[bool] = []

    def watching(kind: str) -> Any:
        def evaluate(rule: Any, store: FactStore, now: float) -> Any:
            during.append(gc.isenabled())
            return real(kind)(rule, store, now)

        return evaluate

    monkeypatch.setattr(book_module, "evaluator", watching)
    store = FactStore()
    book = AlertBook(None)
    assert gc.isenabled()
    with gc_paused():  # as the app ticks
        book.tick(config.rules, store, T0)
    assert gc.isenabled()
    assert during == [False, False]
    gc.disable()  # someone else's choice is kept
    try:
        with gc_paused():
            book.tick(config.rules, store, T0 + 15)
        assert not gc.isenabled()
    finally:
        gc.enable()

    class FullDisk:
        def save(self, *_: Any) -> None:
            raise RuntimeError("disk full")

    # (A rule's own failure is caught for that rule alone; a storage error still escapes.)
    monkeypatch.setattr(book, "repo", FullDisk())
    store.set_queue_depths({"celery": (500, 1)}, {}, T0 + 30)
    with pytest.raises(RuntimeError), gc_paused():
        book.tick(config.rules, store, T0 + 30)
    assert gc.isenabled()


# -- rules that cannot tell, broker outages, broken rules -------------------------------------

FAILURES = """
rules:
  - {name: TaskFailureRate, kind: failure_rate, tasks: ["*"], window: 60s, threshold: 10%,
     min_count: 4}
  - {name: SlowTasks, kind: task_latency, tasks: ["*"], measure: runtime, threshold: 5s,
     window: 60s, min_count: 1}
  - {name: IdleWorker, kind: idle_worker, idle_for: 1s}
  - {name: BrokerDown, kind: broker_unreachable}
"""


def finished(store: FactStore, outcome: str, at: float, n: int, runtime: float = 1.0) -> None:
    for i in range(n):
        uuid = f"{outcome}-{at}-{i}"
        store.apply_events(
            [
                {"type": "task-received", "uuid": uuid, "name": "app.add", "timestamp": at},
                {"type": "task-started", "uuid": uuid, "timestamp": at},
                {"type": outcome, "uuid": uuid, "timestamp": at, "runtime": runtime},
            ],
            at,
        )


def states(book: AlertBook) -> dict[str, State]:
    return {a.rule: a.state for a in book.alerts.values()}


def test_failure_rate_holds_on_an_empty_window_and_resolves_with_the_last_value() -> None:
    config = parse(FAILURES, {})
    store = FactStore(bucket=1.0, retention=600.0)
    book = AlertBook(None)
    finished(store, "task-failed", T0, 5)
    finished(store, "task-succeeded", T0, 5)
    book.tick(config.rules, store, T0 + 1)
    [alert] = [a for a in book.alerts.values() if a.rule == "TaskFailureRate"]
    assert alert.state is State.FIRING and alert.value == 0.5
    # The window empties: no rate, so no verdict; the alert holds and keeps its value.
    book.tick(config.rules, store, T0 + 120)
    alert = book.alerts[alert.fingerprint]
    assert alert.state is State.FIRING and alert.value == 0.5
    assert "failed 50.0% of runs" in alert.annotations["summary"]
    finished(store, "task-succeeded", T0 + 130, 10)
    book.tick(config.rules, store, T0 + 131)
    alert = book.alerts[alert.fingerprint]
    assert alert.state is State.RESOLVED and alert.value == 0.0
    assert "n/a" not in alert.annotations["summary"]


def test_nothing_resolves_for_lack_of_data_while_the_broker_is_unreachable() -> None:
    config = parse(FAILURES, {})
    store = FactStore(bucket=1.0, retention=600.0)
    book = AlertBook(None)
    for source in ("events", "inspect", "queues"):
        store.probe_ok(source, T0)
    store.apply_event({"type": "worker-heartbeat", "hostname": "w1@h", "freq": 2.0}, T0)
    finished(store, "task-succeeded", T0, 2, runtime=30.0)
    book.tick(config.rules, store, T0 + 1.5)
    assert states(book) == {"SlowTasks": State.FIRING, "IdleWorker": State.FIRING}
    # The broker goes: heartbeats stop (the worker vanishes), the latency window empties.
    store.probe_failed("events", "ConnectionError", T0 + 2)
    store.probe_failed("inspect", "ConnectionError", T0 + 2)
    book.tick(config.rules, store, T0 + 120)
    assert states(book) == {
        "SlowTasks": State.FIRING,
        "IdleWorker": State.FIRING,
        "BrokerDown": State.FIRING,
    }
    # Back, and still no data: now silence is an answer again.
    store.probe_ok("events", T0 + 130)
    store.probe_ok("inspect", T0 + 130)
    book.tick(config.rules, store, T0 + 131)
    assert states(book) == {
        "SlowTasks": State.RESOLVED,
        "IdleWorker": State.RESOLVED,
        "BrokerDown": State.RESOLVED,
    }
    [down] = [a for a in book.alerts.values() if a.rule == "BrokerDown"]
    assert down.value == 130.0  # how long the outage lasted, not "for 0ms"


def always_one(rule: Any, store: FactStore, now: float) -> list[Any]:
    from sentinel.model import Sample

    return [Sample({}, 1.0, 0.0, True)]


def broken_samples(rule: Any, store: FactStore, now: float) -> list[Any]:
    from sentinel.model import Sample

    return [Sample(None, 1.0, 0.0, True)]  # type: ignore[arg-type]


@pytest.fixture
def throwaway_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    from sentinel.rules import RULES
    from sentinel.rules.base import RuleKind

    monkeypatch.setitem(RULES, "throwaway", RuleKind("throwaway", always_one, schema=None))
    monkeypatch.setitem(RULES, "broken", RuleKind("broken", broken_samples, schema=None))


def test_a_kind_without_a_default_summary_still_pages_and_stops_no_other_rule(
    h: Harness, throwaway_kinds: None
) -> None:
    [backlog, _] = h.config.rules
    throwaway = backlog.model_copy(update={"name": "Throwaway", "kind": "throwaway", "for_": 0})
    h.depth("celery", 500)
    h.tick([throwaway, *h.config.rules])
    h.clock.advance(60)
    h.tick([throwaway, *h.config.rules])
    assert states(h.book) == {"Throwaway": State.FIRING, "QueueBacklog": State.FIRING}
    assert h.alert("Throwaway").annotations["summary"] == "Throwaway: value 1 (threshold 0)"
    assert h.book.rule_errors == 0


def test_a_rule_that_breaks_after_evaluate_stops_no_other_rule(
    h: Harness, throwaway_kinds: None, caplog: pytest.LogCaptureFixture
) -> None:
    [backlog, _] = h.config.rules
    broken = backlog.model_copy(update={"name": "Broken", "kind": "broken"})
    rules = [broken, *h.config.rules]
    h.depth("celery", 500)
    h.tick(rules)
    for _ in range(3):
        h.clock.advance(60)
        h.tick(rules)
    assert states(h.book) == {"QueueBacklog": State.FIRING}
    assert h.book.rule_errors == 4
    assert h.book.rule_errors_by_rule == {"Broken": 4}
    logged = [r for r in caplog.records if "rule Broken" in r.getMessage()]
    assert len(logged) == 1  # one traceback per rule per RULE_ERROR_LOG_EVERY, all counted
    h.clock.advance(book_module.RULE_ERROR_LOG_EVERY)
    h.tick(rules)
    logged = [r for r in caplog.records if "rule Broken" in r.getMessage()]
    assert len(logged) == 2 and "3 more failure(s) not logged" in logged[1].getMessage()


def test_rows_samples_give_the_label_sets_rows_give() -> None:
    """Rows.samples() builds per-series label sets by inserting the task into the rule's sorted
    labels: the same sets (and fingerprints) as the rows, whichever side of it the task sorts."""
    from sentinel.facts.windows import FAILED, SUCCEEDED

    rules = parse(
        """
rules:
  - {name: Fail, kind: failure_rate, tasks: ["*"], threshold: 10%, min_count: 1,
     labels: {team: ops, a_first: x, zz: last}}
  - {name: FailTask, kind: failure_rate, tasks: ["*"], threshold: 10%, min_count: 1,
     labels: {task: overridden}}
""",
        env={},
    ).rules
    store = FactStore()
    with store.lock:
        for i, name in enumerate(["a.t", "b.t", "z.t"]):
            series = store.series(name)
            assert series is not None
            series.count(FAILED if i else SUCCEEDED, T0)
    _, rows = AlertBook(None).tick(rules, store, T0 + 1)
    got = [(rule, labels, labels.fingerprint, v) for rule, labels, v, _, _ in rows.samples()]
    want = [(r.rule, r.labels, Labels(dict(r.labels)).fingerprint, r.value) for r in rows]
    assert got == want
    assert [labels._items for _, labels, _, _ in got] == [
        Labels(dict(r.labels))._items for r in rows
    ]
    assert len(got) == 6
