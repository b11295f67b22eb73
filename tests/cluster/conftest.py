"""Every test in tests/cluster needs the real control plane: mark them `cluster`
(`pytest -m 'not cluster'` deselects the tier)."""

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster/" in item.nodeid or item.nodeid.startswith("cluster/"):
            item.add_marker(pytest.mark.cluster)
