"""What every benchmark shares: child processes that always die, a private Redis, a synthetic
Celery event stream published as the raw messages Celery itself publishes, and counters.

Everything here talks to 127.0.0.1 only. Every process a benchmark starts is registered with a
`Procs` and killed (process group, SIGCONT first so a stopped one can die) when the benchmark
ends, however it ends.
"""

from __future__ import annotations

import base64
import json
import mmap
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
PYTHON = sys.executable
HOST = "127.0.0.1"
MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(step)


# -- processes ------------------------------------------------------------------------------


class Procs:
    """Owns child processes: each in its own session, all killed on exit, even on error."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen[bytes]] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="sentinel-bench-"))

    def __enter__(self) -> Procs:
        # SIGTERM (a CI timeout, a kill from a test) must run the same cleanup as an error.
        self._old = signal.signal(signal.SIGTERM, _raise_exit)
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.children):
            self.stop(proc)
        signal.signal(signal.SIGTERM, self._old)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, args: Sequence[str], name: str, env: dict[str, str] | None = None) -> Any:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            list(args),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=ROOT,
            # Marks every child, so a test can prove none outlived the benchmark.
            env={**os.environ, "SENTINEL_BENCH_OWNER": str(self.tmp), **(env or {})},
        )
        log.close()
        self.children.append(proc)
        return proc

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
        if proc.poll() is None:
            for sig in (signal.SIGCONT, signal.SIGTERM):
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # Whatever it left behind in its group (a celery worker's pool) goes too.
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc in self.children:
            self.children.remove(proc)


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (peak RSS) in bytes, from the kernel's own accounting."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- redis ----------------------------------------------------------------------------------


@dataclass
class Redis:
    port: int
    client: redis.Redis

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def pattern_subscribers(self) -> int:
        return int(self.client.execute_command("PUBSUB", "NUMPAT"))

    def subscribers(self) -> dict[int, int]:
        """PUB/SUB subscribers now connected: client id -> bytes waiting in its output buffer
        (omem): what Redis holds because the subscriber reads slower than it is sent."""
        return {
            int(c["id"]): int(c.get("omem", 0))
            for c in self.client.client_list()
            if int(c.get("psub", 0)) > 0 or int(c.get("sub", 0)) > 0
        }

    def pending_pubsub_bytes(self) -> int:
        """Bytes Redis still holds for PUB/SUB subscribers (not yet written to their socket)."""
        return sum(
            int(c.get("omem", 0)) for c in self.client.client_list() if int(c.get("psub", 0)) > 0
        )


def start_redis(procs: Procs, *, bounded_pubsub: bool = False) -> Redis:
    """A private redis-server: no persistence, and no cap on a slow subscriber's buffer, so a
    SIGSTOPped consumer keeps every message instead of being disconnected; or, bounded, Redis's
    default cap (32 MiB, or 8 MiB for 60 s: the subscriber is dropped), as in production."""
    port = free_port()
    limit = ["--client-output-buffer-limit", "pubsub 0 0 0"] if not bounded_pubsub else []
    procs.start(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            *limit,
        ],
        "redis",
    )
    client = redis.Redis(host=HOST, port=port)
    wait_until(lambda: _ping(client), 10, "redis-server")
    return Redis(port, client)


def _ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


# -- the event stream -----------------------------------------------------------------------


@dataclass
class Stream:
    """Raw messages ready to PUBLISH, and how many events of each kind they carry."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    events: int = 0
    task_events: int = 0
    heartbeats: int = 0
    names: int = 0
    sizes: list[int] = field(default_factory=list)  # events in each message


