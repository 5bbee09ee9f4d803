"""The few HTTP values every endpoint module shares: a parsed request, a response, an error."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import orjson

# Silences are a few hundred bytes; anything this large is a mistake or an attack. The server
# answers 413 past it before reading the body (Content-Length), and this module checks again.
MAX_BODY = 256 * 1024


class HttpError(Exception):
    """Ends a request with `status` and {"error": message}."""

    def __init__(self, status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = tuple(headers)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    environ: Mapping[str, Any]
    params: Mapping[str, str] = field(default_factory=dict)  # captured from the path

    def header(self, name: str) -> str | None:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = f"HTTP_{key}"
        value = self.environ.get(key)
        return value if isinstance(value, str) else None

    def arg(self, name: str, default: str = "") -> str:
        """One query-string parameter (the first, if given twice)."""
        values = parse_qs(self.environ.get("QUERY_STRING") or "", max_num_fields=50).get(name)
        return values[0] if values else default

    def body(self) -> bytes:
        try:
            length = int(self.header("Content-Length") or 0)
        except ValueError:
            raise HttpError(400, "invalid Content-Length") from None
        if length > MAX_BODY:
            raise HttpError(413, f"request body larger than {MAX_BODY} bytes")
        if length <= 0:
            return b""
        data: bytes = self.environ["wsgi.input"].read(length)
        return data

    def json(self) -> Any:
        raw = self.body()
        if not raw.strip():
            raise HttpError(400, "request body must be a JSON object")
        # orjson: strict JSON (no NaN/Infinity), UTF-8 checked, nesting capped at 1,024 levels
        # (the stdlib's json raises RecursionError on a deeply nested body).
        try:
            return orjson.loads(raw)
        except (ValueError, RecursionError) as e:  # orjson.JSONDecodeError is a ValueError
            raise HttpError(400, f"invalid JSON: {e}") from None


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()
    # Written as it is made, instead of body (and with no Content-Length): /metrics.
    stream: Iterable[bytes] | None = None

    @property
    def status_line(self) -> str:
        try:
            return f"{self.status} {HTTPStatus(self.status).phrase}"
        except ValueError:
            return str(self.status)

    def header_list(self) -> list[tuple[str, str]]:
        names = {k.lower() for k, _ in self.headers}
        out = list(self.headers)
        if "content-type" not in names:
            out.append(("Content-Type", self.content_type))
        if "content-length" not in names and self.stream is None:
            out.append(("Content-Length", str(len(self.body))))
        return out


def text(body: str, status: int = 200) -> Response:
    return Response(status, body.encode())


def json_response(
    data: Any, status: int = 200, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    # allow_nan=False: NaN is not JSON and breaks strict clients; callers pass finite() values.
    body = json.dumps(data, allow_nan=False, separators=(",", ":")).encode()
    return Response(status, body, "application/json", tuple(headers))


def error(status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return json_response({"error": message}, status, headers)


def finite(value: float | None) -> float | None:
    """A value fit for JSON: NaN and infinities become null."""
    if value is None or not math.isfinite(value):
        return None
    return value
