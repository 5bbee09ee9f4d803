"""/api/v1/silences: Alertmanager v2 silence bodies, so amtool-style tooling maps one to one."""

from __future__ import annotations

from sentinel.api.http import HttpError, Request, Response, json_response
from sentinel.api.ports import SilencesPort
from sentinel.clock import Clock
from sentinel.notify.silence import Silence


def _sort_key(silence: Silence, now: float) -> tuple[int, float]:
    # Alertmanager's order: active by soonest end, pending by soonest start, expired newest first.
    state = silence.state(now)
    if state == "active":
        return (0, silence.ends_at)
    if state == "pending":
        return (1, silence.starts_at)
    return (2, -silence.ends_at)


class SilenceViews:
    def __init__(self, silences: SilencesPort, clock: Clock) -> None:
        self.silences = silences
        self.clock = clock

    def index(self, request: Request) -> Response:
        now = self.clock.now()
        silences = sorted(self.silences.all(), key=lambda s: _sort_key(s, now))
        return json_response([s.to_api(now) for s in silences])

    def create(self, request: Request) -> Response:
        body = request.json()
        now = self.clock.now()
        try:
            silence = Silence.from_api(body, now)
        except ValueError as e:
            raise HttpError(400, str(e)) from None
        # As in Alertmanager, a body with an id updates that silence; an unknown id is an error
        # rather than a silently created silence the caller would not recognise.
        if isinstance(body, dict) and body.get("id") and self.silences.get(silence.id) is None:
            raise HttpError(404, f"silence {silence.id} not found")
        self.silences.put(silence)
        return json_response({"silenceID": silence.id})

    def expire(self, request: Request) -> Response:
        silence_id = request.params["id"]
        now = self.clock.now()
        silence = self.silences.expire(silence_id, now)
        if silence is None:
            raise HttpError(404, f"silence {silence_id} not found")
        return json_response(silence.to_api(now))
