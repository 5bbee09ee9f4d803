"""The HTTP server: a threaded wsgiref server, a route table, and the token check on writes.

Endpoint logic lives in health.py, alerts.py and silences.py; this module only decides which
of them answers a request, and whether the caller may write.
"""

from __future__ import annotations

import hmac
import logging
import re
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app

from sentinel.api.alerts import AlertViews
from sentinel.api.health import Health
from sentinel.api.http import HttpError, Request, Response, error
from sentinel.api.silences import SilenceViews
from sentinel.metrics import SentinelCollector

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

    from sentinel.app import Sentinel

log = logging.getLogger("sentinel.api")

Handler = Callable[[Request], Response]
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class Route:
    pattern: re.Pattern[str]
    methods: Mapping[str, Handler]


def route(path: str, **methods: Handler) -> Route:
    """`path` may hold `{name}` segments, captured into Request.params."""
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
    return Route(re.compile(f"^{regex}$"), methods)


class _Handler(WSGIRequestHandler):
    # A client that connects and says nothing must not hold a thread for ever.
    timeout = 30.0

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily) -> None:
        self.address_family = family
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can stall
        # start-up for seconds where DNS is slow or absent (containers, air-gapped hosts).
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)
        self.setup_environ()


class ApiServer:
    def __init__(self, sentinel: Sentinel, registry: CollectorRegistry | None = None) -> None:
        self.sentinel = sentinel
        if registry is None:
            registry = CollectorRegistry()
            registry.register(SentinelCollector(sentinel))
        self.registry = registry
        self._metrics_app = make_wsgi_app(registry)
        health = Health(sentinel)
        alerts = AlertViews(sentinel)
        silences = SilenceViews(sentinel)
        self.routes = [
            route("/healthz", GET=health.healthz),
            route("/readyz", GET=health.readyz),
            route("/metrics", GET=self.metrics),
            route("/api/v1/alerts", GET=alerts.alerts),
            route("/api/v1/rules", GET=alerts.rules),
            route("/api/v1/silences", GET=silences.index, POST=silences.create),
            route("/api/v1/silences/{id}", DELETE=silences.expire),
        ]
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        host, port = self.sentinel.config.server.host_port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server = _Server((host, port), family)
        server.set_app(self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.25},
            name="sentinel-http",
            daemon=True,
        )
        self._thread.start()
        log.info("HTTP API listening on %s:%d", host, self.port)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("ApiServer is not started")
        return int(self._server.server_address[1])

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting; requests in flight run on daemon threads and are not waited for."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        # serve_forever notices shutdown within one poll_interval; handlers run on their own
        # threads, so nothing in that loop can hold it up.
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout)

    # -- WSGI -----------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        response = self.handle(environ)
        start_response(response.status_line, response.header_list())
        return [] if method == "HEAD" else [response.body]

    def handle(self, environ: WSGIEnvironment) -> Response:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO") or "/"
        if len(path) > 1:
            path = path.rstrip("/")
        for r in self.routes:
            match = r.pattern.match(path)
            if match is None:
                continue
            handler = r.methods.get("GET" if method == "HEAD" else method)
            if handler is None:
                allow = ", ".join(sorted({*r.methods, *(["HEAD"] if "GET" in r.methods else [])}))
                return error(405, f"method {method} not allowed", [("Allow", allow)])
            request = Request(method, path, environ, match.groupdict())
            try:
                if method in WRITES:
                    self.authorize(request)
                return handler(request)
            except HttpError as e:
                return error(e.status, e.message, e.headers)
            except Exception:  # one broken request must not take the server thread with it
                log.exception("%s %s failed", method, path)
                return error(500, "internal error; see the sentinel log")
        return error(404, f"no such endpoint: {path}")

    def authorize(self, request: Request) -> None:
        # Read on every request: a SIGHUP reload may have changed the token.
        secret = self.sentinel.config.server.token
        expected = secret.get_secret_value() if secret is not None else ""
        if not expected:  # `token: ${SENTINEL_API_TOKEN:-}` with the variable unset
            return
        scheme, _, given = (request.header("Authorization") or "").partition(" ")
        challenge = [("WWW-Authenticate", 'Bearer realm="sentinel"')]
        if scheme.lower() != "bearer" or not given.strip():
            raise HttpError(401, "this endpoint needs Authorization: Bearer <token>", challenge)
        if not hmac.compare_digest(given.strip().encode(), expected.encode()):
            raise HttpError(401, "invalid token", challenge)

    def metrics(self, request: Request) -> Response:
        """prometheus_client's own WSGI app, for its content negotiation and gzip."""
        status: list[str] = []
        headers: list[tuple[str, str]] = []

        def start_response(s: str, h: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(s)
            headers.extend(h)

        body = b"".join(self._metrics_app(dict(request.environ), start_response))
        return Response(int(status[0].split()[0]), body, headers=tuple(headers))
