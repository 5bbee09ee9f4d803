"""The HTTP server: waitress behind a route table, and the token check on writes.

Endpoint logic lives in health.py, alerts.py, silences.py, notifications.py and page/; this
module only decides which of them answers a request, whether the caller may read (auth.py) and
write, and strips the path prefix of `server.external_url` (a reverse proxy that keeps it).

waitress rather than wsgiref + ThreadingMixIn: one I/O thread reads each request in full before
a fixed pool of worker threads sees it, so a flood or a slowloris client costs a small buffer,
not a thread; the listen backlog is 1,024, not 5; header and body sizes are capped by the
parser (431/413); idle and half-sent connections are closed without a traceback.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher

from sentinel.api.alerts import AlertViews
from sentinel.api.auth import Access, cross_site
from sentinel.api.exposition import encode, gzipped, wants_gzip
from sentinel.api.health import Health
from sentinel.api.http import MAX_BODY, HttpError, Request, Response, error
from sentinel.api.notifications import NotificationViews
from sentinel.api.page import PageViews
from sentinel.api.ports import ApiPorts
from sentinel.api.silences import SilenceViews
from sentinel.api.tls import TlsChannel, context, wrap
from sentinel.api.v2 import V2
from sentinel.api.v2 import error as v2_error

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment


log = logging.getLogger("sentinel.api")

Handler = Callable[[Request], Response]
LINGER_SECONDS = 2.0  # how long a refused client may go on sending before the socket closes
LINGER_BYTES = 8 * 1024 * 1024  # ... or how much of it is read and thrown away
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Probes answer without credentials: a liveness/readiness check carries none. /login takes
# the read token itself (and is no write: it changes nothing but the caller's cookie); the
# page's CSS and JS are the package's own files (the login form needs its stylesheet).
OPEN = frozenset({"/healthz", "/readyz", "/login"})
OPEN_PREFIX = "/static/"


ErrorBody = Callable[[int, str, Iterable[tuple[str, str]]], Response]


class UnreadableFile(OSError):
    """A file a `server.*` key names cannot be used: said in one line naming the key, not as
    a traceback or as a failure of server.listen."""

    def __init__(self, key: str, path: str | None, error: Exception) -> None:
        reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or error
        super().__init__(f"{key} {path}: {reason}")


@dataclass(frozen=True, slots=True)
class Route:
    pattern: re.Pattern[str]
    methods: Mapping[str, Handler]
    error: ErrorBody = error  # how this endpoint spells an error (v2: a JSON string)


def route(path: str, error_body: ErrorBody = error, **methods: Handler) -> Route:
    """`path` may hold `{name}` segments, captured into Request.params."""
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
    return Route(re.compile(f"^{regex}$"), methods, error_body)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client, or a flood of them, can cost the server.

    Memory for connections is bounded by `connections` x (`max_header` + `max_body` +
    `out_in_memory`): ~136 MiB at the defaults, whatever arrives; a connection past
    `connections` waits in the kernel's listen backlog. A response a client is slow to read
    past `out_in_memory` (a big /metrics) waits in a temporary file (tempfile's directory: /tmp,
    else the working directory, the state volume in the Docker image).
    """

    threads: int = 8  # workers running endpoint code; requests beyond them queue, read in full
    connections: int = 256  # open connections; past this, accept() pauses
    backlog: int = 1024  # the kernel's queue of connections not yet accepted
    max_header: int = 32 * 1024  # request line + headers; past it 431
    max_body: int = MAX_BODY  # past it 413 (checked against Content-Length before reading)
    idle_timeout: float = 30.0  # no byte from the client for this long: closed
    request_timeout: float = 60.0  # a request still incomplete this long after it began: closed
    out_in_memory: int = 256 * 1024  # unsent response bytes per connection kept in memory
    # Unsent bytes past which a streamed response (/metrics) waits for the client to read.
    # waitress keeps a response buffer it is draining in memory until this much went through
    # it (its default, 16 MiB, is what a /metrics scrape would then cost), and a client that
    # stops reading pins a worker thread until the stall timeout below closes it.
    out_high_watermark: int = 1024 * 1024


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # a name: it may resolve anywhere, so it counts as exposed
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


class _Parser(HTTPRequestParser):
    """Remembers when a request began, so a client that trickles a byte at a time (and so
    never looks idle) is still cut off."""

    def __init__(self, adj: Adjustments) -> None:
        super().__init__(adj)
        self.began = time.time()


