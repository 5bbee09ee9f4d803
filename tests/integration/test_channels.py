"""Every channel against a real server on loopback: pytest-httpserver standing in for Slack,
PagerDuty and a webhook receiver, aiosmtpd for email. Asserts what arrived on the wire."""

from __future__ import annotations

import email
import email.policy
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from sentinel.channels import build
from sentinel.channels.base import Notification, NotifyError, Permanent, Retryable
from sentinel.channels.email import EmailChannel
from sentinel.channels.pagerduty import PagerDutyChannel
from sentinel.channels.slack import SlackChannel
from sentinel.channels.webhook import WebhookChannel
from sentinel.model import Alert, Labels, State
from tests.helpers import T0

pytestmark = pytest.mark.integration

GROUP_KEY = '{}:{alertname="QueueBacklog"}'


def alert(state: State = State.FIRING, queue: str = "celery", severity: str = "critical") -> Alert:
    return Alert(
        rule="QueueBacklog",
        labels=Labels(alertname="QueueBacklog", severity=severity, queue=queue),
        annotations={"summary": f"Queue {queue} has 1500 messages waiting"},
        state=state,
        active_at=T0,
        fired_at=T0 + 60,
        resolved_at=T0 + 600 if state is State.RESOLVED else None,
        value=1500.0,
        threshold=1000.0,
    )


def note(channel: str, state: State, memo: dict[str, str] | None = None) -> Notification:
    return Notification(
        channel=channel,
        group_key=GROUP_KEY,
        group_labels=Labels(alertname="QueueBacklog"),
        status="resolved" if state is State.RESOLVED else "firing",
        alerts=(alert(state),),
        memo=memo or {},
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def requests_to(server: HTTPServer, path: str) -> list[Request]:
    return [req for req, _ in server.log if req.path == path]


# --- Slack -----------------------------------------------------------------------------------


def slack(server: HTTPServer, **kw: Any) -> Any:
    config = SlackChannel(
        type="slack",
        token="xoxb-test",
        channel="#celery-alerts",
        api_url=server.url_for("/api/"),
        **kw,
    )
    return build("slack", config)


def slack_ok(server: HTTPServer, method: str, ts: str) -> None:
    server.expect_request(f"/api/{method}", method="POST").respond_with_json(
        {"ok": True, "ts": ts, "channel": "C1"}
    )


def test_slack_firing_then_resolved_updates_and_replies_in_thread(httpserver: HTTPServer) -> None:
    slack_ok(httpserver, "chat.postMessage", "1700000060.000100")
    slack_ok(httpserver, "chat.update", "1700000060.000100")
    notifier = slack(httpserver)

    memo = notifier.send(note("slack", State.FIRING))
    assert memo == {"ts": "1700000060.000100", "channel": "C1", "status": "firing"}
    (post,) = requests_to(httpserver, "/api/chat.postMessage")
    assert post.headers["Authorization"] == "Bearer xoxb-test"
    body = post.get_json()
    assert body["channel"] == "#celery-alerts"
    assert body["blocks"][0]["text"]["text"] == "[FIRING:1] QueueBacklog"
    attachment = body["attachments"][0]
    assert attachment["color"] == "#E01E5A"
    text = attachment["blocks"][0]["text"]["text"]
    assert "Queue celery has 1500 messages waiting" in text
    assert "*value* 1500 vs *threshold* 1000" in text and "`queue=celery`" in text

    memo = notifier.send(note("slack", State.RESOLVED, memo=dict(memo)))
    assert memo == {"ts": "1700000060.000100", "channel": "C1", "status": "resolved"}
    (update,) = requests_to(httpserver, "/api/chat.update")
    update_body = update.get_json()
    assert update_body["channel"] == "C1" and update_body["ts"] == "1700000060.000100"
    assert update_body["attachments"][0]["color"] == "#2EB67D"
    assert update_body["blocks"][0]["text"]["text"] == "[RESOLVED] QueueBacklog"
    _, reply = requests_to(httpserver, "/api/chat.postMessage")
    reply_body = reply.get_json()
    assert reply_body["thread_ts"] == "1700000060.000100" and reply_body["channel"] == "C1"
    assert reply_body["text"].startswith("*[RESOLVED] QueueBacklog*")
    assert [req.path for req, _ in httpserver.log][-2:] == [
        "/api/chat.update",
        "/api/chat.postMessage",
    ]


def test_slack_reposts_when_the_original_message_is_gone(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/chat.update").respond_with_json(
        {"ok": False, "error": "message_not_found"}
    )
    slack_ok(httpserver, "chat.postMessage", "1700000999.000200")
    memo = slack(httpserver).send(note("slack", State.RESOLVED, {"ts": "1.0", "channel": "C1"}))
    assert memo["ts"] == "1700000999.000200"
    (post,) = requests_to(httpserver, "/api/chat.postMessage")
    assert "thread_ts" not in post.get_json()


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "after"),
    [
        (200, {"ok": False, "error": "invalid_auth"}, {}, Permanent, None),
        (200, {"ok": False, "error": "channel_not_found"}, {}, Permanent, None),
        (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"}, Retryable, 7.0),
        (500, "<html>upstream error</html>", {}, Retryable, None),
        (503, {"ok": False, "error": "service_unavailable"}, {}, Retryable, None),
    ],
)
def test_slack_errors(
    httpserver: HTTPServer,
    status: int,
    body: Any,
    headers: dict[str, str],
    expected: type[NotifyError],
    after: float | None,
) -> None:
    handler = httpserver.expect_request("/api/chat.postMessage")
    if isinstance(body, dict):
        handler.respond_with_json(body, status=status, headers=headers)
    else:
        handler.respond_with_data(body, status=status, headers=headers)
    with pytest.raises(expected) as caught:
        slack(httpserver).send(note("slack", State.FIRING))
    if isinstance(body, dict):
        assert body["error"] in caught.value.detail
    assert getattr(caught.value, "retry_after", None) == after
    # retry_handlers=[]: slack_sdk must not retry on its own; the outbox does.
    assert len(httpserver.log) == 1


