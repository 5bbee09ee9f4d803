"""The status page in a real browser: Debian's headless Chromium driven by Playwright, against
a real `sentinel run` on a real Redis with real Celery workers and a local webhook receiver.

- a failing task fires: the page shows the alert with its value and threshold, the rule's
  chart has points, and the notification history lists the page the receiver got;
- a task named `<img src=x onerror=alert(1)>` renders as text (no dialog, no injected element);
- a silence created from the page ("silence this alert") mutes it at the receiver, and
  expiring it from the page lets the reminders through again;
- under a path prefix, with Basic auth and over TLS with a self-signed certificate: every link
  and asset works, `/` and `/api/*` answer 401 without credentials, `/healthz` 200.

Never downloads a browser: without /usr/bin/chromium (apt-get install chromium, as
scripts/test-services does) these skip, and fail under CI.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, wait_for
from tests.integration.app import HOSTILE_NAME
from tests.receivers import Receiver
from tests.services import free_port

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]
# Where the README's screenshots come from: `SENTINEL_SCREENSHOTS=docs/screenshots pytest ...`.
SCREENSHOTS = os.environ.get("SENTINEL_SCREENSHOTS")
# What the first load of the page may weigh, compressed (HTML + CSS + JS): the budget.
FIRST_LOAD_BUDGET = 64 * 1024
TRANSFERRED = """() => { const all = [...performance.getEntriesByType('navigation'),
                                  ...performance.getEntriesByType('resource')];
  return [all.reduce((n, e) => n + e.transferSize, 0), all.length]; }"""
# The elements that stick out past the screen's width, for the failure message.
WIDEST = """() => { const w = document.documentElement.clientWidth;
  return [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > w + 1)
    .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + e.textContent.slice(0, 40)); }"""


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing (scripts/test-services installs chromium)")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (never a downloaded one)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


class Daemon:
    """`sentinel run` on a fixed free port, its log in tmp_path."""

    def __init__(self, tmp_path: Path, config: str) -> None:
        self.path = tmp_path / "rules.yaml"
        self.path.write_text(config)
        self.log_path = tmp_path / "sentinel.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sentinel", "run", "-c", str(self.path)],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        wait_for(lambda: "HTTP API listening" in self.log(), 30, message="HTTP API up")

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def pages_for(hook: Receiver, task: str) -> list[dict[str, Any]]:
    return [b for b in hook.bodies() if any(a["labels"].get("task") == task for a in b["alerts"])]


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_the_page_shows_mutes_and_unmutes_a_firing_alert(
    broker, workers, producer, browser, tmp_path: Path
) -> None:
    hook = Receiver()
    port = free_port()
    workers("w1")
    daemon = Daemon(
        tmp_path,
        f"""
celery:
  broker_url: "{broker.url}"
  queues: ["{broker.queue}"]
  inspect_interval: 2s
  inspect_timeout: 1s
evaluation:
  interval: 1s
storage:
  path: "{tmp_path / "sentinel.db"}"
server:
  listen: 127.0.0.1:{port}
limits:
  bucket: 1s
rules:
  - name: TaskFailureRate
    kind: failure_rate
    tasks: ["*"]
    window: 10m
    threshold: 20%
    min_count: 3
    severity: critical
    summary: "{{{{ task }}}} fails {{{{ value|percent }}}} of the time"
route:
  channels: [hook]
  group_by: [alertname, task]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 2s
channels:
  hook:
    type: webhook
    url: {hook.url}/alerts