class _JsonErrorTask(ErrorTask):
    """waitress's own parse errors (400, 413, 431) with the API's JSON error body."""

    def execute(self) -> None:
        e = self.request.error
        body = json.dumps({"error": f"{e.reason}: {e.body}"}).encode()
        self.status = f"{e.code} {e.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)
        self.channel.linger = True


class _Channel(HTTPChannel):
    """After an error response, a lingering close (as nginx's `lingering_close`): send FIN,
    then read and discard what the client still sends for a moment. Closing at once with its
    unread bytes in the buffer makes the kernel send RST, and the client then loses the
    431/413 it was sent."""

    parser_class = _Parser
    error_task_class = _JsonErrorTask
    linger = False  # set by an error response
    _linger_until = 0.0
    _discarded = 0

    def handle_close(self) -> None:
        if self.linger and not self._linger_until and self.socket is not None:
            self.linger = False
            try:
                self.socket.shutdown(socket.SHUT_WR)
            except OSError:
                super().handle_close()
                return None
            self._linger_until = time.monotonic() + LINGER_SECONDS
            self.will_close = self.close_when_flushed = False
            return None
        super().handle_close()
        return None

    def readable(self) -> bool:
        return True if self._linger_until else bool(super().readable())

    def writable(self) -> bool:
        if self._linger_until:  # "writable" only to get handle_write called at the deadline
            return time.monotonic() > self._linger_until or self.will_close
        return bool(super().writable())

    def handle_write(self) -> None:
        if self._linger_until:
            super().handle_close()
            return None
        super().handle_write()
        return None

    def handle_read(self) -> None:
        if not self._linger_until:
            super().handle_read()
            return None
        try:
            data = self.socket.recv(65536) if self.socket is not None else b""
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        self._discarded += len(data)
        if not data or self._discarded > LINGER_BYTES:
            super().handle_close()
        return None


class _TlsChannel(TlsChannel, _Channel):
    """HTTPS: TLS on the socket (tls.py), the rest as over HTTP."""


class _Dispatcher(ThreadedTaskDispatcher):
    """A queued request is what a burst looks like, not a warning (waitress logs one per
    request queued behind busy workers)."""

    def add_task(self, task: Any) -> None:
        with self.lock:
            self.queue.append(task)
            self.queue_cv.notify()


class _Server(TcpWSGIServer):
    channel_class = _Channel
    idle_timeout = 30.0
    request_timeout = 60.0
    tls: ssl.SSLContext | None = None

    def accept(self) -> tuple[Any, Any] | None:
        pair: tuple[Any, Any] | None = super().accept()
        if pair is None or self.tls is None:
            return pair
        conn, addr = pair
        try:
            return wrap(self.tls, conn), addr
        except OSError:
            conn.close()
            return None

    def maintenance(self, now: float) -> None:
        """Close idle and half-sent connections (waitress closes idle ones only), logged at
        debug: a client that went quiet is routine, not an error."""
        idle_cutoff = now - self.idle_timeout
        for channel in list(self.active_channels.values()):
            if (
                channel.requests
                and channel.total_outbufs_len
                and channel.last_activity < idle_cutoff
            ):
                # A response the client has stopped reading: its worker thread waits for room
                # in the buffer; closing the channel frees it (waitress raises ClientDisconnected).
                log.debug("closing connection from %s: not reading its response", _peer(channel))
                channel.handle_close()
                continue
            if channel.requests or channel.will_close:
                continue  # a request is being answered: the worker owns it
            partial = channel.request
            if partial is not None and now - partial.began > self.request_timeout:
                why = f"request incomplete after {now - partial.began:.1f}s"
            elif channel.last_activity < idle_cutoff:
                what = "request incomplete" if partial is not None else "idle"
                why = f"{what}, nothing received for {now - channel.last_activity:.1f}s"
            else:
                continue
            log.debug("closing connection from %s: %s (client timeout)", _peer(channel), why)
            channel.will_close = True


def _peer(channel: HTTPChannel) -> str:
    addr = channel.addr
    return f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else str(addr)


