"""/api/v1/silences: Alertmanager v2 silence bodies, so amtool-style tooling maps one to one.
The order and the create-or-update of a posted body are Alertmanager's, shared with /api/v2."""

from __future__ import annotations

from sentinel.api.http import HttpError, Request, Response, json_response
from sentinel.api.ports import SilencesPort
from sentinel.clock import Clock
from sentinel.notify.silence import Silence


def order(silence: Silence, now: float) -> tuple[int, float]:
    # Alertmanager's order: active by soonest end, pending by soonest start, expired newest first.
    state = silence.state(now)
    if state == "active":
        return (0, silence.ends_at)
    if state == "pending":
        return (1, silence.starts_at)
    return (2, -silence.ends_at)


def put(silences: SilencesPort, body: object, now: float) -> Silence:
    """Store a posted silence body (HttpError 400 if it is not one). As in Alertmanager, a body
    with an id updates that silence; an unknown id is an error rather than a silently created
    silence the caller would not recognise."""
    try:
        silence = Silence.from_api(body, now)
    except ValueError as e:
        raise HttpError(400, str(e)) from None
    if isinstance(body, dict) and body.get("id") and silences.get(silence.id) is None:
        raise HttpError(404, f"silence {silence.id} not found")
    silences.put(silence)
    return silence


class SilenceViews:
    def __init__(self, silences: SilencesPort, clock: Clock) -> None:
        self.silences = silences
        self.clock = clock

    def index(self, request: Request) -> Response:
        now = self.clock.now()
        silences = sorted(self.silences.all(), key=lambda s: order(s, now))
        return json_response([s.to_api(now) for s in silences])

    def create(self, request: Request) -> Response:
        silence = put(self.silences, request.json(), self.clock.now())
        return json_response({"silenceID": silence.id})

    def expire(self, request: Request) -> Response:
        silence_id = request.params["id"]
        now = self.clock.now()
        silence = self.silences.expire(silence_id, now)
        if silence is None:
            raise HttpError(404, f"silence {silence_id} not found")
        return json_response(silence.to_api(now))
