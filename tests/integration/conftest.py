"""tests/integration: one real server each (ovsdb-server, dockerd, mosquitto or the
fake Kubernetes API of testkit.k8s_fake), driven through the product's own code
or a hubd subprocess.  Every test here is marked ``integration``."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)
