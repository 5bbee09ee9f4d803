"""The HTTP front under abuse: floods, slowloris, oversized and malformed requests, exposure.

A real in-process Sentinel + ApiServer (as in test_api.py) on a real socket; the private Redis
from `redis_url` is its broker. Latency under load is measured by bench/api_load.py, not here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sentinel.api.http import MAX_BODY
from sentinel.api.server import ApiServer, Limits
from sentinel.app import Sentinel
from sentinel.config import parse
from sentinel.model import rfc3339
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

TOKEN = "front-door-token"

CONFIG = """
celery:
  broker_url: "{broker}"
storage:
  path: "{path}"
server:
  listen: "{listen}"
  token: "{token}"
rules:
  - name: NoLiveWorkers
    kind: no_live_workers
"""


class Front:
    def __init__(self, sentinel: Sentinel, server: ApiServer) -> None:
        self.sentinel = sentinel
        self.server = server
        self.base = f"http://127.0.0.1:{server.port}"

    def raw(self, data: bytes, timeout: float = 10.0) -> bytes:
        """Send `data` on a fresh connection; everything the server answers until it closes."""
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=timeout) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


@pytest.fixture
def make_front(tmp_path: Path, redis_url: str) -> Iterator[Callable[..., Front]]:
    running: list[Front] = []

    def make(
        listen: str = "127.0.0.1:0", token: str = TOKEN, limits: Limits | None = None
    ) -> Front:
        text = CONFIG.format(
            broker=redis_url,
            path=tmp_path / f"sentinel-{len(running)}.db",
            listen=listen,
            token=token,
        )
        sentinel = Sentinel(parse(text, env={}))
        server = ApiServer(sentinel.api_ports(), sentinel.metrics_registry(), limits=limits)
        server.start()
        front = Front(sentinel, server)
        running.append(front)
        return front

    yield make
    for front in running:
        front.server.stop()
        front.sentinel.stop()


@pytest.fixture
def front(make_front: Callable[..., Front]) -> Front:
    return make_front()


def silence_body() -> dict[str, Any]:
    now = time.time()
    return {
        "matchers": [{"name": "alertname", "value": "NoLiveWorkers", "isRegex": False}],
        "startsAt": rfc3339(now),
        "endsAt": rfc3339(now + 3600),
        "createdBy": "pytest",
        "comment": "front door",
    }


def status_and_json(response: bytes) -> tuple[int, Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not bad, [r.getMessage() for r in bad]
    assert "Traceback" not in caplog.text


# -- a flood ------------------------------------------------------------------------------


async def _get(port: int, path: str, out: Counter[str]) -> None:
    try:
        async with asyncio.timeout(120):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()
                )
                await writer.drain()
                data = await reader.read()
            finally:
                writer.close()
    except (OSError, TimeoutError) as e:
        out[type(e).__name__] += 1
        return
    out[data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.") else repr(data[:20])] += 1


async def _flood(port: int, n: int) -> Counter[str]:
    out: Counter[str] = Counter()
    paths = ("/healthz", "/api/v1/alerts", "/api/v1/rules", "/metrics")
    await asyncio.gather(*(_get(port, paths[i % len(paths)], out) for i in range(n)))
    return out


def test_1000_concurrent_gets_are_all_answered_without_a_traceback(
    front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    outcomes = asyncio.run(_flood(front.server.port, 1000))
    assert outcomes == Counter({"200": 1000}), outcomes  # no refused, reset or timed-out one
    no_traceback(caplog)
    assert requests.get(front.base + "/healthz", timeout=10).status_code == 200


# -- slow clients -------------------------------------------------------------------------


def _closed_by_server(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except ConnectionResetError:  # closed with our unread bytes still in its buffer
        return True
    except TimeoutError:
        return False


def test_a_slowloris_client_is_cut_off_at_debug_without_a_traceback(
    make_front: Callable[..., Front], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    front = make_front(limits=Limits(idle_timeout=0.5, request_timeout=2.0))
    with socket.create_connection(("127.0.0.1", front.server.port), timeout=0.1) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # half a request, then nothing
        wait_for(lambda: _closed_by_server(s), 20, message="the server to close the connection")
    [record] = [r for r in caplog.records if "closing connection from" in r.getMessage()]
    assert record.levelno == logging.DEBUG
    assert "request incomplete" in record.getMessage()
    assert "client timeout" in record.getMessage()
    no_traceback(caplog)
    assert requests.get(front.base + "/healthz", timeout=10).status_code == 200


def test_a_client_trickling_a_byte_at_a_time_is_cut_off_too(
    make_front: Callable[..., Front], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    front = make_front(limits=Limits(idle_timeout=5.0, request_timeout=1.0))
    with socket.create_connection(("127.0.0.1", front.server.port), timeout=0.05) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")

        def trickle() -> bool:  # one more header byte per poll: never idle for idle_timeout
            try:
                s.sendall(b"X")
            except OSError:
                return True  # the server closed (reset) the connection
            return _closed_by_server(s)

        wait_for(trickle, 20, interval=0.1, message="the server to cut off the trickle")
    messages = [r.getMessage() for r in caplog.records if "closing connection" in r.getMessage()]
    assert any("request incomplete after" in m for m in messages), messages
    no_traceback(caplog)


def test_many_half_open_connections_do_not_starve_real_clients(
    front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    lazy = [socket.create_connection(("127.0.0.1", front.server.port)) for _ in range(100)]
    try:
        for s in lazy:
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
        for _ in range(20):
            assert requests.get(front.base + "/api/v1/alerts", timeout=10).status_code == 200
    finally:
        for s in lazy:
            s.close()
    no_traceback(caplog)


# -- malformed and oversized requests -----------------------------------------------------


def _post(front: Front, body: bytes) -> requests.Response:
    return requests.post(
        front.base + "/api/v1/silences",
        data=body,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=30,
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "invalid JSON"),  # nested past any parser's stack
        (b'{"matchers": ' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}", "invalid JSON"),
        (b"{not json", "invalid JSON"),
        (b'{"matchers": [], "comment": "\xff\xfe"}', "invalid JSON"),  # not UTF-8
        (b'{"endsAt": NaN}', "invalid JSON"),
        (b'{"matchers": [{"name": "a", "value": 1e999}]}', "invalid JSON"),
        (b'"just a string"', "JSON object"),
        (b'{"matchers": "alertname=x"}', "matchers"),
        (b'{"matchers": [{"name": "a", "value": "b"}], "endsAt": 12}', "RFC 3339"),
    ],
)
def test_bad_bodies_are_400_never_500(
    front: Front, caplog: pytest.LogCaptureFixture, body: bytes, reason: str
) -> None:
    r = _post(front, body)
    assert r.status_code == 400, r.text
    assert reason in r.json()["error"]
    no_traceback(caplog)


def test_a_body_over_the_limit_is_413(front: Front, caplog: pytest.LogCaptureFixture) -> None:
    # Announced by Content-Length: refused before a byte of the body is read.
    status, body = status_and_json(
        front.raw(
            b"POST /api/v1/silences HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {100 * MAX_BODY}\r\n\r\n".encode()
        )
    )
    assert status == 413
    assert "Too Large" in body["error"]
    # Chunked, so only counting the bytes can tell.
    chunk = b"x" * 65536
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_BODY // len(chunk) + 2)
    )
    status, body = status_and_json(
        front.raw(
            b"POST /api/v1/silences HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunks
            + b"0\r\n\r\n"
        )
    )
    assert status == 413
    # What an ordinary client does: send it all and read the answer (the server lingers).
    r = _post(front, b" " * (MAX_BODY + 1))
    assert r.status_code == 413
    no_traceback(caplog)


def test_headers_over_the_limit_are_431(front: Front, caplog: pytest.LogCaptureFixture) -> None:
    big = b"X-Filler: " + b"a" * (front.server.limits.max_header + 1) + b"\r\n"
    status, body = status_and_json(
        front.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
    )
    assert status == 431
    assert "Header" in body["error"]
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 60) for i in range(1000))
    status, _ = status_and_json(front.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n"))
    assert status == 431
    r = requests.get(front.base + "/healthz", headers={"X-Filler": "a" * 100_000}, timeout=10)
    assert r.status_code == 431
    no_traceback(caplog)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n",
        b"POST /api/v1/silences HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /api/v1/silences HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Content-Length: 7\r\n\r\n",
        b"POST /api/v1/silences HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_malformed_requests_are_400_with_a_json_error(
    front: Front, caplog: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    status, body = status_and_json(front.raw(request_bytes))
    assert status == 400
    assert body["error"]
    no_traceback(caplog)


# -- exposure: no token on a non-loopback address means read-only --------------------------


def test_no_token_on_a_public_address_refuses_writes_and_says_why(
    make_front: Callable[..., Front], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    front = make_front(listen="0.0.0.0:0", token="")  # reached below over loopback only
    assert front.server.read_only
    [warning] = [r for r in caplog.records if "read-only" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert "0.0.0.0" in warning.getMessage() and "server.token" in warning.getMessage()

    r = requests.post(front.base + "/api/v1/silences", json=silence_body(), timeout=10)
    assert r.status_code == 403
    assert "read-only" in r.json()["error"] and "server.token" in r.json()["error"]
    assert requests.delete(front.base + "/api/v1/silences/x", timeout=10).status_code == 403
    assert requests.get(front.base + "/api/v1/silences", timeout=10).json() == []
    assert requests.get(front.base + "/api/v1/alerts", timeout=10).status_code == 200


def test_with_a_token_a_public_address_takes_writes_with_it(
    make_front: Callable[..., Front], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    front = make_front(listen="0.0.0.0:0", token=TOKEN)
    assert not front.server.read_only
    assert not [r for r in caplog.records if "read-only" in r.getMessage()]
    url = front.base + "/api/v1/silences"
    assert requests.post(url, json=silence_body(), timeout=10).status_code == 401
    r = requests.post(
        url, json=silence_body(), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert r.status_code == 200, r.text
    assert [s["id"] for s in requests.get(url, timeout=10).json()] == [r.json()["silenceID"]]


def test_loopback_without_a_token_stays_writable(make_front: Callable[..., Front]) -> None:
    front = make_front(listen="127.0.0.1:0", token="")
    assert not front.server.read_only
    r = requests.post(front.base + "/api/v1/silences", json=silence_body(), timeout=10)
    assert r.status_code == 200


def test_a_scraper_that_stops_reading_frees_its_worker(
    make_front: Callable[..., Front], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    limits = Limits(threads=1, idle_timeout=0.5, out_high_watermark=64 * 1024)
    front = make_front(limits=limits)
    store, now = front.sentinel.store, time.time()
    store.apply_events(  # enough task names for a /metrics larger than the socket buffers
        [
            {"type": "task-received", "uuid": f"u{i}", "name": f"t{i}", "hostname": "w@h"}
            | {"timestamp": now}
            for i in range(20_000)
        ],
        now,
    )
    with socket.create_connection(("127.0.0.1", front.server.port), timeout=0.1) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")  # and never read the answer
        wait_for(
            lambda: any("not reading its response" in r.getMessage() for r in caplog.records),
            20,
            message="the server to close the stalled scrape",
        )
    # The one worker thread is free again.
    assert requests.get(front.base + "/healthz", timeout=10).status_code == 200
    no_traceback(caplog)
