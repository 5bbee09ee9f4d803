"""`with gc_paused():` around a burst of short-lived, acyclic allocations (the evaluation tick).

A tick over 10,000 task series makes ~200,000 short-lived objects (samples, their label dicts,
tuples), none in a cycle, so reference counting frees them all, and the cyclic collector would
otherwise run hundreds of young-generation passes over them (~20% of a tick). It runs again
right after; a collector someone else disabled stays disabled.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    pause = gc.isenabled()
    if pause:
        gc.disable()
    try:
        yield
    finally:
        if pause:
            gc.enable()
