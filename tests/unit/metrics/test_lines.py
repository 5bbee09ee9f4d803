"""The per-task families written as text (metrics/lines.py) are prometheus_client's own
exposition, byte for byte, in every format and escaping the Accept header can ask for."""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from sentinel.api import exposition
from sentinel.api.exposition import encode
from sentinel.clock import FakeClock
from sentinel.facts.store import FactStore
from sentinel.facts.tasks import QUEUE_WAIT_HIST, RUNTIME_HIST
from sentinel.facts.windows import COUNTERS, FAILED, SENT
from sentinel.metrics import facts
from sentinel.metrics.facts import FactsCollector
from sentinel.metrics.lines import escape, number, pattern
from sentinel.metrics.sliced import Sliced
from tests.helpers import T0

ACCEPTS = [
    None,  # curl, urllib: the 0.0.4 text format
    "text/plain;version=0.0.4",
    "text/plain;version=1.0.0;escaping=allow-utf-8",
    "text/plain;version=1.0.0;escaping=dots",  # names respelled: celery__task__sent__total
    # what Prometheus 2.x sends
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "application/openmetrics-text;version=1.0.0;escaping=values",  # U__ names in samples
    "application/openmetrics-text;version=1.0.0;escaping=dots",
    "application/openmetrics-text;version=2.0.0;escaping=allow-utf-8",
    "application/openmetrics-text",  # no version: 1.0.0
]

# Label values as events can bring them: every character the formats escape, unicode, and
# what looks like the exposition's own syntax.
HOSTILE = [
    'say "hi"',
    "back\\slash\\",
    "new\nline\n",
    '\\"\n',
    "名前.タスク",
    "emoji 🦀",
    '} 1.0\n# EOF\nx{le="',
    "{0} {1} %s",
    "",
    "\x00\x01\x02",  # the blanks Line fills in, as real values
    "\r\ttab",
]


def hostile_store() -> FactStore:
    """Label sets of every shape: a worker's with both histograms and failures by hostile
    exception classes, a producer's (task_sent alone, no histograms), a worker's that never
    failed (exception=""), counts past 1e6 (Go's exponent form) and odd sums."""
    store = FactStore(max_metric_label_sets=100_000)
    for i, value in enumerate(HOSTILE):
        worker = store.metrics((value, f"h{i}", value), T0)
        producer = store.metrics((f"app.{i}", value, ""), T0)
        idle = store.metrics((f"app.{i}", "w", value), T0)
        assert worker is not None and producer is not None and idle is not None
        producer.count(SENT, T0)
        for slot in range(len(COUNTERS)):
            if slot != FAILED:
                worker.count(slot, T0)
                idle.count(slot, T0)
        worker.fail(value, T0)
        worker.fail("KeyError", T0)
        for seconds in (0.0, 0.004, 0.1, 2.5, 9.99, 1e3, math.pi):
            worker.observe(RUNTIME_HIST, seconds * (i + 1))
            idle.observe(QUEUE_WAIT_HIST, seconds)
        worker.totals[SENT] = 1_234_567  # floatToGoString: 1.234567e+06
        worker.histograms[QUEUE_WAIT_HIST][0] = 10.0**7
        worker.histograms[QUEUE_WAIT_HIST][-1] = 1e21 + 0.1
    return store


def many_store(names: int) -> FactStore:
    store = FactStore(max_metric_label_sets=100_000)
    events = []
    for i in range(names):
        uuid, name = f"u{i}", f'app."t{i:05d}"'
        events += [
            {"type": "task-sent", "uuid": uuid, "name": name, "timestamp": T0},
            {"type": "task-started", "uuid": uuid, "hostname": "w1@h", "timestamp": T0 + 1},
            {"type": "task-failed", "uuid": uuid, "exception": f"E{i % 3}()", "timestamp": T0 + 2}
            if i % 5 == 0
            else {"type": "task-succeeded", "uuid": uuid, "runtime": i / 100, "timestamp": T0 + 2},
        ]
    store.apply_events(events, T0 + 2)
    return store


def registry_of(store: FactStore) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(FactsCollector(store, FakeClock(T0 + 2)))
    return registry


def library(registry: CollectorRegistry, accept: str | None) -> bytes:
    """What prometheus_client itself answers this Accept header with: every sample an object."""
    encoder, _ = choose_encoder(accept or "")
    return encoder(registry)


Ours = Callable[[CollectorRegistry, "str | None"], list[bytes]]


@pytest.fixture
def ours(monkeypatch: pytest.MonkeyPatch) -> Ours:
    """/metrics' chunks, where a sliced family may not fall back to the library's objects: the
    comparisons would hold without the text path being exercised at all."""

    def refuse(self: Sliced[Any, Any]) -> Iterator[Any]:
        raise AssertionError("a sliced family built as objects on /metrics")

    def chunks(registry: CollectorRegistry, accept: str | None) -> list[bytes]:
        with monkeypatch.context() as m:
            m.setattr(Sliced, "slices", refuse)
            return list(encode(registry, accept)[1])

    return chunks


