"""Sample lines written as text, byte for byte what prometheus_client's encoders write.

The library writes a sample by building a Sample (a named tuple and a dict of its labels),
sorting the labels, escaping every name and value and formatting the number: at 10,000 task
names, ~440,000 times per scrape, seconds in all. Here the negotiated encoder writes one line
per sample name and scrape, its label values left blank (Line); per row only the row's label
values are escaped and its numbers formatted, the rest of the line is the library's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from sentinel.metrics.sliced import Render

# Placeholder label values: no encoder escapes a control character (values are only escaped
# for backslash, newline and double quote) and no metric or label name can hold one.
_BLANKS = ("\x00", "\x01", "\x02", "\x03", "\x04")
_ZERO = " 0.0\n"  # the probe's value, as floatToGoString writes it
_INF = math.inf


class Line:
    """One sample name's line in the format `render` writes, cut where its label values go.

    `labels` are the label names of the sample, in the order `bind`/`around` take values; with
    `extra`, the last one is the label that varies within a row (`le`, `exception`): `around`
    gives the text before and after its value. The label order, the names' escaping (the
    Accept header may ask for another scheme) and the braces are all the library's.
    """

    __slots__ = ("_after", "_before", "_whole")

    def __init__(
        self, render: Render, family: Metric, sample: str, labels: Sequence[str], *, extra: bool
    ) -> None:
        if len(labels) > len(_BLANKS):
            raise ValueError(f"{sample}: more labels than blanks")
        probe = Metric(family.name, family.documentation, family.type, family.unit)
        blanks = _BLANKS[: len(labels)]
        probe.add_sample(sample, dict(zip(labels, blanks, strict=True)), 0.0)
        text = render(probe).decode()
        if not text.endswith(_ZERO) or any(text.count(b) != 1 for b in blanks):
            raise ValueError(f"{sample}: no line to fill in {text!r}")
        # A str.format pattern: the line's own braces doubled, each blank a field, the value
        # left for the caller (after the space).
        pattern = text.removesuffix(_ZERO).replace("{", "{{").replace("}", "}}") + " "
        for i, blank in enumerate(blanks):
            pattern = pattern.replace(blank, f"{{{i}}}")
        if extra:
            self._before, self._after = pattern.split(f"{{{len(labels) - 1}}}")
            self._whole = ""
        else:
            self._before = self._after = ""
            self._whole = pattern

    def bind(self, values: Sequence[str]) -> str:
        """The line up to its value (a trailing space), for these escaped label values."""
        return self._whole.format(*values)

    def around(self, values: Sequence[str]) -> tuple[str, str]:
        """The line before and after the extra label's value, for the others' escaped values."""
        return self._before.format(*values), self._after.format(*values)


def escape(value: str) -> str:
    """A label value as both formats write it (prometheus_client's `_escape`, allow-utf-8)."""
    if "\\" in value or "\n" in value or '"' in value:  # almost never: skip three replaces
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def number(value: float) -> str:
    """floatToGoString(value), a quarter of its cost where nearly every value here is: below
    1e6 its answer is repr() (only a larger number may take Go's exponent form)."""
    if -_INF < value < 1e6:  # False for NaN too
        return repr(float(value))
    text: str = floatToGoString(value)  # untyped
    return text
