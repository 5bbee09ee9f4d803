"""The canary of the Redis PUB/SUB fast path: it fails as soon as a kombu or redis-py release
moves an internal the direct reader relies on (then check collectors/redis_pubsub.py against
it, and move KNOWN), and the reader falls back to kombu's path loudly."""

from __future__ import annotations

import inspect
import logging
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from kombu.transport import redis as kombu_redis

from sentinel.collectors import redis_pubsub


def test_the_installed_kombu_and_redis_py_are_known_to_work() -> None:
    assert redis_pubsub.untested_versions() == []


def test_kombu_redis_channel_still_has_what_the_reader_uses() -> None:
    channel = kombu_redis.Channel
    assert hasattr(channel, "subclient")
    assert callable(channel._subscribe)
    assert "active_fanout_queues" in inspect.getsource(channel.__init__)


def test_redis_py_pubsub_still_has_what_the_reader_uses() -> None:
    pubsub = redis.Redis(host="127.0.0.1", port=1).pubsub()  # no connection is made
    assert pubsub.connection is None
    assert callable(pubsub.connection_pool.get_connection)
    connection = redis.connection.Connection(host="127.0.0.1", port=1)
    assert connection._sock is None  # set once connected: the socket the reader selects on


def _consumer(channel: Any) -> Any:
    channel.connection = SimpleNamespace(driver_type="redis")
    channel.active_fanout_queues = {"celeryev.x"}
    return SimpleNamespace(channel=channel)


def test_missing_internals_fall_back_to_kombu_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "sentinel.events"):
        assert redis_pubsub.subscriber_socket(_consumer(SimpleNamespace())) is None
    assert any("internals changed" in r.getMessage() for r in caplog.records)


def test_unknown_versions_fall_back_to_kombu_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(redis_pubsub.KNOWN, "redis", ("1", "2"))
    with caplog.at_level(logging.WARNING, "sentinel.events"):
        assert redis_pubsub.subscriber_socket(_consumer(SimpleNamespace())) is None
    [record] = [r for r in caplog.records if "not known to work" in r.getMessage()]
    assert f"redis {redis.__version__}" in record.getMessage()


def test_off_redis_there_is_no_fast_path_and_no_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = SimpleNamespace(
        channel=SimpleNamespace(connection=SimpleNamespace(driver_type="amqp"))
    )
    with caplog.at_level(logging.WARNING, "sentinel.events"):
        assert redis_pubsub.subscriber_socket(consumer) is None
    assert caplog.records == []
