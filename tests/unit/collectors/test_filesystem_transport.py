"""sentinel's filesystem transport: whole messages only, each delivered once, stock-compatible."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue
from kombu.transport import filesystem

from sentinel.collectors import filesystem_transport
from sentinel.collectors.filesystem_transport import TRANSPORT, transport_for

EXCHANGE = Exchange("tasks", type="direct")


@pytest.fixture(autouse=True)
def fresh_broker_state() -> None:
    # kombu remembers bindings process-wide and skips writing one it has seen before.
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
        "polling_interval": 0.01,
    }


def connect(options: dict[str, Any], transport: str | None = TRANSPORT) -> Connection:
    return Connection("filesystem://localhost/", transport=transport, transport_options=options)


def publish(options: dict[str, Any], bodies: list[Any], transport: str | None = TRANSPORT) -> None:
    with connect(options, transport) as conn:
        producer = conn.Producer(serializer="json")
        queue = Queue("default", EXCHANGE, routing_key="default")
        for body in bodies:
            producer.publish(body, exchange=EXCHANGE, routing_key="default", declare=[queue])


def consume(options: dict[str, Any], n: int, transport: str | None = TRANSPORT) -> list[Any]:
    got: list[Any] = []
    with connect(options, transport) as conn:
        simple = conn.SimpleQueue("default")
        deadline = time.monotonic() + 10
        while len(got) < n and time.monotonic() < deadline:
            try:
                message = simple.get(timeout=0.5)
            except simple.Empty:
                continue
            got.append(message.payload)
            message.ack()
        simple.close()
    return got


def test_selected_for_filesystem_urls_only() -> None:
    assert transport_for("filesystem://") == TRANSPORT
    assert transport_for("filesystem://localhost/") == TRANSPORT
    assert transport_for("redis://localhost:6379/0") is None
    assert transport_for("amqp://guest@localhost//") is None


def test_writes_leave_only_whole_message_files(options: dict[str, Any]) -> None:
    publish(options, [{"n": i} for i in range(20)])

    names = os.listdir(options["data_folder_in"])
    assert len(names) == 20
    assert all(n.endswith(".default.msg") and not n.startswith(".") for n in names)
    for name in names:
        json.loads(Path(options["data_folder_in"], name).read_text())


@pytest.mark.parametrize("writer_locks", [True, False], ids=["locked-write", "unlocked-gap"])
def test_a_half_written_stock_message_is_read_whole(
    options: dict[str, Any], tmp_path: Path, writer_locks: bool
) -> None:
    """Stock kombu creates the file, then locks and writes it: a reader can get in between."""
    staging = {**options, "data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path)}
    publish(staging, [{"order": 42}], transport=None)
    (envelope,) = [p for p in tmp_path.iterdir() if p.name.endswith(".msg")]
    content = envelope.read_bytes()
    publish(options, [], transport=None)  # the binding, so the consumer's queue exists

    target = Path(options["data_folder_in"], envelope.name)
    f = open(target, "wb", buffering=0)  # noqa: SIM115 - held open across threads
    if writer_locks:
        filesystem.lock(f, filesystem.LOCK_EX)

    def finish_writing() -> None:
        time.sleep(0.3)
        f.write(content)
        if writer_locks:
            filesystem.unlock(f)
        f.close()

    writer = threading.Thread(target=finish_writing)
    writer.start()
    try:
        assert consume(options, 1) == [{"order": 42}]
    finally:
        writer.join()
    assert os.listdir(options["data_folder_in"]) == []


def test_two_consumers_never_share_a_message(options: dict[str, Any]) -> None:
    publish(options, list(range(200)))
    results: list[list[Any]] = [[], []]

    def worker(i: int) -> None:
        with connect(options) as conn:
            simple = conn.SimpleQueue("default")
            while True:
                try:
                    message = simple.get(timeout=0.5)
                except simple.Empty:
                    break
                results[i].append(message.payload)
                message.ack()
            simple.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert sorted(results[0] + results[1]) == list(range(200))


def test_interoperates_with_stock_kombu_both_ways(options: dict[str, Any]) -> None:
    # Order is not part of the check: kombu names files by the millisecond, and two messages
    # published within one millisecond are read in uuid order.
    publish(options, [1, 2], transport=None)
    assert sorted(consume(options, 2)) == [1, 2]
    publish(options, [3, 4])
    assert sorted(consume(options, 2, transport=None)) == [3, 4]


def test_a_corrupt_message_is_set_aside_not_fatal(
    options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filesystem_transport, "TORN_READ_WAIT", 0.05)
    publish(options, [])
    # "0_" sorts before any real `<monotonic ms>_` name ("1_" would sort after "16..._").
    bad = Path(options["data_folder_in"], "0_00000000-0000-0000-0000-000000000000.default.msg")
    bad.write_text("{not json")
    publish(options, ["good"])

    assert consume(options, 1) == ["good"]
    assert [p.name for p in Path(options["data_folder_in"]).iterdir()] == [f".{bad.name}.bad"]
