"""Pause Python's cyclic GC around bulk work that makes only acyclic objects.

Decoding a 50k-row OVSDB reply or building a 50k-operation transaction makes
hundreds of thousands of dicts, lists and tuples and no reference cycles;
the cyclic collector then runs thousands of times for nothing (measured: 1.3 s
of a 5.3 s bulk run at 50k ports).  Reference counting still frees everything.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
