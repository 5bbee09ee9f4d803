"""Broker queue depth probes, one module per broker family, chosen by the broker URL scheme."""

from __future__ import annotations

import importlib
import logging
from typing import Any, Protocol

from sentinel.clock import Clock
from sentinel.facts.store import FactStore

log = logging.getLogger("sentinel.queues")

Depths = dict[str, tuple[int, int | None]]  # queue -> (messages waiting, consumers if known)

PROBES = {
    "redis": "sentinel.collectors.queues.redis:RedisQueueProbe",
    "rediss": "sentinel.collectors.queues.redis:RedisQueueProbe",
    "amqp": "sentinel.collectors.queues.rabbitmq:RabbitMQQueueProbe",
    "amqps": "sentinel.collectors.queues.rabbitmq:RabbitMQQueueProbe",
    "pyamqp": "sentinel.collectors.queues.rabbitmq:RabbitMQQueueProbe",
    "filesystem": "sentinel.collectors.queues.filesystem:FilesystemQueueProbe",
}


class QueueProbe(Protocol):
    def depths(self, queues: list[str]) -> tuple[Depths, dict[str, str]]:
        """Depth of each queue, and an error for each queue that could not be read."""
        ...

    def close(self) -> None: ...


def probe_for(broker_url: str, transport_options: dict[str, Any]) -> QueueProbe | None:
    scheme = broker_url.partition("://")[0]
    target = PROBES.get(scheme)
    if target is None:
        return None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)(broker_url, transport_options)  # type: ignore[no-any-return]


class QueueCollector:
    source = "queues"

    def __init__(
        self, probe: QueueProbe, store: FactStore, clock: Clock, configured: tuple[str, ...]
    ) -> None:
        self.probe = probe
        self.store = store
        self.clock = clock
        self.configured = configured

    def collect(self) -> None:
        names = self.store.known_queues(self.configured)
        try:
            depths, errors = self.probe.depths(names)
        except Exception as e:
            now = self.clock.now()
            message = f"{type(e).__name__}: {e}"
            self.store.set_queue_depths({}, dict.fromkeys(names, message), now)
            self.store.probe_failed(self.source, message, now)
            log.warning("queue depth probe failed: %s", message)
            return
        now = self.clock.now()
        self.store.set_queue_depths(depths, errors, now)
        if errors:
            self.store.probe_failed(
                self.source, "; ".join(f"{q}: {e}" for q, e in errors.items()), now
            )
        else:
            self.store.probe_ok(self.source, now)

    def close(self) -> None:
        self.probe.close()
