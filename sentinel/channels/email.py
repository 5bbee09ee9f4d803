"""Email over SMTP: one multipart/alternative message (text + HTML) per notification.

Every later mail about a group (repeat, resolve) refers to the group's first mail through
In-Reply-To/References, so mail clients thread the resolve under the page it resolves.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator

from sentinel.channels import templates
from sentinel.channels.base import (
    ChannelBase,
    ChannelKind,
    Notification,
    NotifyError,
    Permanent,
    Retryable,
)
from sentinel.fields import Port


class EmailChannel(ChannelBase):
    SECRETS = ("password",)
    type: Literal["email"]
    host: str
    port: Port = 587
    starttls: bool = True  # defaults to false when ssl is true
    ssl: bool = False
    username: str | None = None
    password: SecretStr | None = None
    from_: str = Field(alias="from")
    to: tuple[str, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _starttls_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and "starttls" not in data and data.get("ssl") is True:
            return {**data, "starttls": False}
        return data

    @model_validator(mode="after")
    def _tls(self) -> EmailChannel:
        if self.ssl and self.starttls:
            raise ValueError("ssl and starttls are exclusive: ssl is TLS from the start")
        return self

    def describe(self) -> str:
        return f"email {', '.join(self.to)} via {self.host}:{self.port}"


log = logging.getLogger("sentinel.notify.email")


def _domain(address: str) -> str | None:
    return parseaddr(address)[1].rpartition("@")[2] or None


def build_message(n: Notification, config: EmailChannel, now: float | None = None) -> EmailMessage:
    """The mail for `n`; threaded under memo["message_id"] when the group already has one."""
    ctx = templates.context(n)
    # A header cannot hold a line break, and an overridden title may render one.
    subject = " ".join(templates.render("title", ctx, config.templates).split())
    msg = EmailMessage()
    msg["From"] = config.from_
    msg["To"] = ", ".join(config.to)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.fromtimestamp(now or time.time(), UTC))
    msg["Message-ID"] = make_msgid("sentinel", domain=_domain(config.from_))
    if root := _root(n):
        msg["In-Reply-To"] = root
        msg["References"] = root
    # Lets mail rules sort alerts without parsing the subject.
    msg["X-Sentinel-Status"] = n.status
    if n.test:
        msg["X-Sentinel-Test"] = "true"
    msg.set_content(templates.render("text", ctx, config.templates) + "\n")
    msg.add_alternative(
        templates.render("html", ctx, config.templates, title=subject), subtype="html"
    )
    return msg


def _root(n: Notification) -> str | None:
    """The first mail of this incident; a firing after a resolve starts a new thread."""
    if n.status == "firing" and n.memo.get("status") == "resolved":
        return None
    return n.memo.get("message_id") or None


def classify_error(exc: Exception) -> NotifyError:
    """SMTP failure -> Retryable (network, 4xx) or Permanent (5xx, authentication, TLS)."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return Permanent(f"smtp authentication failed: {exc.smtp_code} {_text(exc.smtp_error)}")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        detail = "smtp refused every recipient: " + ", ".join(
            f"{rcpt} {code} {_text(err)}" for rcpt, (code, err) in exc.recipients.items()
        )
        return Retryable(detail) if all(400 <= c < 500 for c in codes) else Permanent(detail)
    if isinstance(exc, smtplib.SMTPResponseException):
        detail = f"smtp {exc.smtp_code} {_text(exc.smtp_error)}"
        # SMTPConnectError carries -1 when the greeting never came: a network failure.
        return Permanent(detail) if 500 <= exc.smtp_code < 600 else Retryable(detail)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return Permanent(f"smtp server does not support it: {exc}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Permanent(
            f"smtp TLS certificate rejected: {getattr(exc, 'verify_message', None) or exc}"
        )
    if isinstance(exc, TimeoutError):
        return Retryable(f"smtp timed out: {exc}")
    if isinstance(exc, smtplib.SMTPServerDisconnected | OSError):
        return Retryable(f"smtp connection failed: {type(exc).__name__}: {exc}")
    return Retryable(f"smtp error: {type(exc).__name__}: {exc}")


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class EmailNotifier:
    def __init__(self, name: str, config: EmailChannel) -> None:
        self.name = name
        self.config = config

    def send(self, notification: Notification) -> Mapping[str, str]:
        msg = build_message(notification, self.config)
        try:
            refused = self._deliver(msg)
        except (smtplib.SMTPException, OSError) as e:
            raise classify_error(e) from e
        if refused:
            # Retrying would mail the accepted recipients twice; report and move on.
            log.warning("smtp refused some recipients of %s: %s", msg["Subject"], refused)
        root = _root(notification) or str(msg["Message-ID"])
        return {"message_id": root, "status": notification.status}

    def _deliver(self, msg: EmailMessage) -> dict[str, tuple[int, bytes]]:
        c = self.config
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if c.ssl:
            smtp = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout, context=context)
        else:
            smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout)
        with smtp:
            if c.starttls:
                # Refuses (SMTPNotSupportedError) rather than send credentials in clear text.
                smtp.starttls(context=context)
            if c.username:
                password = c.password.get_secret_value() if c.password else ""
                smtp.login(c.username, password)
            # The envelope takes bare addresses; `from` may be "Sentinel <bot@example.com>".
            sender = parseaddr(c.from_)[1] or c.from_
            return smtp.send_message(msg, from_addr=sender, to_addrs=list(c.to))


KIND = ChannelKind(type="email", schema=EmailChannel, notifier=EmailNotifier)
