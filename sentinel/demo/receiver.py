"""The pager the demo routes alerts to: a local HTTP server that records every webhook.

Each payload is appended to `webhook.jsonl` (one JSON object per line, as received, plus the
time it arrived) and handed to a callback, so the console can show the page as it lands.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger("sentinel.demo.receiver")

PATH = "/alerts"


class WebhookReceiver:
    def __init__(self, record: Path, on_payload: Callable[[dict[str, Any]], None]) -> None:
        self.record = record
        self.on_payload = on_payload
        self.payloads: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    payload = json.loads(raw)
                except ValueError:
                    self.send_error(400, "expected a JSON body")
                    return
                if self.path != PATH or not isinstance(payload, dict):
                    self.send_error(404 if self.path != PATH else 400)
                    return
                receiver._received(payload)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s " + format, self.address_string(), *args)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{PATH}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="demo-webhook",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def _received(self, payload: dict[str, Any]) -> None:
        entry = {"received_at": time.time(), "payload": payload}
        with self._lock:
            self.payloads.append(payload)
            with open(self.record, "a") as f:
                f.write(json.dumps(entry) + "\n")
        try:
            self.on_payload(payload)
        except Exception:  # the console failing must not make sentinel retry the page
            log.exception("could not display a webhook payload")
