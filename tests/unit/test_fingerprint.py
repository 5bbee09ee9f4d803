"""Fingerprints equal Prometheus's `model.LabelSet.Fingerprint`."""

from __future__ import annotations

import hashlib

import pytest

from sentinel.fingerprint import fingerprint, fingerprint_int, fingerprint_v1, fnv1a64
from sentinel.model import Labels


def naive_fingerprint(labels: dict[str, str]) -> int:
    """A deliberately plain FNV-1a, written from the algorithm's definition, to check against."""
    h = 0xCBF29CE484222325
    for name in sorted(labels, key=lambda s: s.encode("utf-8")):
        for byte in name.encode("utf-8") + b"\xff" + labels[name].encode("utf-8") + b"\xff":
            h ^= byte
            h = (h * 0x100000001B3) % 2**64
    return h


# Expected numbers from prometheus/common model/signature_test.go (TestLabelsToSignature,
# TestMetricToFingerprint; SignatureForLabels of a label present with an empty value).
PROMETHEUS_KNOWN = [
    ({}, 14695981039346656037),
    ({"name": "garland, briggs", "fear": "love is not enough"}, 5799056148416392346),
    ({"empty": ""}, 7187873163539638612),
]


@pytest.mark.parametrize(("labels", "expected"), PROMETHEUS_KNOWN)
def test_known_values_from_prometheus(labels: dict[str, str], expected: int) -> None:
    assert fingerprint_int(labels) == expected
    assert naive_fingerprint(labels) == expected
    assert fingerprint(labels) == f"{expected:016x}"


TABLE = [
    {"alertname": "NoLiveWorkers", "severity": "critical"},
    {"alertname": "QueueBacklog", "severity": "warning", "queue": "celery", "env": "prod"},
    {"alertname": "TaskFailureRate", "task": "billing.charge", "severity": "error"},
    {"a": "1"},
    {"a": "12", "b": "3"},  # same bytes as {"a": "1", "b": "23"} without separators
    {"a": "1", "b": "23"},
    {"unicode": "héllo wörld ✓", "ключ": "значение"},
    {"Z": "upper sorts first", "a": "lower"},
    {"x" * 37: "y" * 101},  # lengths that exercise the unrolled loop's tail
    {"multi\nline": 'quote "and" \\backslash'},
]


@pytest.mark.parametrize("labels", TABLE, ids=lambda d: ",".join(d)[:30])
def test_matches_naive_implementation(labels: dict[str, str]) -> None:
    assert fingerprint_int(labels) == naive_fingerprint(labels)
    assert fingerprint(labels) == f"{naive_fingerprint(labels):016x}"


def test_format_is_16_lowercase_hex_digits() -> None:
    fp = fingerprint({"alertname": "X"})
    assert len(fp) == 16
    assert fp == fp.lower()
    int(fp, 16)


def test_order_of_insertion_does_not_matter() -> None:
    assert fingerprint({"a": "1", "b": "2"}) == fingerprint({"b": "2", "a": "1"})


def test_separator_prevents_concatenation_collisions() -> None:
    assert fingerprint({"a": "12", "b": "3"}) != fingerprint({"a": "1", "b": "23"})
    assert fingerprint({"ab": "c"}) != fingerprint({"a": "bc"})


@pytest.mark.parametrize("n", range(9))
def test_fnv1a64_every_tail_length(n: int) -> None:
    data = bytes(range(200, 200 + n))
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) % 2**64
    assert fnv1a64(data) == h


def test_fnv1a64_reference_vectors() -> None:
    # Published FNV-1a 64-bit test vectors (Landon Curt Noll's FNV page).
    assert fnv1a64(b"") == 0xCBF29CE484222325
    assert fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a64(b"foobar") == 0x85944171F73967E8


@pytest.mark.parametrize("labels", [{}, *TABLE])
def test_an_alerts_fingerprint_is_its_label_sets(labels: dict[str, str]) -> None:
    assert Labels(labels).fingerprint == f"{naive_fingerprint(labels):016x}"


def test_the_old_fingerprint_is_kept_for_the_migration_only() -> None:
    # The first 16 hex digits of sha256 over name 0xff value 0xff, sorted by name (before 0.2).
    labels = {"alertname": "NoLiveWorkers", "severity": "critical"}
    raw = b"alertname\xffNoLiveWorkers\xffseverity\xffcritical\xff"
    assert fingerprint_v1(labels) == hashlib.sha256(raw).hexdigest()[:16]
    assert fingerprint_v1(labels) != Labels(labels).fingerprint
