"""Sample lines written as text, byte for byte what prometheus_client's encoders write.

The library writes a sample by building a Sample (a named tuple and a dict of its labels),
sorting the labels, escaping every name and value and formatting the number: at 10,000 task
names, ~440,000 times per scrape, seconds in all. Here the negotiated encoder writes one line
per sample name and scrape, its label values left blank (pattern); per row only the row's label
values are escaped and its numbers formatted, the rest of the line is the library's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from sentinel.metrics.sliced import Render

# Placeholder label values: no encoder escapes a control character (values are only escaped
# for backslash, newline and double quote) and no metric or label name can hold one.
_BLANKS = ("\x00", "\x01", "\x02", "\x03", "\x04")
_ZERO = " 0.0\n"  # the probe's value, as floatToGoString writes it
_INF = math.inf


def pattern(
    render: Render,
    family: Metric,
    sample: str,
    labels: Sequence[str],
    fixed: Mapping[str, str] | None = None,
) -> str:
    """One sample's line as `render` writes it, up to its value (a trailing space), as a
    str.format pattern: field i is the escaped value of `labels[i]`; `fixed` labels have the
    same value on every line (a bucket's `le`). The label order, the names' escaping (the Accept
    header may ask for another scheme) and the braces are all the library's.
    """
    if len(labels) > len(_BLANKS):
        raise ValueError(f"{sample}: more labels than blanks")
    probe = Metric(family.name, family.documentation, family.type, family.unit)
    blanks = _BLANKS[: len(labels)]
    probe.add_sample(sample, {**dict(zip(labels, blanks, strict=True)), **(fixed or {})}, 0.0)
    text = render(probe).decode()
    if not text.endswith(_ZERO) or any(text.count(b) != 1 for b in blanks):
        raise ValueError(f"{sample}: no line to fill in {text!r}")
    # The line's own braces doubled, each blank a field.
    line = text.removesuffix(_ZERO).replace("{", "{{").replace("}", "}}") + " "
    for i, blank in enumerate(blanks):
        line = line.replace(blank, f"{{{i}}}")
    return line


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
