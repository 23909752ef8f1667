"""One reconnect/restart delay for every retry loop in the hub.

Exponential from ``initial`` to ``cap``, each delay drawn from ``[d/2, d]``
(so contenders spread out and the wait never exceeds the cap), reset when the
caller says the thing it retries became healthy.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial: float = 0.5, cap: float = 30.0, factor: float = 2.0) -> None:
        if not 0 < initial <= cap:
            raise ValueError("Backoff needs 0 < initial <= cap")
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self._next = initial
        self.attempts = 0

    def next(self, cap: float | None = None) -> float:
        """The delay before the next attempt (optionally capped lower for this
        one: e.g. while the peer refuses connections, probing is cheap)."""
        d = min(self._next, self.cap if cap is None else cap)
        self._next = min(self._next * self.factor, self.cap)
        self.attempts += 1
        return random.uniform(d / 2, d)

    def reset(self) -> None:
        self._next = self.initial
        self.attempts = 0
