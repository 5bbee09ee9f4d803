"""What each channel would send, built without any network: bodies, headers, classification."""

from __future__ import annotations

import json
import smtplib
import ssl
from email import message_from_bytes
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from sentinel.channels import email, log, pagerduty, slack, templates, webhook
from sentinel.channels.base import Notification, Permanent, Retryable, classify, retry_after
from sentinel.channels.email import EmailChannel
from sentinel.channels.pagerduty import PagerDutyChannel
from sentinel.channels.webhook import WebhookChannel
from sentinel.model import Alert, Labels, State
from tests.helpers import T0


def alert(
    severity: str = "warning",
    queue: str = "celery",
    state: State = State.FIRING,
    value: float | None = 1500.0,
    summary: str | None = None,
) -> Alert:
    return Alert(
        rule="QueueBacklog",
        labels=Labels(alertname="QueueBacklog", severity=severity, queue=queue, env="prod"),
        annotations={"summary": summary or f"Queue {queue} has {value} messages waiting"},
        state=state,
        active_at=T0,
        fired_at=T0 + 60,
        resolved_at=T0 + 600 if state is State.RESOLVED else None,
        value=value,
        threshold=1000.0,
    )


def note(*alerts: Alert, memo: dict[str, str] | None = None, test: bool = False) -> Notification:
    firing = any(a.state is not State.RESOLVED for a in alerts)
    return Notification(
        channel="ops",
        group_key='{}:{alertname="QueueBacklog"}',
        group_labels=Labels(alertname="QueueBacklog"),
        status="firing" if firing else "resolved",
        alerts=alerts,
        memo=memo or {},
        test=test,
        external_url="http://sentinel:9808",
    )


# --- base.classify / base.retry_after --------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, None),
        (202, None),
        (204, None),
        (400, Permanent),
        (401, Permanent),
        (403, Permanent),
        (404, Permanent),
        (408, Retryable),
        (413, Permanent),
        (422, Permanent),
        (429, Retryable),
        (500, Retryable),
        (502, Retryable),
        (503, Retryable),
    ],
)
def test_classify(status: int, expected: type | None) -> None:
    assert classify(status) is expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("", None), ("7", 7.0), ("0", 0.0), ("1.5", 1.5), ("-3", 0.0), ("soon", None)],
)
def test_retry_after(header: str | None, expected: float | None) -> None:
    assert retry_after(header) == expected


def test_retry_after_http_date_is_seconds_from_now() -> None:
    assert retry_after("Thu, 01 Jan 1970 00:00:00 GMT") == 0.0
    future = retry_after("Fri, 01 Jan 2100 00:00:00 GMT")
    assert future is not None and future > 365 * 86400


# --- templates -------------------------------------------------------------------------------


def test_title_counts_firing_and_marks_tests() -> None:
    n = note(alert(queue="a"), alert(queue="b"), alert(queue="c", state=State.RESOLVED))
    assert templates.render("title", n) == "[FIRING:2] QueueBacklog"
    assert templates.render("title", note(alert(), test=True)) == "[TEST] [FIRING:1] QueueBacklog"
    custom = {"title": "{{ status }}: {{ common_labels.queue }}"}
    assert templates.render("title", note(alert(), test=True), custom) == "[TEST] firing: celery"


def test_text_lists_firing_and_resolved_with_values() -> None:
    text = templates.render("text", note(alert(queue="a"), alert(queue="b", state=State.RESOLVED)))
    assert "Firing (1):" in text and "Resolved (1):" in text
    assert "value 1500 (threshold 1000)" in text
    assert "queue=a" in text and "queue=b" in text


def test_html_escapes_label_values_even_in_overrides() -> None:
    n = note(alert(queue="<script>x</script>", summary="a < b & c"))
    html = templates.render("html", n)
    assert "<script>" not in html and "&lt;script&gt;" in html and "a &lt; b &amp; c" in html
    custom = templates.render("html", n, {"html": "<p>{{ alerts[0].labels.queue }}</p>"})
    assert custom == "<p>&lt;script&gt;x&lt;/script&gt;</p>"


@pytest.mark.parametrize(
    ("severities", "expected"),
    [
        (["info"], "info"),
        (["warning", "info"], "warning"),
        (["info", "critical", "warning"], "critical"),
        (["error", "warning"], "error"),
        (["bogus"], "error"),
    ],
)
def test_group_severity_is_the_worst(severities: list[str], expected: str) -> None:
    alerts = [alert(severity=s, queue=str(i)) for i, s in enumerate(severities)]
    assert templates.severity(alerts) == expected