def _envelope(event: dict[str, Any] | list[dict[str, Any]], routing_key: str, host: str) -> bytes:
    # Byte for byte the shape kombu's redis transport publishes for a Celery event (captured
    # from a real worker): a base64 body inside a JSON envelope.
    body = base64.b64encode(json.dumps(event).encode()).decode()
    return json.dumps(
        {
            "body": body,
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"hostname": host},
            "properties": {
                "delivery_mode": 1,
                "delivery_info": {"exchange": "celeryev", "routing_key": routing_key},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
    ).encode()


def make_stream(
    n: int,
    *,
    names: int = 50,
    workers: int = 4,
    fail_ratio: float = 0.05,
    batch: int = 8,
    rate: float = 1000.0,
    seed: int = 1,
    db: int = 0,
) -> Stream:
    """N Celery events as a small cluster would emit them.

    Producers publish each task-sent on its own; each worker buffers its task events and
    flushes them as one `task.multi` message (Celery's buffer_group), `batch` at a time, and
    sends a heartbeat every 2 s. `rate` tasks/s set the simulated timeline.
    """
    rng = random.Random(seed)
    task_names = [f"app{i // 100}.tasks.t{i % 100}" for i in range(names)]
    hosts = [f"celery@worker{i}" for i in range(workers)]
    producer = "gen4242@producer"
    t0 = time.time()
    timeline: list[tuple[float, int, str, dict[str, Any]]] = []  # (ts, seq, kind, event)
    seq = 0
    # Each task makes 4 events; heartbeats add ~2 per worker per simulated second.
    tasks = n // 4 + 1
    for i in range(tasks):
        sent = t0 + i / rate
        name = task_names[rng.randrange(names)]
        host = hosts[i % workers]
        tid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        received = sent + rng.uniform(0.001, 0.05)
        started = received + rng.uniform(0.001, 0.5)
        runtime = rng.lognormvariate(-2.0, 1.0)
        ok = rng.random() >= fail_ratio
        common = {"hostname": host, "utcoffset": 0, "pid": 100 + i % workers}
        timeline.append(
            (
                sent,
                (seq := seq + 1),
                "sent",
                {
                    "hostname": producer,
                    "utcoffset": 0,
                    "pid": 4242,
                    "clock": seq,
                    "uuid": tid,
                    "root_id": tid,
                    "parent_id": None,
                    "name": name,
                    "args": f"({i},)",
                    "kwargs": "{}",
                    "retries": 0,
                    "eta": None,
                    "expires": None,
                    "queue": "celery",
                    "exchange": "",
                    "routing_key": "celery",
                    "timestamp": sent,
                    "type": "task-sent",
                },
            )
        )
        timeline.append(
            (
                received,
                (seq := seq + 1),
                host,
                {
                    **common,
                    "clock": seq,
                    "uuid": tid,
                    "name": name,
                    "args": f"({i},)",
                    "kwargs": "{}",
                    "root_id": tid,
                    "parent_id": None,
                    "retries": 0,
                    "eta": None,
                    "expires": None,
                    "timestamp": received,
                    "type": "task-received",
                },
            )
        )
        timeline.append(
            (
                started,
                (seq := seq + 1),
                host,
                {**common, "clock": seq, "uuid": tid, "timestamp": started, "type": "task-started"},
            )
        )
        done = started + runtime
        finished: dict[str, Any] = {**common, "clock": (seq := seq + 1), "uuid": tid}
        if ok:
            finished.update(result=str(i), runtime=runtime, type="task-succeeded")
        else:
            finished.update(
                exception="ValueError('boom')",
                traceback='Traceback (most recent call last):\n  File "app.py", line 1\n'
                "ValueError: boom\n",
                type="task-failed",
            )
        finished["timestamp"] = done
        timeline.append((done, seq, host, finished))
    end = t0 + tasks / rate
    beat = 0
    at = t0
    while at < end:
        for w, host in enumerate(hosts):
            beat += 1
            timeline.append(
                (
                    at + w * 0.01,
                    (seq := seq + 1),
                    "beat",
                    {
                        "hostname": host,
                        "utcoffset": 0,
                        "pid": 100 + w,
                        "clock": seq,
                        "freq": 2.0,
                        "active": rng.randrange(0, 4),
                        "processed": beat * 100,
                        "loadavg": [0.5, 0.4, 0.3],
                        "sw_ident": "py-celery",
                        "sw_ver": "5.7.0",
                        "sw_sys": "Linux",
                        "timestamp": at + w * 0.01,
                        "type": "worker-heartbeat",
                    },
                )
            )
        at += 2.0
    timeline.sort(key=lambda t: (t[0], t[1]))
    del timeline[n:]

    stream = Stream(names=names)
    buffers: dict[str, list[dict[str, Any]]] = {h: [] for h in hosts}
    prefix = f"/{db}.celeryev/"

    def flush(host: str) -> None:
        if buffers[host]:
            stream.messages.append(
                (prefix + "task.multi", _envelope(buffers[host], "task.multi", host))
            )
            stream.sizes.append(len(buffers[host]))
            buffers[host] = []

    for _, _, kind, event in timeline:
        stream.events += 1
        if kind == "beat":
            stream.heartbeats += 1
            host = event["hostname"]
            flush(host)  # a worker's event loop flushes its buffer between heartbeats
            stream.messages.append(
                (prefix + "worker.heartbeat", _envelope(event, "worker.heartbeat", host))
            )
            stream.sizes.append(1)
        elif kind == "sent":
            stream.task_events += 1
            stream.messages.append((prefix + "task.sent", _envelope(event, "task.sent", producer)))
            stream.sizes.append(1)
        else:
            stream.task_events += 1
            buffers[kind].append(event)
            if len(buffers[kind]) >= batch:
                flush(kind)
    for host in hosts:
        flush(host)
    return stream


def publish(r: Redis, messages: Sequence[tuple[str, bytes]], chunk: int = 2000) -> None:
    for i in range(0, len(messages), chunk):
        pipe = r.client.pipeline(transaction=False)
        for channel, payload in messages[i : i + chunk]:
            pipe.publish(channel, payload)
        pipe.execute()


# -- consumers ------------------------------------------------------------------------------


def scrape(url: str, metric: str) -> float | None:
    """The sum of every sample of `metric` on a Prometheus endpoint; None if unreachable."""
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith(metric) and line[len(metric)] in "{ ":
            total += float(line.rsplit(" ", 1)[1])
    return total


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@dataclass
class Consumer:
    """A running event consumer and how to read the number of events it has counted."""

    name: str
    proc: subprocess.Popen[bytes]
    read: Callable[[], float | None]
    counts_heartbeats: bool = True
    http: str = ""  # base URL of its HTTP server, if it has one

    @property
    def pid(self) -> int:
        return self.proc.pid

    def expected(self, stream: Stream) -> int:
        return stream.events if self.counts_heartbeats else stream.task_events


def _ready(procs: Procs, c: Consumer, r: Redis, before: int, url: str | None, t: float) -> None:
    def up() -> bool:
        if c.proc.poll() is not None:
            raise RuntimeError(f"{c.name} exited:\n{procs.log(c.name)}")
        subscribed = r.pattern_subscribers() > before
        return subscribed and (url is None or http_ok(url))

    try:
        wait_until(up, t, f"{c.name} to subscribe", step=0.05)
    except TimeoutError as e:
        raise RuntimeError(f"{e}\n{procs.log(c.name)}") from None


def start_bare(procs: Procs, r: Redis) -> Consumer:
    """Celery's own EventReceiver with one handler that only counts: the floor."""
    counter = procs.tmp / "bare.count"
    counter.write_bytes(b"\0" * 8)
    before = r.pattern_subscribers()
    proc = procs.start([PYTHON, str(BENCH / "_bare.py"), r.url, str(counter)], "bare")
    fd = os.open(counter, os.O_RDONLY)
    view = mmap.mmap(fd, 8, prot=mmap.PROT_READ)
    os.close(fd)
    consumer = Consumer("bare", proc, lambda: float(int.from_bytes(view[:8], "little")))
    _ready(procs, consumer, r, before, None, 30)
    return consumer


def start_flower(procs: Procs, r: Redis) -> Consumer:
    port = free_port()
    before = r.pattern_subscribers()
    proc = procs.start(
        [
            PYTHON,
            "-m",
            "celery",
            f"--broker={r.url}",
            "flower",
            f"--address={HOST}",
            f"--port={port}",
            "--logging=warning",
        ],
        "flower",
    )
    url = f"http://{HOST}:{port}/metrics"
    # Flower counts task events only: heartbeats and worker-online/offline update its state
    # but not flower_events_total.
    consumer = Consumer(
        "flower", proc, lambda: scrape(url, "flower_events_total"), counts_heartbeats=False
    )
    _ready(procs, consumer, r, before, f"http://{HOST}:{port}/healthcheck", 60)
    return consumer


SENTINEL_RULES = """
  - name: TaskFailureRate
    kind: failure_rate
    tasks: ["*"]
    window: 5m
    threshold: 5%
    min_count: 20
    severity: error
  - name: SlowTasks
    kind: task_latency
    tasks: ["*"]
    measure: total
    percentile: 95
    threshold: 30s
    window: 10m
    min_count: 10
  - name: NoLiveWorkers
    kind: no_live_workers
    severity: critical
"""


def sentinel_config(
    procs: Procs,
    r: Redis,
    port: int,
    *,
    rules: str = SENTINEL_RULES,
    extra: str = "",
    queues: Sequence[str] = ("celery",),
) -> Path:
    path = procs.tmp / f"sentinel-{port}.yaml"
    path.write_text(
        f"""
celery:
  broker_url: "{r.url}"
  queues: {json.dumps(list(queues))}
storage:
  path: "{procs.tmp / f"sentinel-{port}.db"}"
server:
  listen: {HOST}:{port}
{textwrap.dedent(extra).strip()}
rules:
{rules.strip(chr(10))}
"""
    )
    return path


def start_sentinel(
    procs: Procs,
    r: Redis,
    *,
    name: str = "sentinel",
    python: Sequence[str] = ("-m", "sentinel"),
    **kw: Any,
) -> Consumer:
    """`sentinel run` on a config of its own; `python` is how the interpreter is told to run
    it (a `-c` that sets a module flag first: a same-run baseline), `name` its log's."""
    port = free_port()
    config = sentinel_config(procs, r, port, **kw)
    before = r.pattern_subscribers()
    proc = procs.start(
        [PYTHON, *python, "run", "--log-level", "warning", "-c", str(config)],
        name,
    )
    url = f"http://{HOST}:{port}"
    consumer = Consumer(
        name, proc, lambda: scrape(url + "/metrics", "sentinel_events_total"), http=url
    )
    _ready(procs, consumer, r, before, url + "/healthz", 60)
    return consumer


STARTERS: dict[str, Callable[[Procs, Redis], Consumer]] = {
    "bare": start_bare,
    "flower": start_flower,
    "sentinel": start_sentinel,
}


def wait_drained(r: Redis, c: Consumer, timeout: float, quiet: float = 0.5) -> None:
    """Until Redis has handed every message to the consumer and the consumer has gone idle.

    Needs no request to the consumer, so nothing is added to its work or its memory: a scrape
    of 10,000 series would cost more than the events it is meant to count.
    """
    deadline = time.monotonic() + timeout
    wait_until(lambda: r.pending_pubsub_bytes() == 0, timeout, f"{c.name} to read its buffer")
    cpu, since = cpu_seconds(c.pid), time.monotonic()
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{c.name} did not go idle in {timeout:g}s")
        time.sleep(0.1)
        now_cpu = cpu_seconds(c.pid)
        # A few ticks of background work (timers, heartbeats) is idle; ingesting is not.
        if now_cpu - cpu > 0.03:
            cpu, since = now_cpu, time.monotonic()


@contextmanager
def stopped(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def median(values: Sequence[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def mib(n: float) -> str:
    return f"{n / MiB:.1f}"
