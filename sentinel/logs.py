"""Logging setup: `--log-format text|json`, `--log-level`. Structured fields go in `extra`."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


# -- redaction ------------------------------------------------------------------------------
# Credentials travel in URLs and request bodies, and libraries log both (urllib3 logs every
# request line at debug, query string included). Each pattern keeps what tells the operator
# which endpoint it was and hides only the secret; "***" never matches again, so redacting
# twice changes nothing.

_SECRET_NAME = (
    r"[\w.-]*(?:token|key|secret|password|passwd|pwd|sig|signature|credential|auth|session)"
    r"[\w.-]*"
)
_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host -> scheme://user:***@host; scheme://token@host -> ***@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s:@?#]*):([^/\s@?#]+)@"), r"\1\2:***@"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s:@?#]+)@"), r"\1***@"),
    # ?token=..., &api_key=..., X-Amz-Signature=..., and key=value pairs in messages
    (
        re.compile(rf"(?i)(?<![\w-])({_SECRET_NAME})=(?!\*\*\*)([^&\s#\"',;)\]}}]+)"),
        r"\1=***",
    ),
    # "routing_key": "...", 'token': '...' (JSON bodies, Python reprs of dicts and headers)
    (
        re.compile(rf"(?i)([\"']{_SECRET_NAME}[\"']\s*:\s*[\"'])(?!\*\*\*)([^\"']+)([\"'])"),
        r"\1***\3",
    ),
    # Authorization: Bearer ... / Basic ... (case-sensitive: "basic" in prose is a word)
    (re.compile(r"\b(Bearer|bearer|Basic)\s+(?!\*\*\*)[A-Za-z0-9._~+/=-]{6,}"), r"\1 ***"),
    # Slack tokens (xoxb-, xoxp-, xapp-, ...) and incoming-webhook paths
    (re.compile(r"\b(xox[a-z]|xapp)-[A-Za-z0-9-]+"), r"\1-***"),
    (re.compile(r"(hooks\.slack\.com/(?:services|workflows|triggers)/)[^\s\"'?#]+"), r"\1***"),
)


def redact(text: str) -> str:
    """`text` with the credentials it carries replaced by ***."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v) for v in value)
    return value


class RedactingFilter(logging.Filter):
    """On a handler: every record it emits, whichever logger made it, is redacted first.

    The message is formatted here (msg % args) and stored back with args cleared, so a secret
    in an argument is caught too; the traceback text, stack and structured `extra` fields are
    redacted as well. Records are shared by every handler, so this runs once per record.
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep its pieces, redacted
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                setattr(record, key, _redact_value(value))
        record._redacted = True
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        exc_info = record.exc_info
        if record.exc_text:
            out["exc"] = record.exc_text
        elif exc_info is not None and exc_info[0] is not None:
            out["exc"] = self.formatException(exc_info)
        return json.dumps(out, default=str)


def setup(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Chatty libraries stay at WARNING unless we are debugging.
    if level.lower() != "debug":
        for name in ("kombu", "celery", "amqp", "urllib3", "slack_sdk"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # "skipped: maximum number of running instances" is a slow inspect round, which the
        # inspect probe already reports; a job that raises is still logged at ERROR.
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
