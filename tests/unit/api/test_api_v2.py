"""/api/v2 without a socket: each body checked against the shapes of Alertmanager's OpenAPI
spec (written here as pydantic models: the required fields, their types and enums, as
Grafana's Alertmanager data source and karma read them), the filters, the errors as JSON
strings, and the token on writes."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, TypeAdapter

from sentinel.api.server import ApiServer
from sentinel.app import Sentinel
from sentinel.clock import FakeClock
from sentinel.config import parse
from sentinel.model import rfc3339
from tests.helpers import T0

CONFIG = """
storage: {{path: "{path}"}}
server: {{listen: "127.0.0.1:9808", token: "{token}"}}
evaluation: {{interval: 10s}}
rules:
  - {{name: NoLiveWorkers, kind: no_live_workers, severity: critical}}
  - {{name: NoWorkersInfo, kind: no_live_workers, severity: info}}
  - {{name: NoWorkersForLong, kind: no_live_workers, for: 1h}}
inhibit:
  - source: {{alertname: NoLiveWorkers}}
    target: {{alertname: NoWorkersInfo}}
route:
  receiver: default
  group_by: [severity]
  routes:
    - matchers: ['severity="critical"']
      channels: [pager, chat]
channels:
  default: {{type: log}}
  pager: {{type: log}}
  chat: {{type: log}}
