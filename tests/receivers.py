"""Real local HTTP servers that stand in for SaaS endpoints (webhook, PagerDuty, Slack).

A stdlib ThreadingHTTPServer on loopback records every request; a script of responses lets a
test inject 500s, 429s with Retry-After, 400s, or hold a request open.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Callable[[Request], tuple[int, dict[str, str], bytes]]


def ok_json(status: int = 200, body: Any = None) -> Responder:
    payload = json.dumps(body if body is not None else {"status": "ok"}).encode()
    return lambda _req: (status, {"Content-Type": "application/json"}, payload)


class Receiver:
    def __init__(self, port: int = 0, default: Responder | None = None) -> None:
        self.requests: list[Request] = []
        self.script: list[Responder] = []  # consumed first, one per request
        self.default = default or ok_json()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                req = Request(self.path, dict(self.headers.items()), self.rfile.read(length))
                with receiver.lock:
                    receiver.requests.append(req)
                    responder = receiver.script.pop(0) if receiver.script else receiver.default
                status, headers, body = responder(req)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def bodies(self, path: str | None = None) -> list[Any]:
        with self.lock:
            return [r.json() for r in self.requests if path is None or r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Switch:
    """A responder that answers `status` (changed by the test) and keeps what each webhook
    body said with the status it got: the pages a receiver really accepted."""

    def __init__(self, status: int = 200, hold: float = 0.0) -> None:
        self.status = status
        self.hold = hold  # seconds each request waits for its answer (a send stays in flight)
        self.lock = threading.Lock()
        self.arrived: list[float] = []  # wall-clock arrival of each request
        self.answered: list[tuple[int, str, Any]] = []  # (status, webhook status, body)

    def __call__(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.arrived.append(time.time())
            status, hold = self.status, self.hold  # as they were when it arrived
        time.sleep(hold)
        body = req.json()
        with self.lock:
            self.answered.append((status, body.get("status", ""), body))
        return status, {"Content-Type": "application/json"}, b"{}"

    def arrivals(self) -> int:
        with self.lock:
            return len(self.arrived)

    def accepted(
        self, webhook_status: str | None = None, alertname: str | None = None
    ) -> list[Any]:
        """The bodies answered 2xx; of one status, of one alertname's group (Alertmanager
        webhook `groupLabels`)."""
        with self.lock:
            return [
                b
                for s, w, b in self.answered
                if s < 300
                and (webhook_status is None or w == webhook_status)
                and (alertname is None or b.get("groupLabels", {}).get("alertname") == alertname)
            ]

    def count(self) -> int:
        with self.lock:
            return len(self.answered)
