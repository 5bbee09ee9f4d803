"""Queue depth on kombu's filesystem transport, with messages written by a real kombu producer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue
from kombu.transport import filesystem

from sentinel.clock import FakeClock
from sentinel.collectors.queues import QueueCollector, probe_for
from sentinel.collectors.queues.filesystem import FilesystemQueueProbe
from sentinel.facts.store import FactStore


@pytest.fixture(autouse=True)
def fresh_broker_state() -> None:
    # kombu remembers bindings process-wide and skips writing one it has seen, so without this
    # a second test's control folder would never get its binding and publishes would vanish.
    filesystem.Transport.global_state.clear()


@pytest.fixture
def options(tmp_path: Path) -> dict[str, Any]:
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "control").mkdir()
    return {
        "data_folder_in": str(data),
        "data_folder_out": str(data),
        "control_folder": str(tmp_path / "control"),
        "polling_interval": 0.05,
    }


def publish(options: dict[str, Any], counts: dict[str, int]) -> None:
    exchange = Exchange("tasks", type="direct")
    with Connection("filesystem://localhost/", transport_options=options) as conn:
        producer = conn.Producer(serializer="json")
        for queue, n in counts.items():
            declared = Queue(queue, exchange, routing_key=queue)
            for i in range(n):
                producer.publish({"i": i}, exchange=exchange, routing_key=queue, declare=[declared])


def test_counts_waiting_messages_per_queue(options: dict[str, Any]) -> None:
    # "reports.daily" holds a dot: kombu splits the file name at its first dot only.
    publish(options, {"default": 3, "reports.daily": 2, "default.slow": 1})
    probe = FilesystemQueueProbe("filesystem://", options)

    depths, errors = probe.depths(["default", "reports.daily", "default.slow", "never-used"])

    assert errors == {}
    assert depths == {
        "default": (3, None),
        "reports.daily": (2, None),
        "default.slow": (1, None),
        "never-used": (0, None),
    }


def test_a_consumed_message_is_no_longer_waiting(options: dict[str, Any]) -> None:
    publish(options, {"default": 3})
    probe = FilesystemQueueProbe("filesystem://", options)
    with Connection("filesystem://localhost/", transport_options=options) as conn:
        queue = conn.SimpleQueue("default", no_ack=False)
        message = queue.get(timeout=5)
        # Taken but not yet acknowledged: the file has left the folder already.
        assert probe.depths(["default"])[0] == {"default": (2, None)}
        message.ack()
        queue.close()
    assert probe.depths(["default"])[0] == {"default": (2, None)}


def test_a_missing_folder_is_an_error_not_an_empty_queue(tmp_path: Path) -> None:
    probe = FilesystemQueueProbe("filesystem://", {"data_folder_in": str(tmp_path / "nope")})

    depths, errors = probe.depths(["default", "images"])

    assert depths == {}
    assert set(errors) == {"default", "images"}
    assert "cannot list" in errors["default"]


def test_registered_for_the_filesystem_scheme_and_feeds_the_store(
    options: dict[str, Any],
) -> None:
    probe = probe_for("filesystem://", options)
    assert isinstance(probe, FilesystemQueueProbe)
    publish(options, {"images": 4})
    store = FactStore()
    collector = QueueCollector(probe, store, FakeClock(100.0), ("images", "default"))

    collector.collect()

    assert store.queues["images"].depth == 4
    assert store.queues["default"].depth == 0
    assert store.probes["queues"].ok
