"""A metric family too big to build whole, made a slice at a time (api/exposition.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

M = TypeVar("M", bound=Metric)
R = TypeVar("R")


class Sliced(Metric, Generic[M, R]):
    """A family made a batch of rows at a time: `make()` an empty family of the right kind,
    `add(family, row)` one row's samples to it. `batches` is read once, lazily, so a collector
    can copy each batch out of its source under a short lock.

    To plain prometheus_client (generate_latest, a restricted registry) it is an ordinary
    family whose samples are every slice's, in order.
    """

    def __init__(
        self, make: Callable[[], M], batches: Iterable[Sequence[R]], add: Callable[[M, R], None]
    ) -> None:
        shape = make()
        super().__init__(shape.name, shape.documentation, shape.type, shape.unit)
        self._make, self._batches, self._add = make, batches, add
        self.samples = _Samples(self)  # type: ignore[assignment]

    def empty(self) -> M:
        return self._make()

    def slices(self) -> Iterator[M]:
        for batch in self._batches:
            part = self._make()
            for row in batch:
                self._add(part, row)
            yield part


class _Samples:
    def __init__(self, family: Sliced[Any, Any]) -> None:
        self._family = family

    def __iter__(self) -> Iterator[Sample]:
        for part in self._family.slices():
            yield from part.samples
