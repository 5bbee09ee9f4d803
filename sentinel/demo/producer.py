"""The demo's traffic (`python -m sentinel.demo.producer --t0 EPOCH`): runs until SIGTERM.

Steady: 4 fast emails/s, 2 card charges/s (~30% declined), a 2.5-5 s report every 2.5 s, and
demo.nightly_digest every 2 s until the timeline's beat_stops_at. On the scenario's schedule:
a burst of image jobs onto the one-thread images worker. Once: a task that hangs, and a few
messages onto the queue nobody consumes.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import threading
import time
from typing import Any

from sentinel.demo.app import (
    charge_card,
    export_archive,
    legacy_sync,
    nightly_digest,
    render_report,
    resize_image,
    send_email,
)
from sentinel.demo.scenario import Timeline

TICK = 0.25


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m sentinel.demo.producer")
    parser.add_argument("--t0", type=float, required=True, help="scenario start (epoch seconds)")
    args = parser.parse_args()
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    parent = os.getppid()
    timeline = Timeline()
    bursts = [at for at, action in timeline.schedule(24 * 3600.0) if action == "burst"]
    once = {"hang": timeline.hang_at, "legacy": timeline.legacy_at}
    tick = 0
    while not stop.is_set():
        # Orphaned (the demo was SIGKILLed): nobody will stop us, so stop ourselves.
        if os.getppid() != parent:
            break
        elapsed = time.time() - args.t0
        send_email.delay(f"user{tick}@example.com")
        if tick % 2 == 0:
            charge_card.delay(tick)
        if tick % 10 == 0:
            render_report.delay(tick, seconds=round(random.uniform(2.5, 5.0), 2))
        if tick % 8 == 0 and elapsed < timeline.beat_stops_at:
            nightly_digest.delay()
        for what, at in list(once.items()):
            if at <= elapsed:
                del once[what]
                if what == "hang":
                    export_archive.delay()
                    print("demo.export_archive sent: it will hang", flush=True)
                else:
                    for i in range(5):
                        legacy_sync.delay(i)
                    print("5 demo.legacy_sync sent to a queue nobody consumes", flush=True)
        while bursts and bursts[0] <= elapsed:
            bursts.pop(0)
            for i in range(timeline.burst_size):
                resize_image.delay(i)
            print(f"burst: {timeline.burst_size} demo.resize_image sent", flush=True)
        tick += 1
        stop.wait(max(0.0, args.t0 + tick * TICK - time.time()))
    print(f"producer stopped after {tick} ticks", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