""",
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(lambda: "event stream subscribed" in daemon.log(), 30, message="subscribed")
        for i in range(8):
            producer.send_task("tests.flaky", args=(i,))
        for _ in range(4):
            producer.send_task(HOSTILE_NAME)
        wait_for(lambda: pages_for(hook, "tests.flaky"), 40, message="the flaky task paged")
        wait_for(lambda: pages_for(hook, HOSTILE_NAME), 20, message="the hostile task paged")

        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(url, wait_until="load")
        # What the browser says it transferred (headers and compressed bodies), a cold cache.
        weight, requests = page.evaluate(TRANSFERRED)
        print(f"status page first load: {weight} bytes over {requests} request(s)")
        assert requests == 3 and 0 < weight < FIRST_LOAD_BUDGET

        flaky = page.locator("#alerts tr", has_text="task=tests.flaky")
        assert flaky.count() == 1
        assert "firing" in flaky.inner_text()
        assert re.search(r"50\.0% / 20\.0%", flaky.locator("td.num").inner_text())

        # The hostile name is text in every section, never an element, never a dialog.
        hostile_row = page.locator("#alerts tr", has_text=HOSTILE_NAME)
        assert hostile_row.count() == 1
        assert page.locator("img").count() == 0 and dialogs == []
        assert page.locator("#rules", has_text=HOSTILE_NAME).count() == 1

        # The rule's chart has points: a polyline with at least one x,y pair per instance.
        lines = page.locator("#rule-TaskFailureRate polyline")
        assert lines.count() >= 2
        assert re.match(r"[\d.]+,[\d.]+", lines.first.get_attribute("points") or "")

        # The notification history lists the page the receiver got.
        # (The page may have been rendered before the sender recorded it: the live refresh.)
        row = page.locator("#history tbody tr", has_text="TaskFailureRate").filter(
            has_text="success"
        )
        expect(row.first).to_contain_text("firing", timeout=15000)
        assert "hook" in row.first.inner_text()
        page.locator("#history select[name=channel]").select_option("hook")
        page.locator("#history button[type=submit]").click()
        page.wait_for_url(re.compile(r"channel=hook"))
        assert page.locator("#history tbody tr").count() >= 1

        # "Silence this alert": the form is prefilled from the row; create it from the page.
        page.locator("#alerts tr", has_text="task=tests.flaky").locator(".silence-this").click()
        matchers = page.locator("#s-matchers").input_value()
        assert 'task="tests.flaky"' in matchers and 'alertname="TaskFailureRate"' in matchers
        page.fill("#s-comment", "looking into it")
        page.fill("#s-by", "browser test")
        page.locator("#silence-form button[type=submit]").click()
        expect(page.locator("#s-result")).to_contain_text("created")
        silenced_at = time.monotonic()
        page.wait_for_selector("#alerts tr.muted-row >> text=silenced by")
        assert page.locator("#silences tbody tr", has_text="looking into it").count() == 1
        if SCREENSHOTS:
            shots = Path(SCREENSHOTS)
            shots.mkdir(parents=True, exist_ok=True)
            page.goto(url)
            page.screenshot(path=str(shots / "status-page.png"), full_page=True)

        # Muted at the receiver: no reminder for the silenced alert (repeat_interval is 2s),
        # while the other one keeps being reminded.
        time.sleep(1.5)  # a send decided before the silence may still be in flight
        before, others = len(pages_for(hook, "tests.flaky")), len(pages_for(hook, HOSTILE_NAME))
        wait_for(lambda: len(pages_for(hook, HOSTILE_NAME)) >= others + 2, 20, message="reminders")
        # Two reminders of the other alert can land just under two intervals apart from the
        # silence (tick alignment): let at least two repeat intervals pass before the check.
        time.sleep(max(0.0, 4.5 - (time.monotonic() - silenced_at)))
        assert len(pages_for(hook, "tests.flaky")) == before, "the silence did not mute"

        # Expire it from the page: the reminders come back.
        page.locator("#silences tbody tr", has_text="looking into it").locator(".expire").click()
        page.wait_for_selector("#silences tr.silence-expired")
        wait_for(
            lambda: len(pages_for(hook, "tests.flaky")) > before, 20, message="unmuted reminder"
        )
        assert dialogs == []

        # Readable on a phone: nothing wider than the screen but the tables' own scrollers.
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        mobile = phone.new_page()
        mobile.goto(url)
        width = mobile.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, mobile.evaluate(WIDEST)
        if SCREENSHOTS:
            mobile.screenshot(path=str(Path(SCREENSHOTS) / "status-page-phone.png"))
        phone.close()
        context.close()
    finally:
        daemon.stop()
        hook.close()


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is missing (makes the test's self-signed certificate)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def status(url: str, ctx: ssl.SSLContext, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_under_a_prefix_with_basic_auth_over_tls(broker, browser, tmp_path: Path) -> None:
    import base64

    import bcrypt

    cert, key = self_signed(tmp_path)
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"ops:{bcrypt.hashpw(b'pa55', bcrypt.gensalt(4)).decode()}\n")
    port = free_port()
    daemon = Daemon(
        tmp_path,
        f"""
celery:
  broker_url: "{broker.url}"
  queues: ["{broker.queue}"]
evaluation:
  interval: 1s
storage:
  path: "{tmp_path / "sentinel.db"}"
server:
  listen: 127.0.0.1:{port}
  external_url: https://127.0.0.1:{port}/sentinel
  basic_auth_file: {htpasswd}
  tls_cert_file: {cert}
  tls_key_file: {key}
rules:
  - name: NoLiveWorkers
    kind: no_live_workers
""",
    )
    base = f"https://127.0.0.1:{port}/sentinel"
    try:
        assert "(HTTPS)" in daemon.log()
        ctx = ssl.create_default_context(cafile=str(cert))
        for path in ("/", "/api/v1/alerts", "/api/v1/rules", "/api/v1/notifications", "/metrics"):
            assert status(base + path, ctx) == 401, path
        assert status(base + "/healthz", ctx) == 200
        creds = {"Authorization": "Basic " + base64.b64encode(b"ops:pa55").decode()}
        assert status(base + "/api/v1/alerts", ctx, creds) == 200

        context = browser.new_context(
            ignore_https_errors=True,  # self-signed; the check above verified it against its CA
            http_credentials={"username": "ops", "password": "pa55"},
        )
        page = context.new_page()
        failed: list[str] = []
        page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
        page.on("requestfailed", lambda r: failed.append(f"failed {r.url}"))
        page.goto(base + "/")
        # The stylesheet applied, the script ran (live refresh fills "updated"), all under the
        # prefix, and every link on the page leads somewhere that answers.
        assert page.evaluate("getComputedStyle(document.querySelector('header')).position") in (
            "sticky",
            "static",
        )
        expect(page.locator("#updated")).to_have_text(re.compile("^updated"), timeout=15000)
        hrefs = page.eval_on_selector_all("a[href], link[href]", "els => els.map(e => e.href)")
        sources = page.eval_on_selector_all("script[src]", "els => els.map(e => e.src)")
        for link in {h.split("#")[0] for h in hrefs + sources} - {""}:
            if link.startswith("data:"):
                continue
            assert link.startswith(base + "/"), link
            assert page.request.get(link).status == 200, link
        page.locator("#history button[type=submit]").click()
        page.wait_for_url(re.compile(re.escape(base) + r"/\?channel="))
        assert failed == []
        context.close()
    finally:
        daemon.stop()
