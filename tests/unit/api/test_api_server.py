"""The API's request handling without a socket: parse errors, limits, the read-only mode."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from sentinel.api.http import MAX_BODY
from sentinel.api.ports import ApiPorts, HealthFacts, StatusFacts
from sentinel.api.server import ApiServer, is_loopback
from sentinel.app import Sentinel
from sentinel.clock import FakeClock
from sentinel.config import parse
from sentinel.facts.store import Probe
from sentinel.model import Alert, Labels, State
from sentinel.notify.pipeline import Mute
from sentinel.notify.silence import Silence
from tests.helpers import T0

CONFIG = """
storage:
  path: "{path}"
server:
  listen: "{listen}"
  token: "{token}"
rules:
  - name: NoLiveWorkers
    kind: no_live_workers
"""


def serve(
    tmp_path: Path, listen: str = "127.0.0.1:9808", token: str = ""
) -> tuple[ApiServer, Sentinel]:
    text = CONFIG.format(
        path=tmp_path / f"s-{listen.replace(':', '_')}.db", listen=listen, token=token
    )
    sentinel = Sentinel(parse(text, env={}), FakeClock(T0))
    return ApiServer(sentinel.api_ports(), sentinel.metrics_registry()), sentinel


def make_api(tmp_path: Path, listen: str = "127.0.0.1:9808", token: str = "") -> ApiServer:
    return serve(tmp_path, listen, token)[0]


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiServer]:
    server, sentinel = serve(tmp_path)
    yield server
    if sentinel.db is not None:
        sentinel.db.close()


def call(
    api: ApiServer, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    for name, value in (headers or {}).items():
        environ[name] = value
    response = api.handle(environ)
    content = json.loads(response.body) if response.content_type == "application/json" else None
    return response.status, content


def silence(**overrides: Any) -> dict[str, Any]:
    body = {
        "matchers": [{"name": "alertname", "value": "NoLiveWorkers"}],
        "startsAt": "2023-11-14T22:13:20Z",
        "endsAt": "2023-11-15T22:13:20Z",
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # json.loads: RecursionError -> 500 before
        b'{"a":' * 2000 + b"1" + b"}" * 2000,
        b"{not json",
        b"\xff\xfe\x00",
        b'{"matchers": NaN}',
        b'{"x": 1e400}',
        b'"\\ud800"',
        b"",
        b"null",
        b"[]",
    ],
)
def test_unparseable_bodies_are_400(api: ApiServer, body: bytes) -> None:
    status, content = call(api, "POST", "/api/v1/silences", body)
    assert status == 400, content
    assert content["error"]


def test_a_declared_body_over_the_limit_is_413_unread(api: ApiServer) -> None:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/v1/silences",
        "CONTENT_LENGTH": str(MAX_BODY + 1),
        "wsgi.input": io.BytesIO(b""),  # never read: the length alone decides
    }
    assert api.handle(environ).status == 413
    environ["CONTENT_LENGTH"] = "twelve"
    assert api.handle(environ).status == 400


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
silence_like = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "matchers": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": json_values | st.sampled_from(["alertname", ""]),
                    "value": json_values | st.sampled_from([".*", "(", "a+", ""]),
                    "isRegex": json_values,
                    "isEqual": json_values,
                },
            ),
            max_size=3,
        )
        | json_values,
        "startsAt": json_values
        | st.sampled_from(["2023-11-14T22:13:20Z", "9999-12-31T23:59:59-14:00"]),
        "endsAt": json_values
        | st.sampled_from(["2023-11-15T22:13:20Z", "0001-01-01T00:00:00+14:00"]),
        "createdBy": json_values,
        "comment": json_values,
    },
)


@given(body=silence_like | json_values)
def test_no_body_is_a_500(tmp_path_factory: pytest.TempPathFactory, body: Any) -> None:
    api = _shared_api(tmp_path_factory)
    status, content = call(api, "POST", "/api/v1/silences", json.dumps(body).encode())
    assert status in (200, 400, 404), (status, content)


_APIS: dict[str, ApiServer] = {}


def _shared_api(factory: pytest.TempPathFactory) -> ApiServer:
    # One API for every example: a Sentinel per example would open a database each time.
    if "api" not in _APIS:
        _APIS["api"] = make_api(factory.mktemp("fuzz"))
    return _APIS["api"]


# -- read-only when exposed without a token -----------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("192.168.1.20", False),
        ("sentinel.internal", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("listen", "token", "status"),
    [
        ("127.0.0.1:9808", "", 200),  # loopback, no token: open, as before
        ("0.0.0.0:9808", "", 403),  # the Docker image's default: read-only
        ("[::]:9808", "", 403),
        ("0.0.0.0:9808", "tok", 200),  # a token makes it writable, with the token
    ],
)
def test_writes_by_listen_address_and_token(
    tmp_path: Path, listen: str, token: str, status: int
) -> None:
    api = make_api(tmp_path, listen, token)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    got, content = call(api, "POST", "/api/v1/silences", json.dumps(silence()).encode(), headers)
    assert got == status, content
    if status == 403:
        assert "read-only" in content["error"] and "server.token" in content["error"]
        assert api.read_only
        assert call(api, "DELETE", "/api/v1/silences/some-id")[0] == 403
        assert call(api, "GET", "/api/v1/silences")[0] == 200  # reads stay open
    if token:
        assert call(api, "POST", "/api/v1/silences", json.dumps(silence()).encode())[0] == 401


def test_a_reloaded_token_lifts_read_only_at_once(tmp_path: Path) -> None:
    api, sentinel = serve(tmp_path, "0.0.0.0:9808", "")
    assert api.read_only
    sentinel.config = parse(
        CONFIG.format(path=tmp_path / "x.db", listen="0.0.0.0:9808", token="new"), env={}
    )
    assert not api.read_only
    headers = {"HTTP_AUTHORIZATION": "Bearer new"}
    assert call(api, "POST", "/api/v1/silences", json.dumps(silence()).encode(), headers)[0] == 200


# -- the API over its ports alone ----------------------------------------------------------


class FakeSilences:
    def __init__(self) -> None:
        self.by_id: dict[str, Silence] = {}

    def all(self) -> list[Silence]:
        return list(self.by_id.values())

    def get(self, silence_id: str) -> Silence | None:
        return self.by_id.get(silence_id)

    def put(self, silence: Silence) -> Silence:
        self.by_id[silence.id] = silence
        return silence

    def expire(self, silence_id: str, now: float) -> Silence | None:
        return self.by_id.get(silence_id)


class FakeAlerts:
    def __init__(self, alerts: list[Alert]) -> None:
        self._alerts = alerts

    def alerts(self) -> list[Alert]:
        return self._alerts

    def mute(self, alert: Alert, now: float) -> Mute:
        return Mute(("s1",), ()) if alert.rule == "Muted" else Mute((), ())


def test_the_api_serves_from_its_ports_alone() -> None:
    # No Sentinel, no store, no database: each endpoint reads only the port it names.
    config = parse(CONFIG.format(path="unused.db", listen="127.0.0.1:0", token=""), env={})
    firing = Alert("Muted", Labels({"alertname": "Muted"}), {}, State.FIRING, T0, 1.0, 0.0, T0)
    pending = Alert("Other", Labels({"alertname": "Other"}), {}, State.PENDING, T0, 1.0, 0.0)
    gone = Alert("Gone", Labels({"alertname": "Gone"}), {}, State.RESOLVED, T0, 1.0, 0.0, T0)
    inspect = Probe("inspect", ok_at=T0 - 1)
    facts = HealthFacts(True, {"inspect": inspect}, None, config.celery)
    ports = ApiPorts(
        clock=FakeClock(T0),
        settings=SimpleNamespace(server=lambda: config.server),
        alerts=FakeAlerts([pending, gone, firing]),
        rules=SimpleNamespace(rules=lambda: config.rules),
        silences=FakeSilences(),
        health=SimpleNamespace(health=lambda: facts),
        routing=SimpleNamespace(route=lambda: None, receivers=lambda: ["log"]),
        status=SimpleNamespace(
            status=lambda: StatusFacts("here", (), T0 - 5, 15.0, ("log",), (), ())
        ),
    )
    api = ApiServer(ports, CollectorRegistry())
    status, body = call(api, "GET", "/api/v2/alerts")
    assert [(a["labels"]["alertname"], a["status"]["state"]) for a in body] == [
        ("Muted", "suppressed")
    ]
    assert call(api, "GET", "/api/v2/receivers") == (200, [{"name": "log"}])
    status, body = call(api, "GET", "/api/v1/alerts")
    assert status == 200
    assert [(a["labels"]["alertname"], a["silencedBy"]) for a in body] == [
        ("Muted", ["s1"]),
        ("Other", []),
    ]
    status, body = call(api, "GET", "/api/v1/rules")
    assert [(r["name"], r["state"]) for r in body] == [("NoLiveWorkers", "inactive")]
    assert call(api, "POST", "/api/v1/silences", json.dumps(silence()).encode())[0] == 200
    assert [s["matchers"][0]["value"] for s in call(api, "GET", "/api/v1/silences")[1]] == [
        "NoLiveWorkers"
    ]
    assert api.handle({"REQUEST_METHOD": "GET", "PATH_INFO": "/readyz"}).status == 200
    stale = HealthFacts(False, {"inspect": inspect}, None, config.celery)
    ports.health.health = lambda: stale  # type: ignore[method-assign]
    response = api.handle({"REQUEST_METHOD": "GET", "PATH_INFO": "/readyz"})
    assert (response.status, response.body) == (503, b"events: not connected\n")