def test_slack_connection_refused_is_retryable() -> None:
    config = SlackChannel(
        type="slack",
        token="xoxb-test",
        channel="#c",
        api_url=f"http://127.0.0.1:{closed_port()}/api/",
    )
    with pytest.raises(Retryable, match="unreachable"):
        build("slack", config).send(note("slack", State.FIRING))


# --- PagerDuty -------------------------------------------------------------------------------


def pagerduty(url: str, **kw: Any) -> Any:
    return build(
        "pagerduty", PagerDutyChannel(type="pagerduty", routing_key="R0UT1NG", url=url, **kw)
    )


def test_pagerduty_trigger_then_resolve_share_the_dedup_key(httpserver: HTTPServer) -> None:
    def accept(request: Request) -> Response:
        key = request.get_json()["dedup_key"]
        return Response(
            f'{{"status":"success","message":"Event processed","dedup_key":"{key}"}}',
            status=202,
            content_type="application/json",
        )

    httpserver.expect_request("/v2/enqueue", method="POST").respond_with_handler(accept)
    notifier = pagerduty(httpserver.url_for("/v2/enqueue"), source="celery-prod")

    first = notifier.send(note("pagerduty", State.FIRING))
    second = notifier.send(note("pagerduty", State.RESOLVED, memo=dict(first)))
    trigger, resolve = (req.get_json() for req, _ in httpserver.log)
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] == first["dedup_key"]
    assert second == first
    assert trigger["routing_key"] == resolve["routing_key"] == "R0UT1NG"
    assert trigger["client"] == "sentinel"
    payload = trigger["payload"]
    assert payload["summary"] == "[FIRING:1] QueueBacklog"
    assert payload["severity"] == "critical" and payload["source"] == "celery-prod"
    (detail,) = payload["custom_details"]["firing"]
    assert detail["labels"] == {
        "alertname": "QueueBacklog",
        "queue": "celery",
        "severity": "critical",
    }
    assert detail["value"] == 1500.0 and detail["threshold"] == 1000.0
    assert httpserver.log[0][0].headers["Content-Type"] == "application/json"


