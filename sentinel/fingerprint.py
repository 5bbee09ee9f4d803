"""Prometheus's label-set fingerprint, so tools that correlate alerts by fingerprint agree.

`model.LabelSet.Fingerprint` (prometheus/common `model/signature.go`) is 64-bit FNV-1a over
the label names sorted by name, each name and each value followed by the byte 0xff (a byte
that never occurs in UTF-8, so `{a="b\\xff"}`-style ambiguities cannot arise). Alertmanager
prints it as `%016x`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from functools import lru_cache

__all__ = ["fingerprint", "fingerprint_int", "fingerprint_items", "fingerprint_v1", "sql_functions"]

_OFFSET64 = 14695981039346656037  # FNV-1a 64-bit offset basis; also the empty set's signature
_PRIME64 = 1099511628211
_MASK64 = (1 << 64) - 1
_SEP = b"\xff"


def fingerprint(labels: Mapping[str, str]) -> str:
    """The fingerprint of `labels` as Alertmanager prints it: 16 lowercase hex digits."""
    return f"{fingerprint_int(labels):016x}"


def fingerprint_items(items: tuple[tuple[str, str], ...]) -> str:
    """The same for label pairs already sorted by name (model.Labels keeps them so)."""
    return f"{_cached(items) if items else _OFFSET64:016x}"


def fingerprint_int(labels: Mapping[str, str]) -> int:
    """The fingerprint as the unsigned 64-bit integer Prometheus computes."""
    if not labels:
        return _OFFSET64
    # Python orders str by code point, which is UTF-8 byte order: the same as Go's sort.Strings.
    return _cached(tuple(sorted(labels.items())))


# The same label sets come back every evaluation: cache them (bounded, like every map here).
@lru_cache(maxsize=8192)
def _cached(items: tuple[tuple[str, str], ...]) -> int:
    parts: list[bytes] = []
    for name, value in items:
        parts.append(name.encode("utf-8"))
        parts.append(value.encode("utf-8"))
    return fnv1a64(_SEP.join(parts) + _SEP)


def fnv1a64(data: bytes) -> int:
    """64-bit FNV-1a of `data`."""
    h = _OFFSET64
    # Masking only every 4 bytes is exact (xor with a byte and multiplication both commute with
    # reduction mod 2**64) and roughly halves the interpreter work of a byte-at-a-time loop.
    it = iter(data)
    for a, b, c, d in zip(it, it, it, it, strict=False):
        h = ((((((((h ^ a) * _PRIME64) ^ b) * _PRIME64) ^ c) * _PRIME64) ^ d) * _PRIME64) & _MASK64
    for x in data[len(data) & ~3 :]:
        h = ((h ^ x) * _PRIME64) & _MASK64
    return h


def fingerprint_v1(labels: Mapping[str, str]) -> str:
    """The fingerprint before 0.2 (the first 16 hex digits of a SHA-256 over the same bytes),
    kept only so migration 005 can find what state stored under it."""
    h = hashlib.sha256()
    for name, value in sorted(labels.items()):
        h.update(name.encode())
        h.update(_SEP)
        h.update(value.encode())
        h.update(_SEP)
    return h.hexdigest()[:16]


def _from_json(function: Callable[[Mapping[str, str]], str]) -> Callable[[str | None], str | None]:
    def sql(labels_json: str | None) -> str | None:
        if labels_json is None:
            return None
        labels = json.loads(labels_json)
        return function({str(k): str(v) for k, v in labels.items()})

    return sql


def sql_functions() -> dict[str, Callable[[str | None], str | None]]:
    """SQL functions of one argument, a JSON object of labels, for the migrations."""
    return {
        "sentinel_fingerprint": _from_json(fingerprint),
        "sentinel_fingerprint_v1": _from_json(fingerprint_v1),
    }