@pytest.mark.parametrize("accept", ACCEPTS)
def test_hostile_label_values_are_written_as_the_library_writes_them(
    accept: str | None, ours: Ours
) -> None:
    registry = registry_of(hostile_store())
    whole = library(registry, accept)
    assert b"".join(ours(registry, accept)) == whole
    assert "名前.タスク".encode() in whole and b"1.234567e+06" in whole and b"1e+07" in whole


@pytest.mark.parametrize("accept", ACCEPTS)
def test_no_tasks_is_every_family_header_alone(accept: str | None, ours: Ours) -> None:
    registry = registry_of(FactStore())
    whole = library(registry, accept)
    assert b"".join(ours(registry, accept)) == whole
    assert b"celery_task_runtime" in whole or b"celery__task__runtime" in whole


@pytest.mark.parametrize("names", [1, facts.BATCH - 1, 2 * facts.BATCH + 7])
@pytest.mark.parametrize("accept", [None, ACCEPTS[4]])
def test_many_batches_in_pieces(names: int, accept: str | None, ours: Ours) -> None:
    registry = registry_of(many_store(names))
    whole = library(registry, accept)
    parts = ours(registry, accept)
    assert b"".join(parts) == whole
    if names > facts.BATCH:  # a family comes in slices: no chunk holds a whole one
        assert max(len(p) for p in parts) < len(whole) / 10


@pytest.mark.parametrize("accept", [None, ACCEPTS[4]])
def test_the_baseline_path_is_the_library_too(
    accept: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exposition, "WRITE_LINES", False)
    registry = registry_of(hostile_store())
    assert b"".join(encode(registry, accept)[1]) == library(registry, accept)


def test_the_text_parses_back_to_the_rows() -> None:
    """Equal to the library is only right if the library reads it back as meant."""
    store = hostile_store()
    text = b"".join(encode(registry_of(store), None)[1]).decode()
    failed = {}
    for family in text_string_to_metric_families(text):
        if family.name == "celery_task_failed":
            for s in family.samples:
                key = (s.labels["name"], s.labels["hostname"], s.labels["queue_name"])
                failed[key, s.labels["exception"]] = s.value
    for key, m in store.task_metrics.items():
        for exception, n in (m.exceptions or {}).items():
            assert failed.pop((key, exception)) == n
    # the rest: label sets a worker touched that never failed
    assert set(failed.values()) == {0.0} and {e for _, e in failed} == {""}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_text() -> None:
    text = b"".join(encode(registry_of(hostile_store()), None)[1])
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30
    )
    # promtool's lint (help text, unit suffixes) writes to stdout; a parse error fails it.
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


# -- the pieces -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        *(0, 1, 7, 999_999, 1_000_000, 1_234_567, 10**16, 10**25, -1, -(10**7)),
        *(0.0, -0.0, 0.1, 0.1 + 0.2, 1e-7, 1.5e-5, 999_999.9999999999, 1e6, 1e6 + 0.5, 1e22),
        *(-1e22, math.pi * 1e8, 5e-324, math.inf, -math.inf, math.nan),
    ],
)
def test_number_is_float_to_go_string(value: float) -> None:
    assert number(value) == floatToGoString(value)


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**30), 10**30))
def test_number_is_float_to_go_string_everywhere(value: float) -> None:
    assert number(value) == floatToGoString(value)


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("plain.name", "plain.name"),
        ('a"b', 'a\\"b'),
        ("a\\b", "a\\\\b"),
        ("a\nb", "a\\nb"),
        ('\\"\n', '\\\\\\"\\n'),  # the backslash first, or the others' would be doubled
        ("\r\t🦀", "\r\t🦀"),  # nothing else is escaped
    ],
)
def test_escape(value: str, escaped: str) -> None:
    assert escape(value) == escaped


class _One:
    def __init__(self, family: Metric) -> None:
        self.family = family

    def collect(self) -> list[Metric]:
        return [self.family]


def sample_lines(probe: Metric) -> bytes:
    """The text format's lines of one family, without its header."""
    text = generate_latest(_One(probe))
    return b"".join(line + b"\n" for line in text.splitlines() if not line.startswith(b"#"))


def test_a_pattern_is_the_libraries_line_with_fields() -> None:
    family = facts._PER_TASK[0].empty()
    line = pattern(
        sample_lines, family, "celery_task_sent_total", ["name", "hostname"], {"le": "{0}"}
    )
    # the library's label order, the fixed value as it is, every literal brace doubled
    assert line == 'celery_task_sent_total{{hostname="{1}",le="{{0}}",name="{0}"}} '
    assert line.format('a"b', "h") == 'celery_task_sent_total{hostname="h",le="{0}",name="a"b"} '


def test_a_line_the_format_does_not_have_is_refused() -> None:
    family = facts._PER_TASK[0].empty()
    with pytest.raises(ValueError, match="no line"):
        pattern(lambda probe: b"", family, "celery_task_sent_total", ["name"])
    with pytest.raises(ValueError, match="no line"):  # a label value the format rewrote
        pattern(lambda probe: b'x{name="?"} 0.0\n', family, "x", ["name"])
