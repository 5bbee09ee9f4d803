from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from sentinel.logs import JsonFormatter, RedactingFilter, redact, setup


def test_json_lines_carry_structured_fields() -> None:
    record = logging.makeLogRecord(
        {
            "name": "sentinel",
            "levelno": logging.WARNING,
            "levelname": "WARNING",
            "msg": "alert %s firing",
            "args": ("NoLiveWorkers",),
            "labels": {"alertname": "NoLiveWorkers"},
            "to_state": "firing",
        }
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "alert NoLiveWorkers firing"
    assert line["level"] == "warning" and line["logger"] == "sentinel"
    assert line["labels"] == {"alertname": "NoLiveWorkers"} and line["to_state"] == "firing"


# -- redaction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        # urllib3's request line at debug, query token included
        (
            'http://127.0.0.1:8080 "POST /hook?token=T0K3N&x=1 HTTP/1.1" 200 2',
            "T0K3N",
            '"POST /hook?token=***&x=1 HTTP/1.1" 200 2',
        ),
        (
            "https://hooks.example.com/celery?api_key=K3Y",
            "K3Y",
            "hooks.example.com/celery?api_key=",
        ),
        ("redis://:PASSW0RD@redis:6379/0", "PASSW0RD", "redis://:***@redis:6379/0"),
        ("amqp://sentinel:PASSW0RD@rabbit:5672//", "PASSW0RD", "amqp://sentinel:***@rabbit"),
        ("https://GHTOKEN@git.example.com/x.git", "GHTOKEN", "https://***@git.example.com"),
        (
            "GET https://bucket.s3/x?X-Amz-Signature=S1G&X-Amz-Credential=CR3D",
            "S1G",
            "X-Amz-Signature=***",
        ),
        ("slack auth failed for xoxb-1234-5678-SLACKSECRET", "SLACKSECRET", "xoxb-***"),
        ("POST https://hooks.slack.com/services/T00/B00/HOOKSECRET", "HOOKSECRET", "services/***"),
        ('body {"routing_key": "R0UT1NGKEY", "event_action": "trigger"}', "R0UT1NGKEY", "trigger"),
        ("headers {'Authorization': 'Bearer APITOKEN123'}", "APITOKEN123", "headers {"),
        ("Authorization: Bearer APITOKEN123", "APITOKEN123", "Authorization: Bearer ***"),
        ("smtp login password=HUNTER22 user=bob", "HUNTER22", "user=bob"),
    ],
)
def test_redact_hides_the_secret_and_keeps_the_rest(text: str, secret: str, kept: str) -> None:
    out = redact(text)
    assert secret not in out
    assert kept in out
    assert redact(out) == out  # idempotent: a record redacted twice reads the same


@pytest.mark.parametrize(
    "text",
    [
        "HTTP API listening on 127.0.0.1:9808",
        "see https://example.com/alerts?page=2&state=firing",
        "this endpoint needs Authorization: Bearer <token>",
        "invalid token provided",
        "rule QueueBacklog{queue=default} pending -> firing (value 60, threshold 40)",
    ],
)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == text


def _emit(record: logging.LogRecord, formatter: logging.Formatter) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter())
    handler.handle(record)
    return stream.getvalue()


def test_filter_redacts_args_tracebacks_and_extra_fields() -> None:
    try:
        raise ConnectionError("Max retries exceeded with url: /hook?token=EXC_SECRET")
    except ConnectionError:
        exc_info = sys.exc_info()
    record = logging.makeLogRecord(
        {
            "name": "urllib3.connectionpool",
            "levelno": logging.DEBUG,
            "levelname": "DEBUG",
            "msg": '%s://%s:%s "%s %s %s" %s %s',
            "args": (
                "http",
                "127.0.0.1",
                8080,
                "POST",
                "/hook?token=ARG_SECRET",
                "HTTP/1.1",
                200,
                2,
            ),
            "exc_info": exc_info,
            "url": "https://u:EXTRA_SECRET@hooks.example.com/x",
        }
    )
    for formatter in (logging.Formatter("%(name)s %(message)s"), JsonFormatter()):
        out = _emit(logging.makeLogRecord(vars(record)), formatter)
        for secret in ("ARG_SECRET", "EXC_SECRET", "EXTRA_SECRET"):
            assert secret not in out, out
        assert "/hook?token=***" in out
        assert "ConnectionError" in out  # the traceback is still there, only redacted


def test_setup_puts_the_filter_on_the_root_handler_for_third_party_loggers() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        setup("debug", "text")
        [handler] = root.handlers
        stream = io.StringIO()
        handler.setStream(stream)  # type: ignore[attr-defined]
        logging.getLogger("urllib3.connectionpool").debug(
            '%s "%s %s" %s', "http://127.0.0.1:1", "POST", "/x?token=ROOT_SECRET", 200
        )
        assert "ROOT_SECRET" not in stream.getvalue()
        assert "token=***" in stream.getvalue()
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
