"""Wait on a condition, never a sleep: poll a predicate until it holds or a deadline passes."""

from __future__ import annotations

import asyncio
import time
from typing import Any


async def wait_until(pred: Any, timeout: float, what: str = "condition", interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = pred()
        if asyncio.iscoroutine(res):
            res = await res
        if res:
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def sync_wait_until(pred: Any, timeout: float, what: str = "condition", interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
