"""The recording's own health on /metrics (registered by the API server when recording)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sentinel.record.recorder import Recorder


class RecordingCollector(Collector):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def collect(self) -> Iterator[Metric]:
        r = self.recorder
        yield CounterMetricFamily(
            "sentinel_recording_records", "Records written to the recording.", value=r.records
        )
        yield CounterMetricFamily(
            "sentinel_recording_dropped",
            "Events (or records) not recorded: the writer was behind and the hand-off full.",
            value=r.dropped,
        )
        yield CounterMetricFamily(
            "sentinel_recording_write_errors",
            "Frames lost to a write error (a full disk).",
            value=r.errors,
        )
        yield GaugeMetricFamily(
            "sentinel_recording_bytes", "Bytes of recording on disk.", value=r.sink.size
        )