"""


# -- the spec's shapes -----------------------------------------------------------------------


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Receiver(Model):
    name: str


class AlertStatus(Model):
    state: Literal["unprocessed", "active", "suppressed"]
    silencedBy: list[str]
    inhibitedBy: list[str]
    mutedBy: list[str]


class GettableAlert(Model):
    labels: dict[str, str]
    annotations: dict[str, str]
    receivers: list[Receiver]
    fingerprint: str
    startsAt: str
    updatedAt: str
    endsAt: str
    status: AlertStatus
    generatorURL: str | None = None


class AlertGroup(Model):
    labels: dict[str, str]
    routeLabels: dict[str, str]
    receiver: Receiver
    alerts: list[GettableAlert]


class Matcher(Model):
    name: str
    value: str
    isRegex: bool
    isEqual: bool = True


class SilenceStatus(Model):
    state: Literal["expired", "active", "pending"]


class GettableSilence(Model):
    id: str
    status: SilenceStatus
    updatedAt: str
    matchers: list[Matcher]
    startsAt: str
    endsAt: str
    createdBy: str
    comment: str


class ClusterStatus(Model):
    name: str | None = None
    status: Literal["ready", "settling", "disabled"]
    peers: list[dict[str, str]] | None = None


class VersionInfo(Model):
    version: str
    revision: str
    branch: str
    buildUser: str
    buildDate: str
    goVersion: str


class AlertmanagerConfig(Model):
    original: str


class AlertmanagerStatus(Model):
    cluster: ClusterStatus
    versionInfo: VersionInfo
    config: AlertmanagerConfig
    uptime: str


def timestamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- harness ---------------------------------------------------------------------------------


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Any]:
    made: list[Sentinel] = []

    def build(token: str = "") -> ApiServer:
        text = CONFIG.format(path=tmp_path / f"s{len(made)}.db", token=token)
        sentinel = Sentinel(parse(text, env={}), FakeClock(T0))
        sentinel.store.started_at = T0 - 60
        sentinel.store.probe_ok("inspect", T0)
        sentinel.evaluate()  # no workers: NoLiveWorkers, NoWorkersInfo fire; ForLong is pending
        made.append(sentinel)
        server = ApiServer(sentinel.api_ports(), sentinel.metrics_registry())
        server.sentinel = sentinel  # type: ignore[attr-defined]  # the tests look at its book
        return server

    yield build
    for sentinel in made:
        if sentinel.db is not None:
            sentinel.db.close()


@pytest.fixture
def api(make: Any) -> ApiServer:
    server: ApiServer = make()
    return server


def call(
    api: ApiServer,
    method: str,
    path: str,
    query: str = "",
    body: Any = None,
    token: str | None = None,
) -> tuple[int, Any]:
    raw = b"" if body is None else json.dumps(body).encode()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(raw)),
        "wsgi.input": io.BytesIO(raw),
    }
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    response = api.handle(environ)
    assert response.content_type == "application/json", response
    return response.status, json.loads(response.body) if response.body else None


def get(api: ApiServer, path: str, query: str = "") -> Any:
    status, body = call(api, "GET", path, query)
    assert status == 200, body
    return body


def silence_body(**kw: Any) -> dict[str, Any]:
    return {
        "matchers": [{"name": "alertname", "value": "NoLiveWorkers", "isRegex": False}],
        "startsAt": rfc3339(T0),
        "endsAt": rfc3339(T0 + 3600),
        "createdBy": "grafana",
        "comment": "deploy",
        **kw,
    }


# -- status, receivers -----------------------------------------------------------------------


def test_status(api: ApiServer) -> None:
    status = AlertmanagerStatus.model_validate(get(api, "/api/v2/status"))
    assert status.cluster.status == "disabled"
    assert timestamp(status.uptime) == T0 - 60
    config = yaml.safe_load(status.config.original)
    assert config["route"]["receiver"] == "default"
    assert config["route"]["routes"][0]["matchers"] == ['severity="critical"']
    assert "token" not in status.config.original and "channels" not in config


def test_receivers(api: ApiServer) -> None:
    body = TypeAdapter(list[Receiver]).validate_python(get(api, "/api/v2/receivers"))
    assert [r.name for r in body] == ["default", "pager", "chat"]


# -- alerts ----------------------------------------------------------------------------------


def alerts(api: ApiServer, query: str = "") -> list[GettableAlert]:
    return TypeAdapter(list[GettableAlert]).validate_python(get(api, "/api/v2/alerts", query))


def test_alerts_are_the_firing_ones_with_every_field(api: ApiServer) -> None:
    body = alerts(api)
    by_name = {a.labels["alertname"]: a for a in body}
    assert set(by_name) == {"NoLiveWorkers", "NoWorkersInfo"}  # the pending one is not listed
    book = {a.labels["alertname"]: a for a in api.sentinel.book.alerts.values()}  # type: ignore[attr-defined]
    critical = by_name["NoLiveWorkers"]
    assert critical.fingerprint == book["NoLiveWorkers"].fingerprint
    assert critical.status.state == "active"
    assert [r.name for r in critical.receivers] == ["pager", "chat"]
    assert timestamp(critical.startsAt) == T0
    assert timestamp(critical.endsAt) == T0 + 40  # four evaluation intervals ahead
    assert critical.generatorURL == f"http://127.0.0.1:9808/#alert-{critical.fingerprint}"
    info = by_name["NoWorkersInfo"]
    assert info.status.state == "suppressed"
    assert info.status.inhibitedBy == [critical.fingerprint]
    assert [r.name for r in info.receivers] == ["default"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"NoLiveWorkers", "NoWorkersInfo"}),
        ("active=false", {"NoWorkersInfo"}),
        ("inhibited=false", {"NoLiveWorkers"}),
        ("active=false&inhibited=false", set()),
        ("silenced=false&unprocessed=false", {"NoLiveWorkers", "NoWorkersInfo"}),
        ("filter=severity%3D%22critical%22", {"NoLiveWorkers"}),
        ("filter=alertname%3D~%22NoWork.*%22", {"NoWorkersInfo"}),
        ("filter=alertname%3D~%22No.*%22&filter=severity!%3Dcritical", {"NoWorkersInfo"}),
        ("filter=%7Bseverity%3D%22info%22%7D", {"NoWorkersInfo"}),
        ("receiver=pager", {"NoLiveWorkers"}),
        ("receiver=pag", set()),  # anchored, as Alertmanager's
        ("receiver=def.*", {"NoWorkersInfo"}),
        ("active=0&inhibited=T", {"NoWorkersInfo"}),  # strconv.ParseBool spellings
    ],
)
def test_alert_filters(api: ApiServer, query: str, expected: set[str]) -> None:
    assert {a.labels["alertname"] for a in alerts(api, query)} == expected


def test_a_silenced_alert_is_suppressed_and_names_its_silence(api: ApiServer) -> None:
    status, body = call(api, "POST", "/api/v2/silences", body=silence_body())
    assert status == 200
    [critical] = alerts(api, "filter=alertname%3DNoLiveWorkers")
    assert critical.status.state == "suppressed"
    assert critical.status.silencedBy == [body["silenceID"]]
    assert {a.labels["alertname"] for a in alerts(api, "silenced=false")} == {"NoWorkersInfo"}


def test_groups(api: ApiServer) -> None:
    groups = TypeAdapter(list[AlertGroup]).validate_python(get(api, "/api/v2/alerts/groups"))
    seen = {(g.receiver.name, tuple(g.labels.items())): g for g in groups}
    assert set(seen) == {
        ("pager", (("severity", "critical"),)),
        ("chat", (("severity", "critical"),)),
        ("default", (("severity", "info"),)),
    }
    assert [a.labels["alertname"] for a in seen[("default", (("severity", "info"),))].alerts] == [
        "NoWorkersInfo"
    ]
    narrowed = get(api, "/api/v2/alerts/groups", "receiver=chat")
    assert [g["receiver"]["name"] for g in narrowed] == ["chat"]
    assert get(api, "/api/v2/alerts/groups", "inhibited=false&receiver=default") == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("active=maybe", "active in query must be of type boolean"),
        ("filter=1abc%3Dx", "bad matcher format"),
        ("filter=a%3D~%22(%22", "invalid regular expression"),
        ("receiver=(", "failed to parse receiver param"),
    ],
)
def test_bad_queries_are_400_with_a_json_string(api: ApiServer, query: str, message: str) -> None:
    status, body = call(api, "GET", "/api/v2/alerts", query)
    assert status == 400
    assert isinstance(body, str) and message in body


# -- silences --------------------------------------------------------------------------------


def test_silence_lifecycle(api: ApiServer) -> None:
    status, created = call(api, "POST", "/api/v2/silences", body=silence_body())
    assert status == 200 and set(created) == {"silenceID"}
    silence_id = created["silenceID"]
    listed = TypeAdapter(list[GettableSilence]).validate_python(get(api, "/api/v2/silences"))
    assert [s.id for s in listed] == [silence_id] and listed[0].status.state == "active"
    one = GettableSilence.model_validate(get(api, f"/api/v2/silence/{silence_id}"))
    assert one.createdBy == "grafana" and one.matchers[0].name == "alertname"

    # An update: the same id, a new end (Grafana's silence editor posts the id back).
    update = silence_body(id=silence_id, endsAt=rfc3339(T0 + 7200))
    assert call(api, "POST", "/api/v2/silences", body=update) == (200, {"silenceID": silence_id})
    assert timestamp(get(api, f"/api/v2/silence/{silence_id}")["endsAt"]) == T0 + 7200

    assert call(api, "DELETE", f"/api/v2/silence/{silence_id}") == (200, None)
    assert get(api, f"/api/v2/silence/{silence_id}")["status"]["state"] == "expired"


def test_silence_filter(api: ApiServer) -> None:
    call(api, "POST", "/api/v2/silences", body=silence_body())
    other = silence_body(matchers=[{"name": "queue", "value": "billing.*", "isRegex": True}])
    call(api, "POST", "/api/v2/silences", body=other)
    assert len(get(api, "/api/v2/silences")) == 2
    [only] = get(api, "/api/v2/silences", "filter=alertname%3DNoLiveWorkers")
    assert only["matchers"][0]["value"] == "NoLiveWorkers"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("GET", "/api/v2/silence/nope", None, 404, "silence nope not found"),
        ("DELETE", "/api/v2/silence/nope", None, 404, "silence nope not found"),
        ("POST", "/api/v2/silences", {"matchers": []}, 400, "at least one matcher"),
        ("POST", "/api/v2/silences", silence_body(id="nope"), 404, "silence nope not found"),
        ("PUT", "/api/v2/silences", None, 405, "method PUT not allowed"),
    ],
)
def test_errors_are_json_strings(
    api: ApiServer, method: str, path: str, body: Any, status: int, message: str
) -> None:
    got_status, got = call(api, method, path, body=body)
    assert got_status == status
    assert isinstance(got, str) and message in got


def test_writes_need_the_token_when_one_is_set(make: Any) -> None:
    api = make(token="s3cret")
    status, body = call(api, "POST", "/api/v2/silences", body=silence_body())
    assert status == 401 and isinstance(body, str) and "Bearer" in body
    assert call(api, "DELETE", "/api/v2/silence/x")[0] == 401
    assert call(api, "POST", "/api/v2/silences", body=silence_body(), token="s3cret")[0] == 200
    assert call(api, "GET", "/api/v2/silences")[0] == 200  # reads stay open


def test_v1_keeps_its_own_error_body(api: ApiServer) -> None:
    status, body = call(api, "DELETE", "/api/v1/silences/nope")
    assert status == 404 and body == {"error": "silence nope not found"}
