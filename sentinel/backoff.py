"""Capped exponential backoff with full jitter, for reconnect loops and retries."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable


class Backoff:
    def __init__(self, base: float = 1.0, cap: float = 60.0, rng: random.Random | None = None):
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        """The delay before the next attempt: uniform in [d/2, d], d doubling up to the cap."""
        delay = min(self.cap, self.base * 2.0**self.attempt)
        self.attempt = min(self.attempt + 1, 32)
        return delay / 2 + self._rng.random() * delay / 2

    def reset(self) -> None:
        self.attempt = 0


def wait_to_reconnect(
    stop: threading.Event,
    delay: float,
    answers: Callable[[], bool | None],
    *,
    fast: float = 5.0,
    poll: float = 1.0,
    monotonic: Callable[[], float] = time.monotonic,
) -> float:
    """Wait before the next attempt to reach a peer; the seconds waited.

    `delay` (the backoff's) while the peer is silent, but `answers()` is asked every `poll`
    seconds: the moment it answers again the wait ends, and while it answers (it is up but the
    last attempt failed anyway) the wait is at most `fast`. So a broker back after an hour's
    outage is reconnected within about `poll`, not at the end of a 60 s backoff. `answers()`
    returning None (no way to ask) means a plain wait.
    """
    start = monotonic()
    was = answers()
    if was is None:
        stop.wait(delay)
        return monotonic() - start
    deadline = start + (min(delay, fast) if was else delay)
    while not stop.is_set():
        left = deadline - monotonic()
        if left <= 0 or stop.wait(min(poll, left)):
            break
        if not was and answers():  # it is back: now, not at the end of the backoff
            break
    return monotonic() - start
