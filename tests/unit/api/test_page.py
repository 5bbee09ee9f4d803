"""The status page and its protection without a socket: what it renders (escaped), the
fragment for live refresh, static files, the path prefix, Basic auth and the read token, the
cross-site write check, and /api/v1/notifications."""

from __future__ import annotations

import base64
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from sentinel.api.http import Request
from sentinel.api.server import ApiServer
from sentinel.app import Sentinel
from sentinel.clock import FakeClock
from sentinel.config import parse
from sentinel.notify.history import Attempt, refs
from tests.helpers import T0

HOSTILE = "<img src=x onerror=alert(1)>"

CONFIG = """
storage:
  path: "{path}"
server:
  listen: 127.0.0.1:9808
{server}
rules:
  - name: QueueBacklog
    kind: queue_backlog
    queues: ["*"]
    threshold: 10
route:
  channels: [hook]
  group_by: [alertname, queue]
  group_wait: 0s
channels:
  hook:
    type: webhook
    url: http://127.0.0.1:1/x
"""


@dataclass
class Served:
    """The API over a real Sentinel's ports, and the Sentinel (to feed it)."""

    server: ApiServer
    sentinel: Sentinel

    def handle(self, environ: dict[str, Any]) -> Any:
        return self.server.handle(environ)


def make(tmp_path: Path, server: str = "") -> Served:
    config = parse(CONFIG.format(path=tmp_path / "s.db", server=server), env={})
    s = Sentinel(config, FakeClock(T0))
    s.queues = None  # no broker: the test sets the depths
    return Served(ApiServer(s.api_ports(), s.metrics_registry()), s)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Served]:
    server = make(tmp_path)
    yield server
    assert server.sentinel.db is not None
    server.sentinel.db.close()


def call(api: Served, method: str, path: str, body: bytes = b"", **headers: str) -> Any:
    path, _, query = path.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    for name, value in headers.items():
        environ[name] = value
    return api.handle(environ)


def backlog(api: Served, ticks: int = 5) -> None:
    s = api.sentinel
    for i in range(ticks):
        s.store.set_queue_depths({HOSTILE: (50 + i, 0), "celery": (i, 1)}, {}, s.clock.now())
        s.evaluate()
        s.clock.advance(15)


def test_the_page_shows_a_firing_alert_as_text_never_markup(api: Served) -> None:
    backlog(api)
    r = call(api, "GET", "/")
    html = r.body.decode()
    assert r.status == 200 and r.content_type.startswith("text/html")
    assert HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "QueueBacklog" in html and "1 firing" in html
    assert 'class="value">54</span> / 10' in html  # value vs threshold
    fp = next(iter(api.sentinel.book.alerts))
    assert f'id="alert-{fp}"' in html
    assert "script-src 'self'" in dict(r.headers)["Content-Security-Policy"]
    assert "<polyline" in html  # the rule's chart has points


def test_the_fragment_is_the_sections_alone(api: Served) -> None:
    backlog(api)
    html = call(api, "GET", "/?fragment=1").body.decode()
    assert 'id="alerts"' in html and "<html" not in html and "<script" not in html


def test_static_files_are_cached_and_compressed(api: Served) -> None:
    r = call(api, "GET", "/static/page.js", HTTP_ACCEPT_ENCODING="gzip")
    headers = dict(r.headers)
    assert r.status == 200 and headers["Content-Encoding"] == "gzip"
    assert b"silence-this" in gzip.decompress(r.body)
    again = call(api, "GET", "/static/page.js", HTTP_IF_NONE_MATCH=headers["ETag"])
    assert again.status == 304 and again.body == b""
    assert call(api, "GET", "/static/../server.py").status == 404
    assert call(api, "GET", "/static/nothing.js").status == 404


