"""Failover of an HA pair: how long until the follower leads, and what the receiver gets.

Two `sentinel run` replicas (ha.enabled) on a fresh PostgreSQL database of their own, a
private redis-server, a real celery worker, a local webhook. A flapping incident: each cycle
turns QueueBacklog on or off (a backlog pushed or deleted on a queue no worker consumes),
then SIGKILLs the leader after a random delay (0 to `--jitter` s: before, during or after the
decision and the send), measures kill -> the other replica says "leader" on /readyz, restarts
the killed one (it comes back as a follower) and waits for the page the cycle owes.

- failover: median and worst of the kill -> leader times (lease + up to a renew period).
- duplicated: pages of the same status accepted twice in one cycle (the in-flight case:
  a send that reached the receiver before the leader died, but not its record).
- lost: cycles whose page never arrived (within `--timeout` s).

The webhook takes `--hold` s to answer, so some kills land while a send is in flight.

    .venv/bin/python bench/ha_failover.py [--cycles 50] [--lease 2] [--hold 0.2]
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from tests.helpers import Broker, Replica, Worker, wait_for  # noqa: E402
from tests.receivers import Receiver, Switch  # noqa: E402
from tests.services import PostgresDatabase, RedisServer  # noqa: E402


def first_arrival(switch: Switch, status: str, after: int) -> float:
    """When the first page of `status` past the first `after` of them arrived."""
    with switch.lock:
        pairs = zip(switch.arrived, switch.answered, strict=False)
        times = [t for t, (_, w, _) in pairs if w == status]
    return times[after]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--hold", type=float, default=0.2)
    parser.add_argument("--jitter", type=float, default=1.5)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    tmp = Path(tempfile.mkdtemp(prefix="sentinel-ha-bench-"))
    server = RedisServer(tmp)
    server.start()
    pg = PostgresDatabase()
    pg.create()
    switch = Switch(hold=args.hold)
    hook = Receiver(default=switch)
    queue = f"ha-bench-{uuid.uuid4().hex[:6]}"
    worker = Worker(Broker("redis", server.url, "ha-work"), "ha-bench-w", "ha-work", tmp)
    settings = {
        "broker": server.url,
        "queue": queue,
        "storage": pg.schema_url("bench"),
        "lease": f"{args.lease:g}s",
        "evaluation": "1s",
        "hook": hook.url,
    }
    replicas = {n: Replica(tmp, n, **settings) for n in ("a", "b")}
    client = redis.Redis.from_url(server.url)
    failovers: list[float] = []
    duplicated = lost = in_flight = 0
    try:
        worker.wait_ready()
        for r in replicas.values():
            r.start()
        wait_for(
            lambda: any(r.role() == "leader" for r in replicas.values()), 30, message="a leader"
        )
        print(
            f"ha_failover: {args.cycles} cycles, lease {args.lease:g}s, evaluation 1s, "
            f"webhook holds {args.hold:g}s, kill 0-{args.jitter:g}s after each flap"
        )
        firing = False
        for cycle in range(args.cycles):
            firing = not firing
            status = "firing" if firing else "resolved"
            before = len(switch.accepted(status))
            if firing:
                client.rpush(queue, *[f"m{i}" for i in range(5)])
            else:
                client.delete(queue)
            time.sleep(rng.uniform(0, args.jitter))
            leader = next(r for r in replicas.values() if r.role() == "leader")
            other = next(r for r in replicas.values() if r is not leader)
            leader.signal(signal.SIGKILL)
            killed_at = time.time()
            assert leader.proc is not None
            leader.proc.wait(10)
            killed = time.monotonic()
            wait_for(lambda o=other: o.role() == "leader", 10 * args.lease, 0.02, "takeover")
            failovers.append(time.monotonic() - killed)
            leader.start()
            try:
                wait_for(
                    lambda s=status, n=before: len(switch.accepted(s)) > n,
                    args.timeout,
                    message=f"cycle {cycle}: the {status} page",
                )
            except AssertionError:
                lost += 1
                print(f"  cycle {cycle}: {status} page LOST")
            wait_for(lambda r=leader: r.role() == "follower", 30, message="the old leader follows")
            time.sleep(args.hold + 1.0)  # a duplicate, if any, arrives meanwhile
            extra = len(switch.accepted(status)) - before - 1
            if extra > 0:
                duplicated += extra
                # In flight: the first copy reached the receiver while the leader was dying or
                # still waiting for the answer, so it could not have recorded it. (A copy that
                # arrives a few ms after the kill was written to the socket before it: loopback
                # delivery and the receiver's clock reading race the signal.)
                first = first_arrival(switch, status, before)
                held = killed_at - args.hold - 0.05 <= first <= killed_at + 0.05
                in_flight += extra if held else 0
                print(
                    f"  cycle {cycle}: {status} page accepted {extra + 1} times; first copy "
                    f"arrived {killed_at - first:+.3f}s before the kill"
                    f" ({'in flight' if held else 'NOT IN FLIGHT'})"
                )
        pages = len(switch.accepted())
        print(
            f"failover (kill -> other replica leads): median {statistics.median(failovers):.2f}s"
            f"  p90 {sorted(failovers)[int(0.9 * (len(failovers) - 1))]:.2f}s"
            f"  worst {max(failovers):.2f}s  (lease {args.lease:g}s + renew every "
            f"{args.lease / 3:.2f}s)"
        )
        print(
            f"pages: {pages} accepted for {args.cycles} flaps; duplicated {duplicated}, "
            f"lost {lost} ({100 * duplicated / args.cycles:.1f}% / "
            f"{100 * lost / args.cycles:.1f}%); of the duplicates, {in_flight} were a send in "
            "flight at the kill"
        )
    finally:
        for r in replicas.values():
            r.stop()
        worker.stop()
        hook.close()
        pg.drop()
        server.kill()
    return 1 if lost or in_flight < duplicated else 0


if __name__ == "__main__":
    sys.exit(main())