class ApiServer:
    def __init__(
        self,
        ports: ApiPorts,
        registry: CollectorRegistry,
        limits: Limits | None = None,
    ) -> None:
        self.ports = ports
        self.limits = limits or Limits()
        self.registry = registry  # /metrics: the collectors the composition root registered
        health = Health(ports.health, ports.clock)
        alerts = AlertViews(ports.alerts, ports.rules, ports.clock)
        silences = SilenceViews(ports.silences, ports.clock)
        server = ports.settings.server()
        self.prefix = server.path_prefix
        try:
            self.access = Access(server.basic_auth_file, self._read_token, self._token)
        except (OSError, UnicodeDecodeError) as e:
            raise UnreadableFile("server.basic_auth_file", server.basic_auth_file, e) from e
        self.page: PageViews | None = None
        page_routes = []
        if ports.page is not None:
            self.page = page = PageViews(ports.page)
            notifications = NotificationViews(ports.page.notifications)
            page_routes = [
                route("/", GET=page.index),
                route("/login", POST=lambda r: page.login(r, self.access)),
                route("/static/{name}", GET=page.static),
                route("/api/v1/notifications", GET=notifications.index),
            ]
        self.routes = [
            *page_routes,
            route("/healthz", GET=health.healthz),
            route("/readyz", GET=health.readyz),
            route("/metrics", GET=self.metrics),
            route("/api/v1/alerts", GET=alerts.alerts),
            route("/api/v1/rules", GET=alerts.rules),
            route("/api/v1/silences", GET=silences.index, POST=silences.create),
            route("/api/v1/silences/{id}", DELETE=silences.expire),
        ]
        v2 = V2(
            ports.clock, ports.settings, ports.alerts, ports.silences, ports.routing, ports.status
        )
        self.routes += [route(path, v2_error, **methods) for path, methods in v2.routes()]
        host, port = ports.settings.server().host_port
        # Until start() knows the bound address, judge by the configured one.
        self.address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        host, port = self.ports.settings.server().host_port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        limits = self.limits
        adj = Adjustments(
            threads=limits.threads,
            connection_limit=limits.connections,
            backlog=limits.backlog,
            max_request_header_size=limits.max_header,
            max_request_body_size=limits.max_body,
            # Bodies are at most max_body: keep them in memory rather than in temp files.
            inbuf_overflow=limits.max_body + 1,
            outbuf_overflow=limits.out_in_memory,
            outbuf_high_watermark=limits.out_high_watermark,
            # waitress keeps both in whole seconds; _Server.maintenance applies the timeouts.
            channel_timeout=max(1, round(limits.idle_timeout)),
            cleanup_interval=1,
            asyncore_use_poll=True,  # select() stops at fd 1024
            # A reset by the client is its business; waitress would log each with a traceback.
            log_socket_errors=False,
            ident="sentinel",
            expose_tracebacks=False,
        )
        server_config = self.ports.settings.server()
        tls = None
        if server_config.tls_cert_file and server_config.tls_key_file:
            try:
                tls = context(server_config.tls_cert_file, server_config.tls_key_file)
            except OSError as e:  # ssl.SSLError is one: a key that does not match, a bad PEM
                files = f"{server_config.tls_cert_file}, {server_config.tls_key_file}"
                raise UnreadableFile("server.tls_cert_file/tls_key_file", files, e) from e
        dispatcher = _Dispatcher()
        dispatcher.set_thread_count(limits.threads)
        self._map: dict[int, Any] = {}
        try:
            server = _Server(
                self,
                map=self._map,
                dispatcher=dispatcher,
                adj=adj,
                sockinfo=(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, (host, port)),
            )
        except BaseException:
            dispatcher.shutdown(timeout=1)
            raise
        server.idle_timeout = limits.idle_timeout
        server.request_timeout = limits.request_timeout
        if tls is not None:
            server.tls, server.channel_class = tls, _TlsChannel
        self._server = server
        self.address = (str(server.effective_host), int(server.effective_port))
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, name="sentinel-http", daemon=True)
        self._thread.start()
        log.info(
            "HTTP API listening on %s%s", self.listening, " (HTTPS)" if tls is not None else ""
        )
        if self.read_only:
            log.warning(
                "the API is read-only: it listens on %s, which is not a loopback address, and "
                "server.token is not set, so anyone who can reach it could silence alerts; "
                "writes answer 403 until server.token is set (SENTINEL_API_TOKEN)",
                self.listening,
            )

    def _serve(self) -> None:
        server = self._server
        assert server is not None
        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=0.25, map=self._map, use_poll=True, count=1)
        finally:
            # In the I/O thread, which owns every socket in the map.
            wasyncore.close_all(self._map, ignore_all=True)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("ApiServer is not started")
        return self.address[1]

    @property
    def listening(self) -> str:
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def read_only(self) -> bool:
        """No token and reachable from other machines: writes are refused (issue 9 item 7)."""
        return not self._token() and not is_loopback(self.address[0])

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection, let running requests finish (up to timeout)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        self._stopping.set()
        with suppress(OSError):  # the I/O thread may have closed the trigger already
            server.pull_trigger()  # wake the poll now rather than at its timeout
        if thread is not None:
            thread.join(timeout)
        server.task_dispatcher.shutdown(timeout=timeout)

    # -- WSGI -----------------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        response = self.handle(environ)
        start_response(response.status_line, response.header_list())
        log.debug(
            '%s "%s %s" %d %d',
            environ.get("REMOTE_ADDR", "-"),
            method,
            environ.get("PATH_INFO") or "/",
            response.status,
            len(response.body),
        )
        if method == "HEAD":
            return []
        return response.stream if response.stream is not None else [response.body]

    def handle(self, environ: WSGIEnvironment) -> Response:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO") or "/"
        prefix = self.prefix
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix) :] or "/"
        if len(path) > 1:
            path = path.rstrip("/")
        for r in self.routes:
            match = r.pattern.match(path)
            if match is None:
                continue
            handler = r.methods.get("GET" if method == "HEAD" else method)
            if handler is None:
                allow = ", ".join(sorted({*r.methods, *(["HEAD"] if "GET" in r.methods else [])}))
                return r.error(405, f"method {method} not allowed", [("Allow", allow)])
            request = Request(method, path, environ, match.groupdict())
            # Reads need credentials when the page is protected (the write token counts too).
            protected = path not in OPEN and not path.startswith(OPEN_PREFIX)
            if protected and (denied := self.access.check_read(request)) is not None:
                if path == "/" and self.page is not None and not self.access.uses_basic:
                    return self.page.login_form(request)  # a person with a browser
                return error(401, denied.message, [("WWW-Authenticate", denied.challenge)])
            try:
                if path == "/login":
                    if cross_site(request, self.ports.settings.server().external_url):
                        raise HttpError(403, "cross-site login refused")
                elif method in WRITES:
                    self.authorize(request)
                return handler(request)
            except HttpError as e:
                return r.error(e.status, e.message, e.headers)
            except Exception:  # one broken request must not take the server thread with it
                log.exception("%s %s failed", method, path)
                return r.error(500, "internal error; see the sentinel log", ())
        return error(404, f"no such endpoint: {path}")

    def _token(self) -> str:
        # Read on every request: a SIGHUP reload may have changed the token.
        secret = self.ports.settings.server().token
        return secret.get_secret_value() if secret is not None else ""

    def _read_token(self) -> str:
        secret = self.ports.settings.server().read_token
        return secret.get_secret_value() if secret is not None else ""

    def authorize(self, request: Request) -> None:
        if cross_site(request, self.ports.settings.server().external_url):
            raise HttpError(403, "cross-site write refused (Origin is not this server)")
        expected = self._token()
        if not expected:  # `token: ${SENTINEL_API_TOKEN:-}` with the variable unset
            if not is_loopback(self.address[0]):
                raise HttpError(
                    403,
                    f"the API is read-only: sentinel listens on {self.listening}, which is not "
                    "a loopback address, and server.token is not set; set server.token "
                    "(SENTINEL_API_TOKEN) to allow writes",
                )
            return
        scheme, _, given = (request.header("Authorization") or "").partition(" ")
        challenge = [("WWW-Authenticate", 'Bearer realm="sentinel"')]
        if scheme.lower() != "bearer" or not given.strip():
            raise HttpError(401, "this endpoint needs Authorization: Bearer <token>", challenge)
        if not hmac.compare_digest(given.strip().encode(), expected.encode()):
            raise HttpError(401, "invalid token", challenge)

    def metrics(self, request: Request) -> Response:
        """The registry in the format the scraper asked for (prometheus_client's negotiation),
        gzipped if it accepts that, written while it is made (api/exposition.py)."""
        registry: Any = self.registry
        names = parse_qs(request.environ.get("QUERY_STRING", "")).get("name[]")
        if names:  # prometheus_client's filter: only the families named
            registry = registry.restricted_registry(names)
        content_type, chunks = encode(registry, request.header("Accept"))
        headers = [("Content-Type", content_type)]
        if wants_gzip(request.header("Accept-Encoding")):
            chunks = gzipped(chunks)
            headers.append(("Content-Encoding", "gzip"))
        return Response(200, b"", headers=tuple(headers), stream=chunks)