def test_under_a_path_prefix_links_and_assets_carry_it(tmp_path: Path) -> None:
    api = make(tmp_path, "  external_url: https://ops.example.com/sentinel/")
    html = call(api, "GET", "/sentinel/").body.decode()
    assert 'href="/sentinel/static/page.css' in html and 'data-prefix="/sentinel"' in html
    assert call(api, "GET", "/sentinel/static/page.css").status == 200
    assert call(api, "GET", "/sentinel/api/v1/alerts").status == 200
    assert call(api, "GET", "/api/v1/alerts").status == 200  # a proxy that strips the prefix


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_protects_the_page_and_reads_but_not_healthz(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$")
    htpasswd.write_text(f"# ops\nalice:{hashed}\nbroken line\n")
    api = make(tmp_path, f"  basic_auth_file: {htpasswd}")
    for path in ("/", "/api/v1/alerts", "/api/v1/notifications", "/metrics"):
        r = call(api, "GET", path)
        assert r.status == 401, path
        assert dict(r.headers)["WWW-Authenticate"] == 'Basic realm="sentinel"'
    assert call(api, "GET", "/", HTTP_AUTHORIZATION=basic("alice", "wrong")).status == 401
    assert call(api, "GET", "/", HTTP_AUTHORIZATION=basic("bob", "s3cret")).status == 401
    assert call(api, "GET", "/", HTTP_AUTHORIZATION=basic("alice", "s3cret")).status == 200
    assert call(api, "GET", "/", HTTP_AUTHORIZATION="Basic !!!").status == 401
    assert call(api, "GET", "/healthz").status == 200
    assert call(api, "GET", "/static/page.css").status == 200  # the package's own files
    body = json.dumps({"matchers": [{"name": "a", "value": "b"}], "endsAt": "2099-01-01T00:00:00Z"})
    assert call(api, "POST", "/api/v1/silences", body.encode()).status == 401


def test_the_read_token_opens_reads_by_header_or_the_pages_cookie(tmp_path: Path) -> None:
    api = make(tmp_path, "  read_token: r34d\n  token: wr1te")
    assert call(api, "GET", "/api/v1/alerts").status == 401
    assert call(api, "GET", "/api/v1/alerts", HTTP_AUTHORIZATION="Bearer nope").status == 401
    assert call(api, "GET", "/api/v1/alerts", HTTP_AUTHORIZATION="Bearer r34d").status == 200
    assert call(api, "GET", "/", HTTP_COOKIE="sentinel_read_token=r34d").status == 200
    assert call(api, "GET", "/", HTTP_COOKIE="sentinel_read_token=nope").status == 401
    # The write token reads too; the read token does not write.
    assert call(api, "GET", "/api/v1/alerts", HTTP_AUTHORIZATION="Bearer wr1te").status == 200
    body = json.dumps(
        {"matchers": [{"name": "a", "value": "b"}], "endsAt": "2099-01-01T00:00:00Z"}
    ).encode()
    assert (
        call(api, "POST", "/api/v1/silences", body, HTTP_AUTHORIZATION="Bearer r34d").status == 401
    )
    assert (
        call(api, "POST", "/api/v1/silences", body, HTTP_AUTHORIZATION="Bearer wr1te").status == 200
    )


def test_a_write_from_another_site_is_refused(api: Served) -> None:
    body = json.dumps(
        {"matchers": [{"name": "a", "value": "b"}], "endsAt": "2099-01-01T00:00:00Z"}
    ).encode()
    evil = call(
        api,
        "POST",
        "/api/v1/silences",
        body,
        HTTP_ORIGIN="https://evil.example",
        HTTP_HOST="127.0.0.1:9808",
    )
    assert evil.status == 403
    assert (
        call(api, "POST", "/api/v1/silences", body, HTTP_SEC_FETCH_SITE="cross-site").status == 403
    )
    own = call(
        api,
        "POST",
        "/api/v1/silences",
        body,
        HTTP_ORIGIN="http://127.0.0.1:9808",
        HTTP_HOST="127.0.0.1:9808",
    )
    assert own.status == 200
    assert call(api, "POST", "/api/v1/silences", body).status == 200  # tools send no Origin


def test_notifications_endpoint_lists_the_history(api: Served) -> None:
    history = api.sentinel.notifications
    assert history is not None
    backlog(api)
    alert = next(iter(api.sentinel.book.alerts.values()))
    alerts, more = refs([alert])
    for i, channel in enumerate(("hook", "pager")):
        history.record(
            Attempt(T0 + i, channel, "k", alert.labels, "firing", alerts, 1, "success", None, more)
        )
    r = call(api, "GET", "/api/v1/notifications?channel=hook")
    body = json.loads(r.body)
    assert r.status == 200 and [b["channel"] for b in body] == ["hook"]
    assert body[0]["alerts"][0]["fingerprint"] == alert.fingerprint
    assert body[0]["at"] == "2023-11-14T22:13:20.000Z"
    assert len(json.loads(call(api, "GET", "/api/v1/notifications?limit=1").body)) == 1
    assert call(api, "GET", "/api/v1/notifications?limit=0").status == 400
    assert call(api, "GET", "/api/v1/notifications?limit=x").status == 400
    html = call(api, "GET", "/?channel=pager").body.decode()
    assert html.count('class="outcome-success"') == 1


def test_a_browser_opens_the_page_with_the_read_token_form(tmp_path: Path) -> None:
    api = make(tmp_path, "  read_token: r34d\n  external_url: https://ops.example.com/s")
    form = call(api, "GET", "/s/")
    assert form.status == 401 and b'action="/s/login"' in form.body
    wrong = call(api, "POST", "/s/login", b"read_token=nope")
    assert wrong.status == 401 and b"not the read token" in wrong.body
    ok = call(api, "POST", "/s/login", b"read_token=r34d")
    headers = dict(ok.headers)
    assert ok.status == 303 and headers["Location"] == "/s/"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith("sentinel_read_token=r34d;")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie
    assert "Path=/s" in cookie
    assert call(api, "GET", "/s/", HTTP_COOKIE="sentinel_read_token=r34d").status == 200
    evil = call(api, "POST", "/s/login", b"read_token=r34d", HTTP_ORIGIN="https://evil.example")
    assert evil.status == 403


def test_the_value_history_survives_a_reload(api: Served) -> None:
    backlog(api, ticks=3)
    s = api.sentinel
    before = {x.labels: len(x.points) for x in s.values.series()}
    s.reload(
        parse(CONFIG.format(path=s.config.storage.path, server="").replace("10", "20"), env={})
    )
    backlog(api, ticks=1)
    after = {x.labels: len(x.points) for x in s.values.series()}
    assert before and all(after[k] == n + 1 for k, n in before.items())
    assert {x.threshold for x in s.values.series("QueueBacklog")} == {20.0}


def test_the_htpasswd_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    from sentinel.api.auth import Htpasswd

    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{bcrypt.hashpw(b'one', bcrypt.gensalt(4)).decode()}\n")
    users = Htpasswd(str(path))
    assert users.check("alice", "one") and users.check("alice", "one")  # the second: remembered
    path.write_text(f"alice:{bcrypt.hashpw(b'two-longer', bcrypt.gensalt(4)).decode()}\n")
    assert not users.check("alice", "one")  # the remembered credential went with the old file
    assert users.check("alice", "two-longer")


def test_the_page_renders_over_fake_ports() -> None:
    """The page reads only its ports: a test (or another composition) can serve it."""
    from sentinel.alerts.values import ValueHistory
    from sentinel.api.page import PageViews
    from sentinel.api.page.ports import (
        GroupRef,
        Muting,
        PagePorts,
        PageSettings,
        QueueView,
        WorkerView,
    )
    from sentinel.config.schema import ServerConfig
    from sentinel.model import Alert, Labels, State

    config = parse(CONFIG.format(path=":memory:", server=""), env={})
    labels = Labels(alertname="QueueBacklog", severity="warning", queue=HOSTILE)
    alert = Alert("QueueBacklog", labels, {}, State.FIRING, T0, 50.0, 10.0, fired_at=T0)
    values = ValueHistory(points=4)
    values.record(T0, [("QueueBacklog", labels, 50.0, 10.0, True)])

    class Fake:
        def settings(self) -> PageSettings:
            return PageSettings(config.rules, ServerConfig(), ("hook",), 60.0)

        def alerts(self) -> list[Alert]:
            return [alert]

        def muting(self, alert: Alert, now: float) -> Muting:
            return Muting(["s1"], [])

        def workers(self, now: float) -> list[WorkerView]:
            return [WorkerView("w1@host", True, now - 3, 2, 40, ("celery",), "5.4")]

        def queues(self) -> list[QueueView]:
            return [QueueView("celery", 7, 1, None)]

        def last_event_at(self) -> float | None:
            return T0

        def groups(self, labels: Any) -> list[GroupRef]:
            return [GroupRef("{}", Labels(alertname="QueueBacklog"), ("hook",))]

        def all(self) -> list[Any]:
            return []

    fake = Fake()
    ports = PagePorts(
        FakeClock(T0 + 30), fake, fake, fake, fake, values, ValueHistory(), fake, None
    )
    html = PageViews(ports).index(Request("GET", "/", {"QUERY_STRING": ""})).body.decode()
    assert "alertname=QueueBacklog" in html and "&rarr; hook" in html
    assert "silenced by" in html and "w1@host" in html and "2 of" not in html
    assert "1 of 1 worker(s) alive" in html and "&lt;img" in html and HOSTILE not in html