# --- webhook ---------------------------------------------------------------------------------


def webhook(url: str, **kw: Any) -> Any:
    return build("webhook", WebhookChannel(type="webhook", url=url, **kw))


def test_webhook_alertmanager_v4_firing_then_resolved(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    notifier = webhook(httpserver.url_for("/hook"), headers={"Authorization": "Bearer s3cret"})

    assert notifier.send(note("hook", State.FIRING)) == {}
    assert notifier.send(note("hook", State.RESOLVED)) == {}
    (fire_req, _), (resolve_req, _) = httpserver.log
    assert fire_req.headers["Authorization"] == "Bearer s3cret"
    assert fire_req.headers["Content-Type"] == "application/json"
    fired, resolved = fire_req.get_json(), resolve_req.get_json()
    for body in (fired, resolved):
        assert body["version"] == "4" and body["receiver"] == "hook"
        assert body["groupKey"] == GROUP_KEY and body["truncatedAlerts"] == 0
        assert body["groupLabels"] == {"alertname": "QueueBacklog"}
        assert body["commonLabels"]["queue"] == "celery"
        assert body["commonAnnotations"] == {"summary": "Queue celery has 1500 messages waiting"}
    assert fired["status"] == "firing" and resolved["status"] == "resolved"
    (a,) = fired["alerts"]
    assert a["status"] == "firing" and a["endsAt"] == "0001-01-01T00:00:00Z"
    assert a["startsAt"] == "2023-11-14T22:14:20.000Z"
    assert a["fingerprint"] == alert().fingerprint
    (r,) = resolved["alerts"]
    assert r["status"] == "resolved" and r["endsAt"] == "2023-11-14T22:23:20.000Z"


def test_webhook_template_body(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    body = '{"text": "{{ status }}: {% for a in alerts %}{{ a.labels.queue }}{% endfor %}"}'
    webhook(httpserver.url_for("/hook"), format="template", body=body).send(
        note("hook", State.FIRING)
    )
    ((req, _),) = httpserver.log
    assert req.headers["Content-Type"] == "application/json"
    assert req.get_json() == {"text": "firing: celery"}


def test_webhook_timeout_is_retryable(httpserver: HTTPServer) -> None:
    def slow(_: Request) -> Response:
        time.sleep(1.0)
        return Response("late")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    with pytest.raises(Retryable, match="timed out"):
        webhook(httpserver.url_for("/slow"), timeout=0.2).send(note("hook", State.FIRING))


# --- HTTP error classification, PagerDuty and webhook alike ----------------------------------


@pytest.mark.parametrize("kind", ["pagerduty", "webhook"])
@pytest.mark.parametrize(
    ("status", "headers", "expected", "after"),
    [
        (500, {}, Retryable, None),
        (503, {"Retry-After": "3"}, Retryable, 3.0),
        (429, {"Retry-After": "7"}, Retryable, 7.0),
        (400, {}, Permanent, None),
        (403, {}, Permanent, None),
    ],
)
def test_http_errors(
    httpserver: HTTPServer,
    kind: str,
    status: int,
    headers: dict[str, str],
    expected: type[NotifyError],
    after: float | None,
) -> None:
    httpserver.expect_request("/x").respond_with_json(
        {"status": "invalid event", "errors": ["bad"]}, status=status, headers=headers
    )
    notifier = (
        pagerduty(httpserver.url_for("/x"))
        if kind == "pagerduty"
        else webhook(httpserver.url_for("/x"))
    )
    with pytest.raises(expected) as caught:
        notifier.send(note(kind, State.FIRING))
    assert caught.value.detail.startswith(f"HTTP {status}")
    assert getattr(caught.value, "retry_after", None) == after


@pytest.mark.parametrize("kind", ["pagerduty", "webhook"])
def test_http_connection_refused_is_retryable_and_hides_the_url(kind: str) -> None:
    url = f"http://127.0.0.1:{closed_port()}/secret-token-path"
    notifier = pagerduty(url) if kind == "pagerduty" else webhook(url)
    with pytest.raises(Retryable, match="connection failed") as caught:
        notifier.send(note(kind, State.FIRING))
    assert "secret-token-path" not in caught.value.detail


# --- email -----------------------------------------------------------------------------------


@dataclass
class Inbox:
    """aiosmtpd handler that keeps what it receives and answers DATA with `reply`."""

    reply: str = "250 OK"
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.reply.startswith("250"):
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append(parsed)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return self.reply


@dataclass
class Smtp:
    inbox: Inbox
    port: int


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"bot", b"hunter2")
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    inbox = Inbox()
    port = closed_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=_authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield Smtp(inbox, port)
    finally:
        controller.stop()


def mailer(port: int, **kw: Any) -> Any:
    settings: dict[str, Any] = {
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "starttls": False,
        "from": "sentinel@example.com",
        "to": ["oncall@example.com", "ops@example.com"],
        "timeout": 5,
        **kw,
    }
    return build("email", EmailChannel.model_validate(settings))


def test_email_firing_then_resolved_is_threaded(smtp: Smtp) -> None:
    notifier = mailer(
        smtp.port, username="bot", password="hunter2", **{"from": "Sentinel <sentinel@example.com>"}
    )
    first = notifier.send(note("mail", State.FIRING))
    second = notifier.send(note("mail", State.RESOLVED, memo=dict(first)))

    fired, resolved = smtp.inbox.messages
    assert smtp.inbox.envelopes[0] == (
        "sentinel@example.com",
        ["oncall@example.com", "ops@example.com"],
    )
    assert first["message_id"] == fired["Message-ID"]
    assert second["message_id"] == fired["Message-ID"]  # the thread keeps its root
    assert resolved["Message-ID"] != fired["Message-ID"]
    assert resolved["In-Reply-To"] == fired["Message-ID"] == resolved["References"]
    assert fired["In-Reply-To"] is None
    assert fired["Subject"] == "[FIRING:1] QueueBacklog"
    assert resolved["Subject"] == "[RESOLVED] QueueBacklog"
    assert fired["To"] == "oncall@example.com, ops@example.com" and fired["Date"]
    for msg in (fired, resolved):
        assert msg.get_content_type() == "multipart/alternative"
        text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert "Queue celery has 1500 messages waiting" in text
        assert "<li><b>Queue celery has 1500 messages waiting</b>" in html
    assert "Resolved (1):" in resolved.get_body(("plain",)).get_content()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [("451 4.3.0 mailbox busy, try later", Retryable), ("554 5.6.0 rejected", Permanent)],
)
def test_email_smtp_reply_codes(smtp: Smtp, reply: str, expected: type[NotifyError]) -> None:
    smtp.inbox.reply = reply
    with pytest.raises(expected, match=reply.split()[0]):
        mailer(smtp.port).send(note("mail", State.FIRING))


def test_email_bad_credentials_are_permanent(smtp: Smtp) -> None:
    with pytest.raises(Permanent, match="authentication"):
        mailer(smtp.port, username="bot", password="wrong").send(note("mail", State.FIRING))


def test_email_starttls_required_but_not_offered_is_permanent(smtp: Smtp) -> None:
    with pytest.raises(Permanent, match="STARTTLS"):
        mailer(smtp.port, starttls=True, username="bot", password="hunter2").send(
            note("mail", State.FIRING)
        )
    assert smtp.inbox.messages == []


def test_email_connection_refused_is_retryable() -> None:
    with pytest.raises(Retryable, match="connection failed"):
        mailer(closed_port()).send(note("mail", State.FIRING))
