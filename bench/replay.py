"""Replay speed and recording size: one hour of a busy cluster (200 events/s) recorded, replayed.

The hour is generated as the collectors would hand it to the fact store: task events
(sent, received, started, succeeded or ~5% failed, over 50 task names and 8 workers) in small
batches as socket reads bring them, worker heartbeats every 2 s, an inspect snapshot every
30 s, queue depths every 15 s and the event stream's per-second probe. It is written through
the real recorder (the writer's encoding and compression), so the file size is the size a
`sentinel run` with `record:` would write. Then `sentinel replay`'s engine runs
rules.example.yaml over it (every rule kind, routing, inhibition) and the wall time is taken.
One task name fails at 40% for ten minutes mid-hour, so pages are decided and "sent".

    .venv/bin/python bench/replay.py [--hours 1] [--rate 200] [--config rules.example.yaml]
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sentinel.clock import FakeClock  # noqa: E402
from sentinel.config import load  # noqa: E402
from sentinel.record import format as fmt  # noqa: E402
from sentinel.record import replay  # noqa: E402
from sentinel.record.recorder import FileSink, Recorder, header  # noqa: E402

T0 = 1_767_225_600.0


def generate(recorder: Recorder, clock: FakeClock, seconds: float, rate: float, seed: int) -> int:
    """Put `seconds` of traffic at `rate` events/s into the recorder; returns events."""
    rng = random.Random(seed)
    names = [f"app{i // 10}.tasks.t{i % 10}" for i in range(50)]
    hosts = [f"celery@worker{i}" for i in range(8)]
    tasks_per_s = (rate - len(hosts) / 2.0) / 4.0  # 4 events a task; heartbeats every 2 s
    pending: list[tuple[float, dict[str, Any]]] = []  # (due, event) not yet emitted
    events = 0
    tick = 0.05  # one socket read every 50 ms: a few events per batch
    t = T0
    next_task = T0
    beat = {h: T0 + i * 0.25 for i, h in enumerate(hosts)}
    processed = dict.fromkeys(hosts, 0)
    end = T0 + seconds
    bad = names[7]
    while t < end:
        t += tick
        while next_task <= t:
            name = names[rng.randrange(len(names))]
            host = hosts[rng.randrange(len(hosts))]
            tid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            sent = next_task
            received = sent + rng.uniform(0.001, 0.05)
            started = received + rng.uniform(0.001, 0.5)
            runtime = rng.lognormvariate(-2.0, 1.0)
            burst = T0 + seconds * 0.4 <= sent < T0 + seconds * 0.4 + 600
            failed = rng.random() < (0.4 if burst and name == bad else 0.02)
            common = {"hostname": host, "utcoffset": 0, "pid": 100, "uuid": tid}
            pending.append(
                (
                    sent,
                    {
                        "hostname": "gen@producer",
                        "utcoffset": 0,
                        "pid": 4242,
                        "uuid": tid,
                        "root_id": tid,
                        "parent_id": None,
                        "name": name,
                        "args": "(1,)",
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
            pending.append(
                (
                    received,
                    {
                        **common,
                        "name": name,
                        "args": "(1,)",
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
            pending.append((started, {**common, "timestamp": started, "type": "task-started"}))
            done: dict[str, Any] = {**common, "timestamp": started + runtime}
            if failed:
                done.update(exception="ValueError('boom')", traceback="Traceback ...\nValueError")
                done["type"] = "task-failed"
            else:
                done.update(result="1", runtime=runtime, type="task-succeeded")
            pending.append((started + runtime, done))
            next_task += 1.0 / tasks_per_s
        for host in hosts:
            if beat[host] <= t:
                processed[host] += 20
                pending.append(
                    (
                        beat[host],
                        {
                            "hostname": host,
                            "utcoffset": 0,
                            "pid": 100,
                            "freq": 2.0,
                            "active": rng.randrange(0, 4),
                            "processed": processed[host],
                            "loadavg": [0.5, 0.4, 0.3],
                            "sw_ident": "py-celery",
                            "sw_ver": "5.4.0",
                            "sw_sys": "Linux",
                            "timestamp": beat[host],
                            "type": "worker-heartbeat",
                        },
                    )
                )
                beat[host] += 2.0
        due = [e for d, e in pending if d <= t]
        pending = [(d, e) for d, e in pending if d > t]
        clock.set(t)
        if due:
            recorder.put((fmt.EVENTS, t, due), len(due))
            events += len(due)
        step = round((t - T0) / tick)
        if step % round(1 / tick) == 0:
            recorder.put((fmt.PROBE_OK, t, "events"))
        if step % round(30 / tick) == 0:
            stats = {h: {"pid": 100, "concurrency": 4, "total": processed[h]} for h in hosts}
            recorder.put(
                (
                    fmt.INSPECT,
                    t,
                    hosts,
                    t - 0.2,
                    35.0,
                    {h: ["celery"] for h in hosts},
                    stats,
                    {h: 1 for h in hosts},
                )
            )
            recorder.put((fmt.PROBE_OK, t, "inspect"))
        if step % round(15 / tick) == 0:
            recorder.put((fmt.QUEUES, t, {"celery": [rng.randrange(0, 50), 8]}, {}))
            recorder.put((fmt.PROBE_OK, t, "queues"))
        if step % 20 == 0:
            recorder.flush()  # the writer thread's job, done inline to keep timing simple
    recorder.flush()
    return events


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--hours", type=float, default=1.0)
    p.add_argument("--rate", type=float, default=200.0, help="events per second")
    p.add_argument("--config", default=str(ROOT / "rules.example.yaml"))
    p.add_argument("--keep", default=None, help="keep the recording here")
    args = p.parse_args(argv)
    config = load(args.config)
    seconds = args.hours * 3600
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep or Path(tmp) / "bench.rec")
        clock = FakeClock(T0)
        sink = FileSink(path, header(clock, evaluation_interval=15.0), None)
        recorder = Recorder(sink, clock, max_pending=10**9)
        cpu0 = time.process_time()
        events = generate(recorder, clock, seconds, args.rate, seed=1)
        recorder.stop()
        size = path.stat().st_size
        print(
            f"recorded {events:,} events ({seconds / 3600:g} h at {args.rate:g} events/s) in "
            f"{recorder.records:,} records: {size / 2**20:.1f} MiB "
            f"({size / events:.1f} bytes/event, {size / 2**20 / args.hours:.1f} MiB per hour); "
            f"generating + encoding took {time.process_time() - cpu0:.1f} CPU-s",
            flush=True,
        )
        t, cpu = time.perf_counter(), time.process_time()
        hdr, records = replay.read([path])
        result = replay.run(config, records, start=float(hdr["started_at"]))
        took, cpu = time.perf_counter() - t, time.process_time() - cpu
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"replayed {seconds / 3600:g} h ({result.records:,} records, {result.evaluations} "
        f"evaluations) in {took:.1f} s ({cpu:.1f} CPU-s): {seconds / took:,.0f}x real time, "
        f"{events / took:,.0f} events/s; {len(result.changes)} transition(s), "
        f"{len(result.pages)} page(s); peak RSS {peak:.0f} MiB"
    )
    if result.error:
        print(f"error: {result.error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
