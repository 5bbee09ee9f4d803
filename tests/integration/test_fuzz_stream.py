"""The event-stream fuzz against a real Redis: generated events and junk messages are published
to a private redis-server while the collector reads its socket; it never reconnects, nothing it
does raises, and every message ends up accepted or dropped (`make fuzz` runs it long)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentinel.clock import SystemClock
from sentinel.collectors.events import EventCollector
from sentinel.facts.store import FactStore
from tests.helpers import wait_for
from tests.unit.facts.fuzz_kit import check_state, message

pytestmark = [pytest.mark.integration, pytest.mark.fuzz, pytest.mark.timeout(3600)]

DB = 7  # a db no other test publishes events on: /7.celeryev/*


@pytest.fixture(scope="module")
def stream(redis_url: str) -> Iterator[tuple[EventCollector, redis.Redis]]:
    from celery import Celery

    url = redis_url.rsplit("/", 1)[0] + f"/{DB}"
    store = FactStore(max_task_names=3, max_workers=3, max_inflight=5)
    collector = EventCollector(
        Celery("fuzz", broker=url, set_as_current=False), store, SystemClock()
    )
    collector.start()
    client = redis.Redis.from_url(url)
    assert collector.connected.wait(15)
    yield collector, client
    collector.stop()
    client.close()


class Seen:
    total = 0


@settings(
    max_examples=max(10, settings.default.max_examples // 50),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(messages=st.lists(message(), min_size=1, max_size=30))
def test_a_fuzzed_stream_never_reconnects_and_counts_every_message(
    stream: tuple[EventCollector, redis.Redis], messages: list[tuple[bytes, int]]
) -> None:
    collector, client = stream
    store = collector.store
    pipe = client.pipeline(transaction=False)
    for payload, _ in messages:
        pipe.publish(f"/{DB}.celeryev/task.multi", payload)
    pipe.execute()
    Seen.total += sum(n for _, n in messages)

    def counted() -> Any:
        with store.lock:
            return sum(store.events_by_type.values()) + store.drops.per_event() >= Seen.total

    wait_for(counted, 30, interval=0.02, message="every message accepted or dropped")
    with store.lock:
        check_state(store, Seen.total)
    assert collector.reconnects == 0
    assert collector.connected.is_set()
