"""Real local HTTP servers that stand in for SaaS endpoints (webhook, PagerDuty, Slack).

A stdlib ThreadingHTTPServer on loopback records every request; a script of responses lets a
test inject 500s, 429s with Retry-After, 400s, or hold a request open.
"""

from __future__ import annotations

import json
import threading
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
