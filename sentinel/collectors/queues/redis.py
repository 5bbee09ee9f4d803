"""Queue depth on Redis: LLEN of the queue key and of kombu's priority sub-queues."""

from __future__ import annotations

from typing import Any

import redis

from sentinel.collectors.queues import Depths

PRIORITY_SEP = "\x06\x16"  # kombu.transport.redis.Channel.sep
PRIORITY_STEPS = (0, 3, 6, 9)


class RedisQueueProbe:
    def __init__(self, broker_url: str, transport_options: dict[str, Any]) -> None:
        self.client = redis.Redis.from_url(broker_url, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = str(transport_options.get("global_keyprefix", ""))
        self.steps = tuple(transport_options.get("priority_steps", PRIORITY_STEPS))

    def keys(self, queue: str) -> list[str]:
        return [
            f"{self.prefix}{queue}" if pri == 0 else f"{self.prefix}{queue}{PRIORITY_SEP}{pri}"
            for pri in self.steps
        ]

    def depths(self, queues: list[str]) -> tuple[Depths, dict[str, str]]:
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            for key in self.keys(queue):
                pipe.llen(key)
        counts = pipe.execute()
        n = len(self.steps)
        return {q: (int(sum(counts[i * n : (i + 1) * n])), None) for i, q in enumerate(queues)}, {}

    def close(self) -> None:
        self.client.close()
