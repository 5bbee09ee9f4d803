"""Prometheus's label-set fingerprint, so tools that correlate alerts by fingerprint agree.

`model.LabelSet.Fingerprint` (prometheus/common `model/signature.go`) is 64-bit FNV-1a over
the label names sorted by name, each name and each value followed by the byte 0xff (a byte
that never occurs in UTF-8, so `{a="b\\xff"}`-style ambiguities cannot arise). Alertmanager
prints it as `%016x`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

__all__ = ["fingerprint", "fingerprint_int"]

_OFFSET64 = 14695981039346656037  # FNV-1a 64-bit offset basis; also the empty set's signature
_PRIME64 = 1099511628211
_MASK64 = (1 << 64) - 1
_SEP = b"\xff"


def fingerprint(labels: Mapping[str, str]) -> str:
    """The fingerprint of `labels` as Alertmanager prints it: 16 lowercase hex digits."""
    return f"{fingerprint_int(labels):016x}"


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
