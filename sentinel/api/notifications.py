"""/api/v1/notifications: the notification history, newest first, filtered by channel and alert."""

from __future__ import annotations

from sentinel.api.http import HttpError, Request, Response, json_response
from sentinel.notify.history import NotificationHistory

MAX_LIMIT = 1000


def int_arg(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.arg(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HttpError(400, f"{name} must be an integer") from None
    if not low <= value <= high:
        raise HttpError(400, f"{name} must be between {low} and {high}")
    return value


class NotificationViews:
    def __init__(self, history: NotificationHistory | None) -> None:
        self.history = history  # None: no storage, nothing recorded

    def index(self, request: Request) -> Response:
        """?channel=NAME&alert=ALERTNAME|FINGERPRINT&limit=N&before=ID (ids page backwards)."""
        history = self.history
        if history is None:
            return json_response([])
        limit = int_arg(request, "limit", 100, 1, MAX_LIMIT)
        before = int_arg(request, "before", None, 1, 2**62)
        attempts = history.list(
            channel=request.arg("channel") or None,
            alert=request.arg("alert") or None,
            limit=limit or 100,
            before=before,
        )
        return json_response([a.to_api() for a in attempts])
