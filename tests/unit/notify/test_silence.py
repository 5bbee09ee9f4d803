"""Silences: v2 matchers, API validation, state over time, expiry and persistence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sentinel.clock import FakeClock
from sentinel.db.sqlite import Database
from sentinel.model import Labels, rfc3339
from sentinel.notify.matchers import Matcher, parse_matcher
from sentinel.notify.silence import Silence, Silencer
from sentinel.notify.silence.repo import SqlSilenceRepo
from tests.helpers import T0

# (id, matcher, labels, matches?)
MATCHES = [
    ("equal", Matcher("a", "=", "x"), {"a": "x"}, True),
    ("equal, other value", Matcher("a", "=", "x"), {"a": "xy"}, False),
    ("equal, missing label", Matcher("a", "=", "x"), {}, False),
    ("equal empty, missing label is the empty string", Matcher("a", "=", ""), {"b": "x"}, True),
    ("equal empty, label present", Matcher("a", "=", ""), {"a": "x"}, False),
    ("not-equal, other value", Matcher("a", "!=", "x"), {"a": "y"}, True),
    ("not-equal, same value", Matcher("a", "!=", "x"), {"a": "x"}, False),
    ("not-equal, missing label", Matcher("a", "!=", "x"), {}, True),
    ("not-equal empty, missing label", Matcher("a", "!=", ""), {}, False),
    ("regex", Matcher("a", "=~", "x.*"), {"a": "xyz"}, True),
    ("regex is anchored at the start", Matcher("a", "=~", "x.*"), {"a": "axyz"}, False),
    ("regex is anchored at the end", Matcher("a", "=~", "x"), {"a": "xy"}, False),
    ("regex alternation anchored as a whole", Matcher("a", "=~", "x|y"), {"a": "xy"},
     False),
    ("regex alternation, second branch", Matcher("a", "=~", "x|y"), {"a": "y"}, True),
    ("regex .* matches a missing label", Matcher("a", "=~", ".*"), {}, True),
    ("regex .+ does not match a missing label", Matcher("a", "=~", ".+"), {}, False),
    ("negative regex, match", Matcher("a", "!~", "x.*"), {"a": "xyz"},
     False),
    ("negative regex, no match", Matcher("a", "!~", "x.*"), {"a": "y"},
     True),
    ("negative regex is anchored", Matcher("a", "!~", "x"), {"a": "xy"},
     True),
    ("negative regex, missing label", Matcher("a", "!~", "x.*"), {},
     True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("matcher", "labels", "expected"), [m[1:] for m in MATCHES], ids=[m[0] for m in MATCHES]
)
def test_matcher(matcher: Matcher, labels: dict[str, str], expected: bool) -> None:
    assert matcher.matches(labels) is expected
    assert matcher.matches(Labels(labels)) is expected


PARSE = [
    ("alertname=IdleWorker", Matcher("alertname", "=", "IdleWorker")),
    ('alertname="IdleWorker"', Matcher("alertname", "=", "IdleWorker")),
    ("alertname!=IdleWorker", Matcher("alertname", "!=", "IdleWorker")),
    ("queue=~billing.*", Matcher("queue", "=~", "billing.*")),
    ('queue=~"billing|reports"', Matcher("queue", "=~", "billing|reports")),
    ("queue!~billing.*", Matcher("queue", "!~", "billing.*")),
    ('queue!~"billing.*"', Matcher("queue", "!~", "billing.*")),
    ("  env = prod  ", Matcher("env", "=", "prod")),
    ('summary="two words"', Matcher("summary", "=", "two words")),
    ('a=~"x=y"', Matcher("a", "=~", "x=y")),
    ("a=", Matcher("a", "=", "")),
    ('a=""', Matcher("a", "=", "")),
    ("_private=1", Matcher("_private", "=", "1")),
]


@pytest.mark.parametrize(("text", "expected"), PARSE, ids=[p[0] for p in PARSE])
def test_matcher_parse(text: str, expected: Matcher) -> None:
    parsed = parse_matcher(text)
    assert parsed == expected
    assert parse_matcher(str(parsed)) == parsed  # str() is amtool's spelling again


PARSE_ERRORS = [
    ("", "bad matcher"),
    ("alertname", "bad matcher"),
    ("=IdleWorker", "bad matcher"),
    ("1abc=x", "bad matcher"),
    ("two words=x", "bad matcher"),
    ("a~x", "bad matcher"),
    ("a=~(unclosed", "invalid regular expression"),
    ("a!~[", "invalid regular expression"),
]


@pytest.mark.parametrize(
    ("text", "error"), PARSE_ERRORS, ids=[p[0] or "empty" for p in PARSE_ERRORS]
)
def test_matcher_parse_errors(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_matcher(text)


def body(**kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "matchers": [{"name": "alertname", "value": "IdleWorker", "isRegex": False}],
        "startsAt": rfc3339(T0),
        "endsAt": rfc3339(T0 + 3600),
        "createdBy": "ops",
        "comment": "maintenance",
    }
    out.update(kw)
    return {k: v for k, v in out.items() if v is not None}


def m(name: str, value: str, regex: bool = False, equal: bool = True) -> dict[str, Any]:
    return {"name": name, "value": value, "isRegex": regex, "isEqual": equal}


FROM_API_ERRORS = [
    ("body is a list", ["alertname=x"], "JSON object"),
    ("body is a string", "alertname=x", "JSON object"),
    ("body is null", None, "JSON object"),
    ("no matchers key", {"endsAt": rfc3339(T0 + 60)}, "at least one matcher"),
    ("empty matchers", body(matchers=[]), "at least one matcher"),
    ("matchers not a list", body(matchers={"alertname": "x"}), "at least one matcher"),
    ("matcher not an object", body(matchers=["alertname=x"]), "object"),
    ("matcher without a name", body(matchers=[{"value": "x"}]), "name"),
    ("matcher value not a string", body(matchers=[{"name": "a", "value": 1}]), "string"),
    ("only an empty equal matcher", body(matchers=[m("a", "")]), "empty string"),
    ("all matchers match the empty string",
     body(matchers=[m("a", ".*", regex=True), m("b", "x", equal=False)]), "empty string"),
    ("bad regex", body(matchers=[m("a", "(", regex=True)]), "invalid regular expression"),
    ("endsAt before startsAt", body(startsAt=rfc3339(T0 + 100), endsAt=rfc3339(T0 + 50)),
     "after startsAt"),
    ("endsAt equal to startsAt", body(startsAt=rfc3339(T0 + 100), endsAt=rfc3339(T0 + 100)),
     "after startsAt"),
    ("endsAt in the past", body(startsAt=rfc3339(T0 - 200), endsAt=rfc3339(T0 - 100)),
     "in the past"),
    ("endsAt missing", body(endsAt=None), "endsAt is required"),
    ("endsAt not a timestamp", body(endsAt="tomorrow"), "RFC 3339"),
    ("endsAt a number", body(endsAt=T0 + 3600), "RFC 3339"),
    ("createdBy not a string", body(createdBy=["ops"]), "strings"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "error"), [e[1:] for e in FROM_API_ERRORS], ids=[e[0] for e in FROM_API_ERRORS]
)
def test_from_api_errors(payload: Any, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Silence.from_api(payload, T0)


def test_from_api_valid_and_round_trip() -> None:
    s = Silence.from_api(
        body(matchers=[m("alertname", "IdleWorker"), m("worker", "w1@.*", regex=True)]), T0
    )
    assert s.id
    assert s.matchers == (
        Matcher("alertname", "=", "IdleWorker"),
        Matcher("worker", "=~", "w1@.*"),
    )
    assert (s.starts_at, s.ends_at, s.created_by, s.comment) == (
        T0,
        T0 + 3600,
        "ops",
        "maintenance",
    )
    api = s.to_api(T0)
    assert api["id"] == s.id
    assert api["status"] == {"state": "active"}
    assert api["startsAt"] == rfc3339(T0) and api["endsAt"] == rfc3339(T0 + 3600)
    again = Silence.from_api(api, T0)
    assert (again.id, again.matchers, again.starts_at, again.ends_at) == (
        s.id,
        s.matchers,
        s.starts_at,
        s.ends_at,
    )


def test_from_api_defaults() -> None:
    s = Silence.from_api(body(startsAt=None, createdBy=None, comment=None), T0)
    assert s.starts_at == T0
    assert (s.created_by, s.comment) == ("", "")
    other = Silence.from_api(body(), T0)
    assert other.id != s.id  # a fresh id each time


def test_from_api_start_in_the_past_starts_now() -> None:
    s = Silence.from_api(body(startsAt=rfc3339(T0 - 600)), T0)
    assert s.starts_at == T0
    assert s.state(T0) == "active"


def test_from_api_accepts_an_offset() -> None:
    assert rfc3339(T0) == "2023-11-14T22:13:20.000Z"
    s = Silence.from_api(body(endsAt="2023-11-15T00:13:20+01:00"), T0)
    assert s.ends_at == T0 + 3600


# (seconds after T0 -> state) for a silence from T0+100 to T0+200
STATES = [
    (0, "pending"),
    (99.9, "pending"),
    (100, "active"),
    (150, "active"),
    (199.9, "active"),
    (200, "expired"),
    (10_000, "expired"),
]


@pytest.mark.parametrize(("after", "state"), STATES)
def test_state_over_a_fake_clock(after: float, state: str) -> None:
    clock = FakeClock(T0)
    s = Silence.from_api(body(startsAt=rfc3339(T0 + 100), endsAt=rfc3339(T0 + 200)), clock.now())
    clock.advance(after)
    labels = Labels(alertname="IdleWorker", worker="w1")
    assert s.state(clock.now()) == state
    assert s.to_api(clock.now())["status"]["state"] == state
    assert s.mutes(labels, clock.now()) is (state == "active")


def test_mutes_needs_every_matcher() -> None:
    s = Silence.from_api(body(matchers=[m("alertname", "IdleWorker"), m("worker", "w1")]), T0)
    assert s.mutes(Labels(alertname="IdleWorker", worker="w1", env="prod"), T0)
    assert not s.mutes(Labels(alertname="IdleWorker", worker="w2"), T0)
    assert not s.mutes(Labels(alertname="IdleWorker"), T0)


def test_expire_an_active_silence() -> None:
    clock = FakeClock(T0)
    s = Silence.from_api(body(), clock.now())
    clock.advance(60)
    expired = s.expire(clock.now())
    assert expired.state(clock.now()) == "expired"
    assert expired.ends_at == T0 + 60
    assert expired.starts_at == T0
    assert expired.updated_at == T0 + 60
    assert not expired.mutes(Labels(alertname="IdleWorker"), clock.now())


def test_expire_a_pending_silence_never_activates() -> None:
    s = Silence.from_api(body(startsAt=rfc3339(T0 + 100), endsAt=rfc3339(T0 + 200)), T0)
    expired = s.expire(T0)
    assert expired.starts_at == expired.ends_at == T0
    assert expired.state(T0) == "expired"
    assert expired.state(T0 + 150) == "expired"
    assert not expired.mutes(Labels(alertname="IdleWorker"), T0 + 150)


def test_silence_created_before_the_alert_exists_mutes_it() -> None:
    clock = FakeClock(T0)
    silencer = Silencer(None)
    s = silencer.put(
        Silence.from_api(body(matchers=[m("worker", "w9@.*", regex=True)]), clock.now())
    )
    clock.advance(300)
    # The alert appears only now, with labels nobody had seen when the silence was made.
    labels = Labels(alertname="IdleWorker", severity="info", worker="w9@host")
    assert silencer.muted_by(labels, clock.now()) == [s.id]
    assert silencer.muted_by(Labels(alertname="IdleWorker", worker="w1@host"), clock.now()) == []


def test_silencer_expire() -> None:
    silencer = Silencer(None)
    s = silencer.put(Silence.from_api(body(), T0))
    labels = Labels(alertname="IdleWorker")
    assert silencer.muted_by(labels, T0 + 10) == [s.id]
    expired = silencer.expire(s.id, T0 + 10)
    assert expired is not None and expired.state(T0 + 10) == "expired"
    assert silencer.muted_by(labels, T0 + 10) == []
    assert silencer.expire(s.id, T0 + 20) == expired  # already expired: unchanged
    assert silencer.expire("no-such-id", T0) is None


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sentinel.db"


def test_silencer_persists_across_restarts(db_path: Path) -> None:
    db = Database(db_path)
    silencer = Silencer(SqlSilenceRepo(db))
    kept = silencer.put(
        Silence.from_api(
            body(matchers=[m("alertname", "IdleWorker"), m("worker", "w1.*", regex=True)]), T0
        )
    )
    expired = silencer.put(Silence.from_api(body(matchers=[m("queue", "celery")]), T0))
    silencer.expire(expired.id, T0 + 10)
    db.close()

    db2 = Database(db_path)
    restarted = Silencer(SqlSilenceRepo(db2))
    by_id = {s.id: s for s in restarted.all()}
    assert set(by_id) == {kept.id, expired.id}
    assert by_id[kept.id] == kept
    assert by_id[expired.id].state(T0 + 10) == "expired"
    assert restarted.muted_by(Labels(alertname="IdleWorker", worker="w1@h"), T0 + 20) == [kept.id]
    assert restarted.muted_by(Labels(queue="celery"), T0 + 20) == []
    db2.close()


def test_silencer_gc_forgets_long_expired_silences(db_path: Path) -> None:
    db = Database(db_path)
    silencer = Silencer(SqlSilenceRepo(db))
    old = silencer.put(Silence.from_api(body(endsAt=rfc3339(T0 + 60)), T0))
    fresh = silencer.put(Silence.from_api(body(endsAt=rfc3339(T0 + 86400)), T0))
    silencer.gc(T0 + 60 + 3600, retention=3600)  # `old` ended exactly retention ago: kept
    assert {s.id for s in silencer.all()} == {old.id, fresh.id}
    silencer.gc(T0 + 60 + 3601, retention=3600)
    assert [s.id for s in silencer.all()] == [fresh.id]
    assert [s.id for s in Silencer(SqlSilenceRepo(db)).all()] == [fresh.id]
    db.close()
