"""The floor for event ingest: Celery's own EventReceiver with one handler that only counts.

Usage: python bench/_bare.py BROKER_URL COUNTER_FILE. The count is written into an 8-byte
memory-mapped file after every event, so the benchmark reads it without asking this process
anything (a request would take time from the receiver it is measuring).
"""

from __future__ import annotations

import mmap
import os
import sys
from typing import Any

from celery import Celery


def main() -> None:
    url, path = sys.argv[1], sys.argv[2]
    fd = os.open(path, os.O_RDWR)
    counter = mmap.mmap(fd, 8)
    os.close(fd)
    count = 0

    def on_event(event: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        counter[:8] = count.to_bytes(8, "little")

    app = Celery("bare", broker=url, set_as_current=False)
    with app.connection_for_read() as conn:
        receiver = app.events.Receiver(conn, handlers={"*": on_event})
        receiver.capture(limit=None, timeout=None, wakeup=False)


if __name__ == "__main__":
    main()
