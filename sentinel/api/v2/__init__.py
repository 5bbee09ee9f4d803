"""Alertmanager's API v2 at /api/v2 (`api/v2/openapi.yaml` in prometheus/alertmanager), so
amtool, Grafana's Alertmanager data source and karma work against sentinel.

Served: GET /status, GET /receivers, GET /alerts and /alerts/groups (with `active`,
`silenced`, `inhibited`, `unprocessed`, `filter`, `receiver`), GET|POST /silences (`filter`),
GET|DELETE /silence/{id}. Errors are JSON strings, as Alertmanager's are. Not served: POST
/alerts (sentinel makes its alerts from Celery; nothing pushes alerts to it).

Which alerts: firing ones. A pending alert has not fired and would not have reached an
Alertmanager (Prometheus sends only firing alerts), a resolved one has ended; /api/v1/alerts
lists pending alerts for whoever wants them.
"""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import parse_qs

from sentinel import __version__
from sentinel.api.http import HttpError, Request, Response
from sentinel.api.ports import AlertsPort, RoutingPort, SettingsPort, SilencesPort, StatusPort
from sentinel.api.silences import order as silence_order
from sentinel.api.silences import put as put_silence
from sentinel.api.v2.bodies import AlertView, alert_body, group_bodies, view
from sentinel.api.v2.status import alertmanager_config
from sentinel.clock import Clock
from sentinel.model import rfc3339
from sentinel.notify.matchers import Matcher, MatcherError, matches_all, parse_matchers
from sentinel.notify.silence import Silence

PREFIX = "/api/v2"
Handler = Callable[[Request], Response]

