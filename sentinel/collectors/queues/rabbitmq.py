"""Queue depth on RabbitMQ: a passive queue.declare answers messages ready and consumers."""

from __future__ import annotations

import contextlib
from typing import Any

from amqp.exceptions import NotFound
from kombu.connection import Connection

from sentinel.collectors.queues import Depths


class RabbitMQQueueProbe:
    def __init__(self, broker_url: str, transport_options: dict[str, Any]) -> None:
        self.conn = Connection(broker_url, transport_options=transport_options, connect_timeout=5)
        self._channel: Any = None

    def _chan(self) -> Any:
        if self._channel is None:
            self.conn.ensure_connection(max_retries=1, timeout=5)
            self._channel = self.conn.channel()
        return self._channel

    def depths(self, queues: list[str]) -> tuple[Depths, dict[str, str]]:
        out: Depths = {}
        try:
            for queue in queues:
                try:
                    _, messages, consumers = self._chan().queue_declare(queue=queue, passive=True)
                except NotFound:
                    # The broker closed the channel; a queue nobody declared holds nothing.
                    self._channel = None
                    out[queue] = (0, 0)
                    continue
                out[queue] = (int(messages), int(consumers))
        except Exception:
            self.close()
            raise
        return out, {}

    def close(self) -> None:
        self._channel = None
        with contextlib.suppress(Exception):
            self.conn.release()
        self.conn = Connection(
            self.conn.as_uri(include_password=True),
            transport_options=self.conn.transport_options,
            connect_timeout=5,
        )
