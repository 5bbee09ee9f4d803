"""A metric family too big to build whole, made a slice at a time (api/exposition.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, Protocol, TypeVar

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

M = TypeVar("M", bound=Metric)
R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)

# The library's encoder for the negotiated format, on one family: its sample lines, no header.
Render = Callable[[Metric], bytes]
# One batch of rows as sample lines, exactly as the library's encoder would write them.
Write = Callable[[Sequence[R_contra]], str]


class Rows(Protocol[M, R_contra]):
    """How a family's samples come from rows, both ways: as prometheus_client's objects (`add`,
    for the library's own exposition, and the reference) and as text (`writer`, for /metrics:
    building ~40 Sample objects per row is what made a scrape of 10,000 tasks take seconds)."""

    def empty(self) -> M:
        """The family with no samples: its name, help and type."""
        ...

    def add(self, family: M, row: R_contra) -> None:
        """The row's samples added to `family`."""
        ...

    def writer(self, render: Render) -> Write[R_contra]:
        """A writer of batches for the format `render` writes (built once per scrape)."""
        ...


class Sliced(Metric, Generic[M, R]):
    """A family made a batch of rows at a time, its samples by `rows`. `batches` is read once,
    lazily, so a collector can copy each batch out of its source under a short lock.

    To plain prometheus_client (generate_latest, a restricted registry) it is an ordinary
    family whose samples are every slice's, in order.
    """

    def __init__(self, rows: Rows[M, R], batches: Iterable[Sequence[R]]) -> None:
        shape = rows.empty()
        super().__init__(shape.name, shape.documentation, shape.type, shape.unit)
        self._rows, self._batches = rows, batches
        self.samples = _Samples(self)  # type: ignore[assignment]

    def empty(self) -> M:
        return self._rows.empty()

    def slices(self) -> Iterator[M]:
        """Each batch as a family of prometheus_client's objects."""
        for batch in self._batches:
            part = self._rows.empty()
            for row in batch:
                self._rows.add(part, row)
            yield part

    def texts(self, render: Render) -> Iterator[str]:
        """Each batch as the sample lines `render`'s format has for it (no header)."""
        write = self._rows.writer(render)
        for batch in self._batches:
            yield write(batch)


class _Samples:
    def __init__(self, family: Sliced[Any, Any]) -> None:
        self._family = family

    def __iter__(self) -> Iterator[Sample]:
        for part in self._family.slices():
            yield from part.samples