# strconv.ParseBool, which go-swagger uses for boolean query parameters.
_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True}
_BOOLS |= {"0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


def json_body(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, allow_nan=False, separators=(",", ":")).encode()
    return Response(status, body, "application/json")


def error(status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """Alertmanager's v2 error body: the message as a JSON string (amtool reads it so)."""
    return Response(status, json.dumps(message).encode(), "application/json", tuple(headers))


class Query:
    """The query string, read as go-swagger reads it (repeated keys for arrays)."""

    def __init__(self, request: Request) -> None:
        raw = request.environ.get("QUERY_STRING") or ""
        self.values = parse_qs(raw, keep_blank_values=True)

    def flag(self, name: str, default: bool = True) -> bool:
        given = self.values.get(name)
        if not given:
            return default
        if given[-1] not in _BOOLS:
            raise HttpError(400, f"{name} in query must be of type boolean: {given[-1]!r}")
        return _BOOLS[given[-1]]

    def matchers(self) -> list[Matcher]:
        try:
            return [m for text in self.values.get("filter", ()) for m in parse_matchers(text)]
        except MatcherError as e:
            raise HttpError(400, str(e)) from None

    def receiver(self) -> re.Pattern[str] | None:
        given = self.values.get("receiver")
        if not given or not given[-1]:
            return None
        try:
            return re.compile(f"^(?:{given[-1]})$")
        except re.error as e:
            raise HttpError(400, f"failed to parse receiver param: {e}") from None


class V2:
    """The endpoints; each reads only the ports it is given."""

    def __init__(
        self,
        clock: Clock,
        settings: SettingsPort,
        alerts: AlertsPort,
        silences: SilencesPort,
        routing: RoutingPort,
        status: StatusPort,
    ) -> None:
        self.clock = clock
        self.settings = settings
        self.alerts_port = alerts
        self.silences = silences
        self.routing = routing
        self.status_port = status

    def routes(self) -> list[tuple[str, dict[str, Handler]]]:
        return [
            (f"{PREFIX}/status", {"GET": self.status}),
            (f"{PREFIX}/receivers", {"GET": self.receivers}),
            (f"{PREFIX}/alerts", {"GET": self.alerts}),
            (f"{PREFIX}/alerts/groups", {"GET": self.groups}),
            (f"{PREFIX}/silences", {"GET": self.list_silences, "POST": self.post_silence}),
            (f"{PREFIX}/silence/{{id}}", {"GET": self.get_silence, "DELETE": self.delete_silence}),
        ]

    # -- status, receivers ---------------------------------------------------------------

    def status(self, request: Request) -> Response:
        facts = self.status_port.status()
        return json_body(
            {
                "cluster": {
                    "name": facts.replica,
                    # One sentinel is not a cluster; with HA the leader is the one that sends.
                    "status": "ready" if facts.peers or facts.role else "disabled",
                    "peers": [{"name": p, "address": ""} for p in facts.peers],
                    # sentinel's own (amtool ignores them): this replica's role, the lease holder
                    **({"role": r.name, "leader": r.holder} if (r := facts.role) else {}),
                },
                "versionInfo": {
                    "version": __version__,
                    "revision": "",
                    "branch": "",
                    "buildUser": "",
                    "buildDate": "",
                    "goVersion": f"python{platform.python_version()}",
                },
                "config": {"original": alertmanager_config(self.routing.route(), facts)},
                "uptime": rfc3339(facts.started_at),
            }
        )

    def receivers(self, request: Request) -> Response:
        return json_body([{"name": name} for name in self.routing.receivers()])

    # -- alerts --------------------------------------------------------------------------

    def _views(self, request: Request) -> list[AlertView]:
        query = Query(request)
        active, silenced, inhibited = (query.flag(f) for f in ("active", "silenced", "inhibited"))
        query.flag("unprocessed")  # checked, and moot: every alert listed here was processed
        matchers, receiver = query.matchers(), query.receiver()
        now = self.clock.now()
        route = self.routing.route()
        out = []
        for alert in self.alerts_port.alerts():
            v = view(alert, route, self.alerts_port.mute(alert, now), now)
            if v is None or not matches_all(matchers, alert.labels):
                continue
            if not active and v.state == "active":
                continue
            if not silenced and v.silenced_by:
                continue
            if not inhibited and v.inhibited_by:
                continue
            if receiver is not None and not any(receiver.match(r) for r in v.receivers):
                continue
            out.append(v)
        return out

    def alerts(self, request: Request) -> Response:
        facts = self.status_port.status()
        base = self.settings.server().base_url
        views = self._views(request)
        return json_body([alert_body(v, base, facts.evaluation_interval) for v in views])

    def groups(self, request: Request) -> Response:
        facts = self.status_port.status()
        base = self.settings.server().base_url
        query = Query(request)
        receiver = query.receiver()
        bodies = group_bodies(self._views(request), base, facts.evaluation_interval)
        if receiver is not None:
            bodies = [g for g in bodies if receiver.match(g["receiver"]["name"])]
        return json_body(bodies)

    # -- silences ------------------------------------------------------------------------

    def list_silences(self, request: Request) -> Response:
        matchers = Query(request).matchers()
        now = self.clock.now()
        silences = [s for s in self.silences.all() if _silence_matches(s, matchers)]
        silences.sort(key=lambda s: silence_order(s, now))
        return json_body([s.to_api(now) for s in silences])

    def post_silence(self, request: Request) -> Response:
        silence = put_silence(self.silences, request.json(), self.clock.now())
        return json_body({"silenceID": silence.id})

    def get_silence(self, request: Request) -> Response:
        silence = self.silences.get(request.params["id"])
        if silence is None:
            raise HttpError(404, f"silence {request.params['id']} not found")
        return json_body(silence.to_api(self.clock.now()))

    def delete_silence(self, request: Request) -> Response:
        if self.silences.expire(request.params["id"], self.clock.now()) is None:
            raise HttpError(404, f"silence {request.params['id']} not found")
        return Response(200, b"", "application/json")


def _silence_matches(silence: Silence, matchers: Sequence[Matcher]) -> bool:
    # Alertmanager's filter on silences: its matchers read as a label set (name -> value).
    labels = {m.name: m.value for m in silence.matchers}
    return matches_all(matchers, labels)
