"""Byte sizes in configuration and flags: `1GiB`, `500MiB`, `64KiB`, `2GB`, or bytes."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?[bB]?|[bB])?\s*$")
_POWERS = {"": 0, "b": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a size like 1GiB or 500MiB, got a boolean")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (m := _SIZE.match(value)):
        unit = (m.group(2) or "").lower()
        binary = "i" in unit or (len(unit) == 1 and unit != "b")
        base = 1024 if binary else 1000
        size = int(float(m.group(1)) * base ** _POWERS[unit[:1] if unit else ""])
    else:
        raise ValueError(f"expected a size like 1GiB or 500MiB, got {value!r:.40}")
    if size <= 0:
        raise ValueError("must be positive")
    return size


def format_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
