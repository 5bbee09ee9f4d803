"""One HTTP POST with the failure classified, shared by the PagerDuty and webhook channels."""

from __future__ import annotations

from collections.abc import Mapping

import requests

from sentinel.channels.base import Permanent, Retryable, classify, retry_after

USER_AGENT = "sentinel-celery"
_BODY_IN_ERROR = 300

# Mistakes in the configured URL or headers: retrying sends the same mistake again.
_CONFIG_ERRORS = (
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidHeader,
)


def _reason(exc: BaseException) -> str:
    """The root cause without the request URL, which can hold a secret (webhook tokens)."""
    while True:
        inner = getattr(exc, "reason", None) or (exc.args[0] if exc.args else None)
        if not isinstance(inner, BaseException):
            break
        exc = inner
    text = str(exc)
    # urllib3 prefixes the connection object ("HTTPConnection(host=..., port=...): ...").
    return f"{type(exc).__name__}: {text.partition('): ')[2] or text}"


def post(
    url: str,
    body: bytes,
    *,
    content_type: str,
    timeout: float,
    headers: Mapping[str, str] | None = None,
) -> requests.Response:
    """POST `body`; return the response if 2xx, else raise Retryable or Permanent."""
    sent_headers = {"User-Agent": USER_AGENT, "Content-Type": content_type, **(headers or {})}
    try:
        response = requests.post(url, data=body, headers=sent_headers, timeout=timeout)
    except _CONFIG_ERRORS as e:
        # The message would quote the URL, which may be a secret: name the mistake only.
        raise Permanent(f"bad request setup: {type(e).__name__} (check url and headers)") from e
    except requests.Timeout as e:
        raise Retryable(f"timed out after {timeout:g}s: {_reason(e)}") from e
    except requests.RequestException as e:
        raise Retryable(f"connection failed: {_reason(e)}") from e
    error = classify(response.status_code)
    if error is None:
        return response
    detail = f"HTTP {response.status_code}: {response.text[:_BODY_IN_ERROR].strip()}"
    if error is Retryable:
        raise Retryable(detail, retry_after(response.headers.get("Retry-After")))
    raise error(detail)
