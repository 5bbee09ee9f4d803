"""A steady producer for bench/sustained.py: Celery event messages at a set rate.

Usage: python bench/_producer.py REDIS_URL RATE DURATION NAMES. Builds a pool of the raw
messages Celery publishes (_common.make_stream: task-sent on its own, worker task events as
task.multi batches, heartbeats) and PUBLISHes it in a loop, paced every 5 ms so the events
arrive as a steady stream, not a burst. Prints one JSON line: events and messages published,
seconds taken, and how far behind the schedule it ever fell. The pool repeats (a task id comes
back after the pool is used up); every event is still a new event to count.
"""

from __future__ import annotations

import json
import sys
import time

import redis
from _common import make_stream

POOL = 120_000


def main() -> None:
    url, rate, duration, names = (
        sys.argv[1],
        float(sys.argv[2]),
        float(sys.argv[3]),
        int(sys.argv[4]),
    )
    stream = make_stream(min(POOL, int(rate * duration) + 10), names=names, workers=8, seed=3)
    messages, sizes = stream.messages, stream.sizes
    client = redis.Redis.from_url(url)
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()  # go
    events = published = i = 0
    behind = 0.0
    start = time.monotonic()
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= duration:
            break
        due = int(rate * elapsed)
        if due - events > rate * 0.05:  # more than 50 ms of events late
            behind = max(behind, (due - events) / rate)
        if events >= due:
            time.sleep(0.005)
            continue
        pipe = client.pipeline(transaction=False)
        n = 0
        while events < due and n < 2000:
            channel, payload = messages[i]
            pipe.publish(channel, payload)
            events += sizes[i]
            i = (i + 1) % len(messages)
            n += 1
        pipe.execute()
        published += n
    took = time.monotonic() - start
    print(json.dumps({"events": events, "messages": published, "seconds": took, "behind": behind}))


if __name__ == "__main__":
    main()