# --- PagerDuty ------------------------------------------------------------------------------


PD = PagerDutyChannel(type="pagerduty", routing_key="R0UT1NG", url="http://pd/v2/enqueue")


def test_pagerduty_trigger_body() -> None:
    body = pagerduty.event(note(alert(severity="critical", value=float("nan"))), PD)
    assert body["event_action"] == "trigger"
    assert body["routing_key"] == "R0UT1NG"
    assert body["client"] == "sentinel" and body["client_url"] == "http://sentinel:9808"
    payload = body["payload"]
    assert payload["summary"] == "[FIRING:1] QueueBacklog"
    assert payload["severity"] == "critical"
    assert payload["source"] == "sentinel"
    (detail,) = payload["custom_details"]["firing"]
    assert detail["labels"]["queue"] == "celery"
    assert detail["threshold"] == 1000.0
    assert "value" not in detail  # NaN is not JSON; the unknown value is left out
    json.dumps(body, allow_nan=False)


def test_pagerduty_resolve_reuses_dedup_key_and_sends_no_payload() -> None:
    trigger = pagerduty.event(note(alert()), PD)
    resolve = pagerduty.event(note(alert(state=State.RESOLVED)), PD)
    assert resolve["event_action"] == "resolve"
    assert resolve["dedup_key"] == trigger["dedup_key"] == pagerduty.dedup_key(note().group_key)
    assert "payload" not in resolve
    other = Notification("ops", "another group", Labels(), "firing", (alert(),))
    assert pagerduty.event(other, PD)["dedup_key"] != trigger["dedup_key"]


def test_pagerduty_summary_is_capped_and_source_configurable() -> None:
    config = PD.model_copy(update={"source": "celery-prod", "templates": {"title": "x" * 2000}})
    payload = pagerduty.event(note(alert()), config)["payload"]
    assert len(payload["summary"]) == pagerduty.MAX_SUMMARY
    assert payload["source"] == "celery-prod"


# --- webhook (Alertmanager v4) ---------------------------------------------------------------


def test_webhook_v4_body() -> None:
    body = webhook.alertmanager_body(note(alert(queue="a"), alert(queue="b", state=State.RESOLVED)))
    assert list(body) == [
        "receiver",
        "status",
        "alerts",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "version",
        "groupKey",
        "truncatedAlerts",
    ]
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "ops"
    assert body["groupKey"] == '{}:{alertname="QueueBacklog"}'
    assert body["groupLabels"] == {"alertname": "QueueBacklog"}
    assert body["commonLabels"] == {
        "alertname": "QueueBacklog",
        "env": "prod",
        "severity": "warning",
    }
    assert body["commonAnnotations"] == {}
    firing, resolved = body["alerts"]
    assert firing["status"] == "firing" and firing["endsAt"] == "0001-01-01T00:00:00Z"
    assert firing["startsAt"] == "2023-11-14T22:14:20.000Z"
    assert resolved["status"] == "resolved" and resolved["endsAt"] == "2023-11-14T22:23:20.000Z"
    assert firing["fingerprint"] == alert(queue="a").labels.fingerprint
    # A link to the alert's row on the status page (external_url is the note's).
    assert firing["generatorURL"] == f"{body['externalURL']}/#alert-{firing['fingerprint']}"
    assert set(firing) == {
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    }


@pytest.mark.parametrize(("max_alerts", "shown", "truncated"), [(0, 5, 0), (2, 2, 3), (9, 5, 0)])
def test_webhook_max_alerts(max_alerts: int, shown: int, truncated: int) -> None:
    n = note(*(alert(queue=str(i)) for i in range(5)))
    body = webhook.alertmanager_body(n, max_alerts)
    assert len(body["alerts"]) == shown and body["truncatedAlerts"] == truncated
    assert body["commonLabels"]["alertname"] == "QueueBacklog"


def test_webhook_test_notification_is_marked_in_the_summary() -> None:
    body = webhook.alertmanager_body(note(alert(summary="hi"), test=True))
    assert body["alerts"][0]["annotations"]["summary"] == "[TEST] hi"


@pytest.mark.parametrize(
    ("template", "content_type"),
    [
        ('{"text": "{{ status }} {{ alerts|length }}"}', "application/json"),
        ("{{ status }}: {{ alerts|length }} alert(s)", "text/plain; charset=utf-8"),
    ],
)
def test_webhook_template_body(template: str, content_type: str) -> None:
    config = WebhookChannel(type="webhook", url="http://x", format="template", body=template)
    body, sent_type = webhook.template_body(note(alert()), config)
    assert sent_type == content_type
    assert b"firing" in body and b"1" in body


