"""tests/system: whole paths and packets (root): orchestrator → hubd → NB →
ovn-northd → ovn-trace verdicts or real packets between network namespaces.
Every test here is marked ``system``."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.system)
