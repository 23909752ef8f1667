"""tests/unit: no server process, no network socket, no root; the whole layer runs
in seconds (``make test-fast``).  Every test here is marked ``unit``, and every
async test fails when it leaves a task running (kopf's leaked-task guard)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(autouse=True)
def _no_leaked_tasks_in_async_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """The shared ``no_leaked_tasks`` fixture, for every coroutine test of this layer.
    Autouse fixtures are set up first, so its check runs after the test's other
    fixtures were torn down."""
    if inspect.iscoroutinefunction(getattr(request, "function", None)):
        request.getfixturevalue("no_leaked_tasks")
    yield