# --- Slack -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "state", "colour"),
    [
        ("critical", State.FIRING, "#E01E5A"),
        ("error", State.FIRING, "#FF8C00"),
        ("warning", State.FIRING, "#ECB22E"),
        ("info", State.FIRING, "#36C5F0"),
        ("critical", State.RESOLVED, "#2EB67D"),
    ],
)
def test_slack_colour_by_severity(severity: str, state: State, colour: str) -> None:
    msg = slack.message(note(alert(severity=severity, state=state)), {})
    assert msg["attachments"][0]["color"] == colour


def test_slack_blocks_show_summary_labels_and_value_vs_threshold() -> None:
    msg = slack.message(note(alert(queue="<q&>", summary="Queue <q&> is deep")), {})
    header = msg["blocks"][0]
    assert header["type"] == "header" and header["text"]["text"] == "[FIRING:1] QueueBacklog"
    (section,) = msg["attachments"][0]["blocks"]
    text = section["text"]["text"]
    assert "Queue &lt;q&amp;&gt; is deep" in text  # escaped: Slack reads <...> as links
    assert "*value* 1500 vs *threshold* 1000" in text
    assert "`queue=&lt;q&amp;&gt;`" in text
    assert msg["text"] == "[FIRING:1] QueueBacklog"


def test_slack_caps_alert_blocks() -> None:
    msg = slack.message(note(*(alert(queue=str(i)) for i in range(30))), {})
    blocks = msg["attachments"][0]["blocks"]
    assert len(blocks) == slack.MAX_ALERTS + 1
    assert "10 more" in blocks[-1]["elements"][0]["text"]


def test_slack_test_notification_is_marked() -> None:
    msg = slack.message(note(alert(), test=True), {})
    assert msg["blocks"][0]["text"]["text"].startswith("[TEST]")
    assert "test" in msg["blocks"][1]["elements"][0]["text"]


def _slack_error(status: int, data: dict[str, Any], headers: dict[str, str]) -> SlackApiError:
    response = SlackResponse(
        client=None,
        http_verb="POST",
        api_url="http://slack/api/chat.postMessage",
        req_args={},
        data=data,
        headers=headers,
        status_code=status,
    )
    return SlackApiError("failed", response)


