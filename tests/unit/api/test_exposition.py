"""/metrics written in slices is the library's own exposition, byte for byte."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from sentinel.api.exposition import encode, gzipped
from sentinel.clock import FakeClock
from sentinel.facts.store import FactStore
from sentinel.metrics import facts
from sentinel.metrics.facts import FactsCollector
from sentinel.metrics.lines import escape, number, pattern
from sentinel.metrics.sliced import Render, Sliced, Write
from tests.helpers import T0

OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


def filled(names: int) -> CollectorRegistry:
    store = FactStore()
    events = []
    for i in range(names):
        uuid, name = f"u{i}", f"app.t{i:05d}"
        events += [
            {"type": "task-sent", "uuid": uuid, "name": name, "timestamp": T0},
            {"type": "task-started", "uuid": uuid, "hostname": "w1@h", "timestamp": T0 + 1},
            {"type": "task-succeeded", "uuid": uuid, "runtime": i / 100, "timestamp": T0 + 2},
        ]
    events.append({"type": "worker-heartbeat", "hostname": "w1@h", "active": 1, "freq": 2.0})
    store.apply_events(events, T0 + 2)
    store.set_queue_depths({"celery": (5, 1)}, {}, T0 + 2)
    registry = CollectorRegistry()
    registry.register(FactsCollector(store, FakeClock(T0 + 2)))
    return registry


@pytest.mark.parametrize("names", [0, 1, facts.BATCH, 2 * facts.BATCH + 7])
@pytest.mark.parametrize("accept", [None, OPENMETRICS])
def test_the_slices_make_the_libraries_exposition(names: int, accept: str | None) -> None:
    registry = filled(names)
    content_type, chunks = encode(registry, accept)
    parts = list(chunks)
    whole = (openmetrics_latest if accept else generate_latest)(registry)
    assert b"".join(parts) == whole
    assert content_type.startswith("application/openmetrics-text" if accept else "text/plain")
    if names > facts.BATCH:
        # Written in pieces: no chunk holds a whole per-task family.
        assert len(parts) > 2 * 10
        assert max(len(p) for p in parts) < len(whole) / 2
    assert gzip.decompress(b"".join(gzipped(iter(parts)))) == whole


class _Gauges:
    """A gauge by one label, one row a sample."""

    def empty(self) -> GaugeMetricFamily:
        return GaugeMetricFamily("g", "doc", labels=["k"])

    def add(self, family: GaugeMetricFamily, row: tuple[str, float]) -> None:
        family.add_metric([row[0]], row[1])

    def writer(self, render: Render) -> Write[tuple[str, float]]:
        line = pattern(render, self.empty(), "g", ["k"]) + "{1}\n"
        return lambda rows: "".join(line.format(escape(k), number(v)) for k, v in rows)


def test_a_sliced_family_reads_its_batches_once_and_lazily() -> None:
    taken: list[int] = []

    def batches() -> Iterator[list[tuple[str, float]]]:
        for i in range(3):
            taken.append(i)
            yield [(f"x{i}", float(i))]

    family = Sliced(_Gauges(), batches())
    assert taken == []
    slices = family.slices()
    next(slices)
    assert taken == [0]
    assert [s.labels["k"] for part in slices for s in part.samples] == ["x1", "x2"]
