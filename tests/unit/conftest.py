"""tests/unit: no server process, no socket, no root; the whole layer runs in
seconds (``make test-fast``).  Every test here is marked ``unit``; a socket that
connects or binds fails the test; every async test fails when it leaves a task
running (kopf's leaked-task guard).  Offline command-line tools of the repo
(``hubctl normalize``, ``hubctl schema``, ``lint-imports``, scripts/check-lock.py)
may run as child processes: they serve nothing and talk to nothing."""

from __future__ import annotations

import inspect
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(autouse=True)
def _no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit test talks to no server: connect and bind raise.  (asyncio's own
    self-pipe is a socketpair, which needs neither.)"""

    def refuse(self: socket.socket, *args: object) -> None:
        raise AssertionError(f"a unit test opened a socket ({self.family.name}, {args!r}): move it to tests/integration")

    for name in ("connect", "connect_ex", "bind"):
        monkeypatch.setattr(socket.socket, name, refuse)


@pytest.fixture(autouse=True)
def _no_leaked_tasks_in_async_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """The shared ``no_leaked_tasks`` fixture, for every coroutine test of this layer.
    Autouse fixtures are set up first, so its check runs after the test's other
    fixtures were torn down."""
    if inspect.iscoroutinefunction(getattr(request, "function", None)):
        request.getfixturevalue("no_leaked_tasks")
    yield
