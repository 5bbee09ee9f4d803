"""The HTTP API over a real socket: health, readiness, alerts, rules, silences, auth, metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from sentinel.api.server import ApiServer
from sentinel.app import Sentinel
from sentinel.config import parse
from sentinel.model import rfc3339
from tests.helpers import Broker, wait_for

pytestmark = pytest.mark.integration

TOKEN = "s3cret-api-token"
SLACK_TOKEN = "xoxb-123-SLACKSECRET-456"
HOOK_SECRET = "HOOKSECRET789"

CONFIG = """
celery:
  broker_url: "{broker}"
  inspect_interval: 1s
  inspect_timeout: 1s
storage:
  path: "{path}"
server:
  listen: 127.0.0.1:0
  token: "{token}"
rules:
  - name: NoLiveWorkers
    kind: no_live_workers
    severity: critical
  - name: NoWorkersForLong
    kind: no_live_workers
    for: 1h
inhibit:
  - source: {{alertname: NoLiveWorkers}}
    target: {{alertname: NoWorkersForLong}}
channels:
  slack:
    type: slack
    token: "{slack_token}"
    channel: "#celery-alerts"
  hook:
    type: webhook
    url: "https://hooks.example.com/{hook_secret}/celery"
"""


class Api:
    def __init__(self, sentinel: Sentinel, server: ApiServer) -> None:
        self.sentinel = sentinel
        self.server = server
        self.base = f"http://127.0.0.1:{server.port}"

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.base + path, timeout=10, **kw)

    def post(
        self, path: str, auth: bool = True, headers: dict[str, str] | None = None, **kw: Any
    ) -> requests.Response:
        headers = {**self._auth(auth), **(headers or {})}
        return requests.post(self.base + path, headers=headers, timeout=10, **kw)

    def delete(self, path: str, auth: bool = True) -> requests.Response:
        return requests.delete(self.base + path, headers=self._auth(auth), timeout=10)

    def _auth(self, auth: bool) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"} if auth else {}


@pytest.fixture
def make_api(tmp_path: Path, redis_url: str) -> Iterator[Callable[..., Api]]:
    running: list[Api] = []

    def make(token: str = TOKEN, broker: str = redis_url) -> Api:
        text = CONFIG.format(
            broker=broker,
            path=tmp_path / f"sentinel-{len(running)}.db",
            token=token,
            slack_token=SLACK_TOKEN,
            hook_secret=HOOK_SECRET,
        )
        sentinel = Sentinel(parse(text, env={}))
        server = ApiServer(sentinel.api_ports(), sentinel.metrics_registry())
        server.start()
        api = Api(sentinel, server)
        running.append(api)
        return api

    yield make
    for api in running:
        api.server.stop()
        api.sentinel.stop()


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()


def silence_body(**overrides: Any) -> dict[str, Any]:
    now = time.time()
    body = {
        "matchers": [
            {"name": "alertname", "value": "NoLiveWorkers", "isRegex": False, "isEqual": True}
        ],
        "startsAt": rfc3339(now),
        "endsAt": rfc3339(now + 3600),
        "createdBy": "pytest",
        "comment": "maintenance",
    }
    body.update(overrides)
    return body


def evaluate_with_no_workers(api: Api) -> None:
    """An inspect round that reached the broker and found nobody: NoLiveWorkers fires."""
    api.sentinel.store.probe_ok("inspect", api.sentinel.clock.now())
    api.sentinel.evaluate()


# -- health -------------------------------------------------------------------------------


def test_healthz(api: Api) -> None:
    r = api.get("/healthz")
    assert r.status_code == 200
    assert r.text.strip() == "ok"


def test_readyz_names_every_reason_until_collection_works(api: Api) -> None:
    r = api.get("/readyz")
    assert r.status_code == 503
    assert "events: not connected" in r.text
    assert "inspect: no successful round yet" in r.text

    store, now = api.sentinel.store, api.sentinel.clock.now()
    store.probe_ok("inspect", now - 60)  # 60 s > 2 x 1 s interval + 1 s timeout
    r = api.get("/readyz")
    assert r.status_code == 503
    assert "inspect: last successful round 60s ago" in r.text

    api.sentinel.events.connected.set()
    store.probe_failed("inspect", "ConnectionError: Error 111 connecting", now)
    r = api.get("/readyz")
    assert r.status_code == 503
    assert "events" not in r.text
    assert r.text.strip() == "inspect: ConnectionError: Error 111 connecting"

    store.probe_ok("inspect", api.sentinel.clock.now())
    r = api.get("/readyz")
    assert r.status_code == 200, r.text


def test_readyz_turns_ready_once_the_daemon_collects(
    make_api: Callable[..., Api], broker: Broker
) -> None:
    api = make_api(broker=broker.url)
    assert api.get("/readyz").status_code == 503
    api.sentinel.start()
    wait_for(
        lambda: api.get("/readyz").status_code == 200,
        30,
        message="/readyz 200 with the event stream subscribed and an inspect round done",
    )


# -- routing and auth ---------------------------------------------------------------------


def test_unknown_path_and_wrong_method(api: Api) -> None:
    r = api.get("/api/v1/nope")
    assert r.status_code == 404
    assert "error" in r.json()
    r = api.post("/api/v1/alerts", json={})
    assert r.status_code == 405
    assert "GET" in r.headers["Allow"]
    r = requests.put(api.base + "/api/v1/silences", timeout=10)
    assert r.status_code == 405


def test_writes_need_the_token_reads_do_not(api: Api) -> None:
    assert api.post("/api/v1/silences", auth=False, json=silence_body()).status_code == 401
    r = requests.post(
        api.base + "/api/v1/silences",
        json=silence_body(),
        headers={"Authorization": "Bearer wrong"},
        timeout=10,
    )
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert api.delete("/api/v1/silences/anything", auth=False).status_code == 401
    assert api.get("/api/v1/silences").json() == []  # nothing was created

    r = api.post("/api/v1/silences", json=silence_body())
    assert r.status_code == 200
    assert api.get("/api/v1/silences").status_code == 200


def test_no_token_configured_means_writes_are_open(make_api: Callable[..., Api]) -> None:
    api = make_api(token="")
    assert api.post("/api/v1/silences", auth=False, json=silence_body()).status_code == 200


# -- alerts, silences ---------------------------------------------------------------------


def test_alerts_show_state_silences_and_inhibitions(api: Api) -> None:
    assert api.get("/api/v1/alerts").json() == []
    evaluate_with_no_workers(api)

    alerts = {a["labels"]["alertname"]: a for a in api.get("/api/v1/alerts").json()}
    assert set(alerts) == {"NoLiveWorkers", "NoWorkersForLong"}
    firing, pending = alerts["NoLiveWorkers"], alerts["NoWorkersForLong"]
    assert firing["state"] == "firing"
    assert firing["startsAt"] is not None and firing["startsAt"].endswith("Z")
    assert firing["activeAt"] is not None
    assert firing["value"] == 0 and firing["threshold"] == 1
    assert firing["labels"]["severity"] == "critical"
    assert firing["annotations"]["summary"]
    assert len(firing["fingerprint"]) == 16
    assert firing["silencedBy"] == [] and firing["inhibitedBy"] == []
    assert pending["state"] == "pending"
    assert pending["startsAt"] is None
    assert pending["inhibitedBy"] == [firing["fingerprint"]]

    rules = {r["name"]: r for r in api.get("/api/v1/rules").json()}
    assert rules["NoLiveWorkers"]["alerts"] == 1
    assert rules["NoLiveWorkers"]["state"] == "firing"
    assert rules["NoWorkersForLong"]["state"] == "pending"
    assert rules["NoWorkersForLong"]["for"] == 3600


def test_silence_lifecycle(api: Api) -> None:
    evaluate_with_no_workers(api)
    r = api.post("/api/v1/silences", json=silence_body())
    assert r.status_code == 200
    silence_id = r.json()["silenceID"]

    [listed] = api.get("/api/v1/silences").json()
    assert listed["id"] == silence_id
    assert listed["status"]["state"] == "active"
    assert listed["matchers"][0]["value"] == "NoLiveWorkers"
    assert listed["createdBy"] == "pytest"

    alerts = {a["labels"]["alertname"]: a for a in api.get("/api/v1/alerts").json()}
    assert alerts["NoLiveWorkers"]["silencedBy"] == [silence_id]
    assert alerts["NoWorkersForLong"]["silencedBy"] == []

    r = api.delete(f"/api/v1/silences/{silence_id}")
    assert r.status_code == 200
    [listed] = api.get("/api/v1/silences").json()
    assert listed["status"]["state"] == "expired"
    alerts = {a["labels"]["alertname"]: a for a in api.get("/api/v1/alerts").json()}
    assert alerts["NoLiveWorkers"]["silencedBy"] == []

    assert api.delete("/api/v1/silences/no-such-id").status_code == 404


def test_stop_closes_the_socket_and_a_new_server_serves_the_same_state(
    make_api: Callable[..., Api],
) -> None:
    api = make_api()
    silence_id = api.post("/api/v1/silences", json=silence_body()).json()["silenceID"]
    api.server.stop()
    with pytest.raises(requests.ConnectionError):
        api.get("/healthz")
    again = ApiServer(api.sentinel.api_ports(), api.sentinel.metrics_registry())
    again.start()
    try:
        r = requests.get(f"http://127.0.0.1:{again.port}/api/v1/silences", timeout=10)
        assert [s["id"] for s in r.json()] == [silence_id]
    finally:
        again.stop()


def test_updating_an_unknown_silence_is_404(api: Api) -> None:
    r = api.post("/api/v1/silences", json=silence_body(id="does-not-exist"))
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "invalid JSON"),
        (b"", "JSON object"),
        (b"[1, 2]", "JSON object"),
        (silence_body(matchers=[]), "matchers"),
        (
            silence_body(matchers=[{"name": "alertname", "value": "(", "isRegex": True}]),
            "invalid regular expression",
        ),
        (
            silence_body(matchers=[{"name": "alertname", "value": ".*", "isRegex": True}]),
            "empty string",
        ),
        (
            silence_body(startsAt=rfc3339(time.time() + 600), endsAt=rfc3339(time.time() + 60)),
            "endsAt must be after startsAt",
        ),
        (silence_body(endsAt="yesterday"), "RFC 3339"),
    ],
)
def test_bad_silences_are_400_with_the_reason(api: Api, body: Any, reason: str) -> None:
    if isinstance(body, bytes):
        r = api.post("/api/v1/silences", data=body, headers={"Content-Type": "application/json"})
    else:
        r = api.post("/api/v1/silences", json=body)
    assert r.status_code == 400, r.text
    assert reason in r.json()["error"]
    assert api.get("/api/v1/silences").json() == []


# -- rules, metrics -----------------------------------------------------------------------


def test_no_endpoint_shows_a_secret(api: Api) -> None:
    evaluate_with_no_workers(api)
    r = api.get("/api/v1/rules")
    assert r.status_code == 200
    assert {rule["name"] for rule in r.json()} == {"NoLiveWorkers", "NoWorkersForLong"}
    for path in ("/api/v1/rules", "/api/v1/alerts", "/api/v1/silences", "/metrics", "/readyz"):
        text = api.get(path).text
        assert SLACK_TOKEN not in text, path
        assert HOOK_SECRET not in text, path
        assert TOKEN not in text, path


def test_metrics_on_the_servers_own_registry(make_api: Callable[..., Api]) -> None:
    api = make_api()
    other = make_api()  # a second server in the same process: no shared, global registry
    assert api.server.registry is not REGISTRY
    assert api.server.registry is not other.server.registry
    evaluate_with_no_workers(api)
    api.sentinel.store.apply_event(
        {"type": "worker-heartbeat", "hostname": "w1@test", "freq": 2.0, "active": 0},
        api.sentinel.clock.now(),
    )

    r = api.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    for name in (
        "sentinel_events",
        "sentinel_events_dropped",
        "sentinel_alerts",
        "sentinel_notifications",
        "sentinel_outbox_pending",
        "sentinel_rule_evaluation_seconds",
        "sentinel_last_collection_timestamp_seconds",
        "celery_task_sent",
        "celery_task_failed",
        "celery_worker_up",
        "celery_worker_tasks_active",
        "celery_queue_length",
        "celery_task_runtime",
        "celery_task_queue_wait_time",
    ):
        assert name in families, name
    up = {s.labels["hostname"]: s.value for s in families["celery_worker_up"].samples}
    assert up == {"w1@test": 1.0}
    by_state = {s.labels["state"]: s.value for s in families["sentinel_alerts"].samples}
    assert by_state == {"pending": 1.0, "firing": 1.0}

    other_text = other.get("/metrics").text
    assert "w1@test" not in other_text