@pytest.mark.parametrize(
    ("exc", "expected", "after"),
    [
        (
            _slack_error(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"}),
            Retryable,
            7,
        ),
        (_slack_error(200, {"ok": False, "error": "ratelimited"}, {}), Retryable, None),
        (_slack_error(503, {"ok": False, "error": "service_unavailable"}, {}), Retryable, None),
        (_slack_error(200, {"ok": False, "error": "invalid_auth"}, {}), Permanent, None),
        (_slack_error(200, {"ok": False, "error": "channel_not_found"}, {}), Permanent, None),
        (ConnectionRefusedError(111, "refused"), Retryable, None),
        (TimeoutError("timed out"), Retryable, None),
    ],
)
def test_slack_classify(exc: Exception, expected: type, after: float | None) -> None:
    error = slack.classify_error(exc)
    assert type(error) is expected
    assert getattr(error, "retry_after", None) == after


def test_slack_permanent_error_carries_the_slack_error_string() -> None:
    error = slack.classify_error(_slack_error(200, {"ok": False, "error": "invalid_auth"}, {}))
    assert "invalid_auth" in error.detail


# --- email -----------------------------------------------------------------------------------


MAIL = EmailChannel(
    type="email", host="localhost", starttls=False, **{"from": "sentinel@example.com"}, to=["a@x"]
)


def test_email_headers_and_parts() -> None:
    msg = email.build_message(note(alert(queue="<q>")), MAIL, now=T0)
    assert msg["From"] == "sentinel@example.com" and msg["To"] == "a@x"
    assert msg["Subject"] == "[FIRING:1] QueueBacklog"
    assert parsedate_to_datetime(msg["Date"]).timestamp() == T0
    assert msg["Message-ID"].endswith("@example.com>")
    assert msg["In-Reply-To"] is None and msg["References"] is None
    assert msg.get_content_type() == "multipart/alternative"
    parsed = message_from_bytes(msg.as_bytes())
    types = [p.get_content_type() for p in parsed.walk() if not p.is_multipart()]
    assert types == ["text/plain", "text/html"]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "queue=&lt;q&gt;" in html


@pytest.mark.parametrize(
    ("status", "memo_status", "threaded"),
    [("resolved", "firing", True), ("firing", "firing", True), ("firing", "resolved", False)],
)
def test_email_threads_under_the_first_mail(status: str, memo_status: str, threaded: bool) -> None:
    state = State.RESOLVED if status == "resolved" else State.FIRING
    memo = {"message_id": "<root@example.com>", "status": memo_status}
    msg = email.build_message(note(alert(state=state), memo=memo), MAIL)
    assert msg["Message-ID"] != "<root@example.com>"
    assert (msg["In-Reply-To"] == "<root@example.com>") is threaded
    assert (msg["References"] == "<root@example.com>") is threaded


def test_email_display_name_and_multiline_title() -> None:
    config = MAIL.model_copy(
        update={"from_": "Sentinel <bot@alerts.example.org>", "templates": {"title": "a\nb"}}
    )
    msg = email.build_message(note(alert()), config)
    assert msg["Subject"] == "a b" and msg["Message-ID"].endswith("@alerts.example.org>")


def test_email_test_notification_is_marked() -> None:
    msg = email.build_message(note(alert(), test=True), MAIL)
    assert msg["Subject"].startswith("[TEST]") and msg["X-Sentinel-Test"] == "true"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (smtplib.SMTPServerDisconnected("gone"), Retryable),
        (smtplib.SMTPConnectError(421, b"busy"), Retryable),
        (smtplib.SMTPDataError(451, b"try later"), Retryable),
        (smtplib.SMTPDataError(554, b"rejected"), Permanent),
        (smtplib.SMTPSenderRefused(550, b"no", "a@x"), Permanent),
        (smtplib.SMTPRecipientsRefused({"a@x": (450, b"busy")}), Retryable),
        (smtplib.SMTPRecipientsRefused({"a@x": (550, b"unknown")}), Permanent),
        (smtplib.SMTPAuthenticationError(535, b"bad credentials"), Permanent),
        (smtplib.SMTPNotSupportedError("STARTTLS extension not supported"), Permanent),
        (ConnectionRefusedError(111, "refused"), Retryable),
        (TimeoutError("timed out"), Retryable),
        (ssl.SSLCertVerificationError("bad cert"), Permanent),
    ],
)
def test_email_classify(exc: Exception, expected: type) -> None:
    assert type(email.classify_error(exc)) is expected


# --- log -------------------------------------------------------------------------------------


def test_log_line() -> None:
    message, fields = log.line(note(alert(queue="a"), alert(queue="b", state=State.RESOLVED)))
    assert message.startswith("[FIRING:1] QueueBacklog {alertname=QueueBacklog} ")
    assert "firing: Queue a has 1500.0 messages waiting" in message
    assert "resolved: Queue b has" in message
    assert fields["status"] == "firing" and len(fields["alerts"]) == 2


def test_log_notifier_writes_one_line_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    notifier = log.LogNotifier("log", None)
    with caplog.at_level("INFO", logger="sentinel.notify.log"):
        assert notifier.send(note(alert(), test=True)) == {}
        broken = Notification("log", "k", Labels(), "firing", (object(),))  # type: ignore[arg-type]
        assert notifier.send(broken) == {}
    lines = [r for r in caplog.records if r.name == "sentinel.notify.log" and not r.exc_info]
    assert lines[0].getMessage().startswith("[TEST] [FIRING:1] QueueBacklog")
    assert lines[-1].getMessage() == "[FIRING] k"


def test_slack_alert_line_override_sees_the_whole_context() -> None:
    custom = {"alert": "{{ status }}/{{ alert.labels.queue }}/{{ group_labels.alertname }}"}
    msg = slack.message(note(alert(queue="a")), custom)
    assert "*firing/a/QueueBacklog*" in msg["attachments"][0]["blocks"][0]["text"]["text"]


def test_templates_are_sandboxed() -> None:
    """A template from the config reaches the values it is given, never Python's internals
    nor a way to change them; the message still goes out."""
    from sentinel.templating import render as render_text

    alerts: list[int] = []
    for source in ("{{ ''.__class__.__mro__ }}", "{{ ().__class__.__base__.__subclasses__() }}"):
        assert "<class" not in render_text(source, {})
        assert "&lt;class" not in templates.render("html", {"title": "t"}, {"html": source})
    out = render_text("{{ alerts.append(1) }}", {"alerts": alerts})
    assert out.startswith("[template error: SecurityError"), out
    pop = {"html": "{{ alerts.pop() }}"}
    html = templates.render("html", {"alerts": alerts, "title": "t"}, pop)
    assert html.startswith("<p>[template error:"), html
    assert alerts == []
