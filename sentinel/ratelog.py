"""A log that speaks at most once per interval per key: hostile input must not flood the log.

Each line after a quiet spell says how many like it were suppressed meanwhile. Time is passed
in (the caller's clock), so tests need no sleeps.
"""

from __future__ import annotations

import logging
from typing import Any


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}  # key -> when it last logged; keys are a fixed few
        self._suppressed: dict[str, int] = {}

    def warning(self, now: float, key: str, msg: str, *args: Any) -> bool:
        return self._log(logging.WARNING, now, key, msg, args, exc_info=False)

    def exception(self, now: float, key: str, msg: str, *args: Any) -> bool:
        return self._log(logging.ERROR, now, key, msg, args, exc_info=True)

    def _log(
        self, level: int, now: float, key: str, msg: str, args: tuple[Any, ...], exc_info: bool
    ) -> bool:
        last = self._last.get(key)
        if last is not None and 0.0 <= now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            msg += " (%d more like it in the last %.0fs not logged)"
            args = (*args, suppressed, self.interval)
        self.logger.log(level, msg, *args, exc_info=exc_info)
        return True
